"""What a study's storage costs per trial, and how a study's throughput grows with workers.

    python benchmarks/bench_storage.py                         # SQLite and the journal file
    python benchmarks/bench_storage.py --postgres URL          # PostgreSQL too, and 1/2/4/8 workers
    eval "$(bash .ci/postgres.sh start)"; python benchmarks/bench_storage.py --postgres "$ARCHDSL_TEST_POSTGRES_URL"

The objective is trivial (three suggested values, three intermediate reports, a sum), so every
millisecond measured is the storage's: the calls a search trial makes (ask, suggest, report,
set user attributes, tell). Throughput runs N worker processes on one study until the study has
its trial count, as `archdsl search --workers N` and `archdsl worker` do.
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


def make_storage(url: str):
    """An Optuna storage from a URL; ``journal:PATH`` is the journal-file storage."""
    if url.startswith("journal:"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(url[len("journal:") :]))
    return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})


def trivial_objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -10, 10)
    y = trial.suggest_int("y", 0, 100)
    kind = trial.suggest_categorical("kind", ["ssm", "attn", "gdn"])
    for step in range(3):
        trial.report(x + y * step, step)
    trial.set_user_attr("arch", f"4x({kind}) attn mlp")
    return x * x + y


def per_trial_ms(url: str, trials: int) -> float:
    """Median milliseconds per trial on one process."""
    study = optuna.create_study(
        storage=make_storage(url), study_name=f"overhead-{time.time_ns()}", sampler=optuna.samplers.RandomSampler(0)
    )
    times = []
    for _ in range(trials):
        start = time.perf_counter()
        study.optimize(trivial_objective, n_trials=1)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def _worker(url: str, name: str, total: int) -> None:
    study = optuna.load_study(storage=make_storage(url), study_name=name, sampler=optuna.samplers.RandomSampler())
    states = (optuna.trial.TrialState.COMPLETE,)
    study.optimize(trivial_objective, callbacks=[optuna.study.MaxTrialsCallback(total, states=states)])


def throughput(url: str, workers: int, total: int) -> tuple[float, int]:
    """(finished trials per minute, finished trials) with ``workers`` processes on one study."""
    name = f"throughput-{workers}-{time.time_ns()}"
    optuna.create_study(storage=make_storage(url), study_name=name)
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_worker, args=(url, name, total)) for _ in range(workers)]
    start = time.perf_counter()
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    elapsed = time.perf_counter() - start
    study = optuna.load_study(storage=make_storage(url), study_name=name)
    done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    return 60 * done / elapsed, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", help="a PostgreSQL URL, e.g. postgresql+psycopg://user@127.0.0.1/db")
    parser.add_argument("--trials", type=int, default=100, help="trials per overhead measurement")
    parser.add_argument("--total", type=int, default=200, help="trials per throughput measurement")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="archdsl-bench-storage-"))
    urls = {"sqlite": f"sqlite:///{folder / 'study.db'}", "journal file": f"journal:{folder / 'study.log'}"}
    if args.postgres:
        urls["postgresql"] = args.postgres

    print(f"per-trial storage overhead, trivial objective, median of {args.trials} trials (one process)")
    print("| storage | ms / trial |\n|---|---|")
    for name, url in urls.items():
        print(f"| {name} | {per_trial_ms(url, args.trials):.1f} |", flush=True)

    print(f"\nstudy throughput, {args.total} trials, trivial objective")
    print("| storage | workers | trials / min | finished |\n|---|---|---|---|")
    for name, url in urls.items():
        for workers in (1, 2, 4, 8):
            rate, done = throughput(url, workers, args.total)
            print(f"| {name} | {workers} | {rate:,.0f} | {done} |", flush=True)


if __name__ == "__main__":
    main()
