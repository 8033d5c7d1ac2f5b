"""What a study's storage costs per trial, and how a study's throughput grows with workers.

    python benchmarks/bench_storage.py                         # SQLite and the journal file
    python benchmarks/bench_storage.py --postgres URL          # PostgreSQL too
    eval "$(bash .ci/postgres.sh start)"; python benchmarks/bench_storage.py --postgres "$ARCHDSL_TEST_POSTGRES_URL"

The objective is trivial (three suggested values, three intermediate reports, a user
attribute, a sum), so every millisecond measured is the storage's and the loop's: the calls a
search trial makes (ask, suggest, report, set user attributes, tell).

Overhead: one process, the storages timed alternately in rounds (each round runs a block of
trials on every storage in turn, so load on a shared machine falls on all alike); per storage
the plain Optuna loop (``study.optimize``) and archdsl's worker loop (heartbeats on, patient
RDB calls, the exact-count check before each trial, ``archdsl.search.distributed.work``).

Throughput: N worker processes on one study until it has its trial count, as `archdsl search
--workers N` and `archdsl worker` do. Each worker imports, opens the storage and loads the
study first, then waits at a barrier, so process start-up is not counted. Two ways to stop:
Optuna's ``MaxTrialsCallback`` (checks after each trial, so racing workers overshoot) and
archdsl's exact count (``finished`` must equal the total).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path

import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)


def plain_storage(url: str):
    """An Optuna storage from a URL; ``journal:PATH`` is the journal-file storage."""
    if url.startswith("journal:"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(url[len("journal:") :]))
    return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})


def archdsl_storage(url: str):
    """The storage archdsl's workers use: heartbeats on (and patient calls for RDB URLs)."""
    from archdsl.search.study import open_storage

    return open_storage(url.removeprefix("journal:"), HEARTBEAT)


def _heartbeat():
    from archdsl.search.storages import Heartbeat

    return Heartbeat(interval=10, grace=60, retries=2)


HEARTBEAT = None  # set in each process that needs it (importing archdsl pulls in torch)


def trivial_objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -10, 10)
    y = trial.suggest_int("y", 0, 100)
    kind = trial.suggest_categorical("kind", ["ssm", "attn", "gdn"])
    for step in range(3):
        trial.report(x + y * step, step)
    trial.set_user_attr("arch", f"4x({kind}) attn mlp")
    return x * x + y


# ---- overhead ----------------------------------------------------------------------------------


class Runner:
    """One study on one storage; ``block(k)`` runs k more trials and returns the seconds taken."""

    def __init__(self, url: str, loop: str):
        from archdsl.search.distributed import set_target, work

        self.loop, self._set_target, self._work = loop, set_target, work
        storage = archdsl_storage(url) if loop == "archdsl" else plain_storage(url)
        self.study = optuna.create_study(
            storage=storage, study_name=f"overhead-{loop}-{time.time_ns()}", sampler=optuna.samplers.RandomSampler(0)
        )

    def block(self, k: int) -> float:
        start = time.perf_counter()
        if self.loop == "archdsl":
            self._set_target(self.study, trials=k, timeout=None, retries=HEARTBEAT.retries)
            self._work(self.study, trivial_objective, heartbeat=HEARTBEAT)
        else:
            self.study.optimize(trivial_objective, n_trials=k)
        return time.perf_counter() - start


def overhead(urls: dict[str, str], rounds: int, block: int) -> dict[tuple[str, str], float]:
    """Median milliseconds per trial of every (storage, loop), timed alternately in rounds."""
    runners = {(name, loop): Runner(url, loop) for name, url in urls.items() for loop in ("optuna", "archdsl")}
    for runner in runners.values():
        runner.block(2)  # warm up: tables, connections, first journal replay
    samples: dict[tuple[str, str], list[float]] = {key: [] for key in runners}
    for _ in range(rounds):
        for key, runner in runners.items():
            samples[key].append(1000 * runner.block(block) / block)
    return {key: statistics.median(values) for key, values in samples.items()}


# ---- throughput --------------------------------------------------------------------------------


def _worker(url: str, name: str, total: int, stop: str, ready, go) -> None:
    global HEARTBEAT
    if stop == "archdsl":
        from archdsl.search.distributed import work

        HEARTBEAT = _heartbeat()
        study = optuna.load_study(
            storage=archdsl_storage(url), study_name=name, sampler=optuna.samplers.RandomSampler()
        )
    else:
        study = optuna.load_study(storage=plain_storage(url), study_name=name, sampler=optuna.samplers.RandomSampler())
    study.get_trials(deepcopy=False)  # connect / replay before the clock starts
    ready.release()
    go.wait()
    if stop == "archdsl":
        work(study, trivial_objective, heartbeat=HEARTBEAT, poll=0.05)
    else:
        states = (optuna.trial.TrialState.COMPLETE,)
        study.optimize(trivial_objective, callbacks=[optuna.study.MaxTrialsCallback(total, states=states)])


def throughput(url: str, workers: int, total: int, stop: str) -> tuple[float, int]:
    """(finished trials per minute, finished trials) with ``workers`` processes on one study."""
    from archdsl.search.distributed import set_target

    name = f"throughput-{stop}-{workers}-{time.time_ns()}"
    study = optuna.create_study(storage=plain_storage(url), study_name=name)
    set_target(study, trials=total, timeout=None, retries=2)
    context = multiprocessing.get_context("spawn")
    ready, go = context.Semaphore(0), context.Event()
    procs = [context.Process(target=_worker, args=(url, name, total, stop, ready, go)) for _ in range(workers)]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.acquire()  # every worker has started, imported and loaded the study
    start = time.perf_counter()
    go.set()
    for proc in procs:
        proc.join()
    elapsed = time.perf_counter() - start
    study = optuna.load_study(storage=plain_storage(url), study_name=name)
    done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    return 60 * done / elapsed, done


def main() -> None:
    global HEARTBEAT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", help="a PostgreSQL URL, e.g. postgresql+psycopg://user@127.0.0.1/db")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of the overhead measurement")
    parser.add_argument("--block", type=int, default=20, help="trials per storage per round")
    parser.add_argument("--total", type=int, default=400, help="trials per throughput measurement")
    parser.add_argument("--workers", default="1,2,4,8", help="worker counts of the throughput measurement")
    parser.add_argument("--throughput-on", default="postgresql", help="storages of the throughput table (comma list)")
    args = parser.parse_args()
    HEARTBEAT = _heartbeat()

    folder = Path(tempfile.mkdtemp(prefix="archdsl-bench-storage-"))
    urls = {"sqlite": f"sqlite:///{folder / 'study.db'}", "journal file": f"journal:{folder / 'study.log'}"}
    if args.postgres:
        urls["postgresql"] = args.postgres

    print(f"per-trial overhead, trivial objective: median over {args.rounds} alternating rounds of {args.block} trials")
    print(
        "| storage | Optuna loop, ms / trial | archdsl worker loop, ms / trial | archdsl / Optuna |\n|---|---|---|---|"
    )
    ms = overhead(urls, args.rounds, args.block)
    for name in urls:
        plain, ours = ms[(name, "optuna")], ms[(name, "archdsl")]
        print(f"| {name} | {plain:.1f} | {ours:.1f} | {ours / plain:.2f} |", flush=True)

    chosen = [n for n in args.throughput_on.split(",") if n in urls]
    print(f"\nstudy throughput, {args.total} trials, trivial objective, worker start-up excluded")
    print(f"| storage | workers | stop rule | trials / min | finished (asked: {args.total}) |\n|---|---|---|---|---|")
    for name in chosen:
        for workers in (int(w) for w in args.workers.split(",")):
            for stop in ("MaxTrialsCallback", "archdsl"):
                rate, done = throughput(urls[name], workers, args.total, stop)
                print(f"| {name} | {workers} | {stop} | {rate:,.0f} | {done} |", flush=True)


if __name__ == "__main__":
    main()
