"""Many workers, one study: exact trial counts, clean stops on SIGINT/SIGTERM, the worker loop.

Exact counts. The study stores its target (``target_trials``) and deadline. A trial *holds a
slot* while it waits or runs, and keeps it if it ends in a state that counts (finished,
pruned, infeasible, or failed with the objective's reason). A trial loses its slot when it
is surplus, or lost (its worker died or was stopped) with a retry queued to carry it on.
Optuna numbers trials in the order it creates them (the journal appends in order; the RDB
storage locks the study row), so when a trial starts, every trial numbered before it
already exists. A trial runs only if fewer than ``target`` trials numbered before it hold a
slot; otherwise it is told ``surplus`` without running. Then the k-th counted trial found
k-1 counted ones ahead of it (a counted trial holds its slot from creation to the end), so
no more than ``target`` ever count; and workers go on until ``target`` do count, waiting
while the remaining slots are held by running trials (one may die and need its retry run).
Optuna's ``MaxTrialsCallback`` stops after the fact, so N racing workers overshoot it.

    >>> set_target(study, trials=20, timeout=None)            # doctest: +SKIP
    >>> work(study, objective, heartbeat=Heartbeat())        # doctest: +SKIP
    'done'
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from archdsl.search.objective import FAILED, INTERRUPTED, TrialFailed
from archdsl.search.storages import Heartbeat, fail_stale_trials

TARGET_ATTR, DEADLINE_ATTR = "target_trials", "deadline"
SURPLUS, LOST = "surplus", "lost"


class Surplus(TrialFailed):
    """The study already had its trials when this one started; it is told without running."""


class WorkerInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived while a trial ran: the trial is failed and queued again."""

    def __init__(self, signame: str):
        super().__init__(signame)
        self.signame = signame


def heartbeat_of(recipe: Any) -> Heartbeat:
    """The recipe's ``[study] heartbeat / grace / retries`` (stored in the study with the recipe,
    so every worker of a study judges the others alike)."""
    study = recipe.study
    return Heartbeat(interval=study.heartbeat, grace=study.grace or 6 * study.heartbeat, retries=study.retries)


def default_workers(device: str | None, *, gpus: int, cores: int) -> int:
    """Worker processes when neither the recipe nor ``--workers`` says: one per GPU, else one
    per CPU core, each on one thread. On 2 cores, two single-threaded workers ran the
    quickstart's trials 1.67x as fast as one worker on two threads (``bench_search.py threads``):
    small models leave a second thread idle at every OpenMP barrier.

    >>> default_workers(None, gpus=0, cores=8), default_workers("cuda", gpus=2, cores=16)
    (8, 2)
    """
    if device is not None and device.startswith("cuda") and gpus > 0:
        return gpus
    return max(1, cores)


def placements(workers: int, device: str | None, *, gpus: int, cores: int) -> list[tuple[str | None, int]]:
    """(device, torch threads) of each of ``workers`` processes on one machine. With GPUs
    (``device="cuda"``), worker i gets GPU i (round robin when there are more workers than
    GPUs); on the CPU the workers split the cores, so N workers never run more than the
    machine's cores of torch threads (oversubscribed OpenMP threads spin on each other).

    >>> placements(3, "cuda", gpus=2, cores=16)
    [('cuda:0', 5), ('cuda:1', 5), ('cuda:0', 5)]
    >>> placements(4, None, gpus=0, cores=8)
    [(None, 2), (None, 2), (None, 2), (None, 2)]
    """
    threads = max(1, cores // workers)
    if device == "cuda" and gpus > 0:
        return [(f"cuda:{i % gpus}", threads) for i in range(workers)]
    return [(device, threads)] * workers


# ---- which trials count ----------------------------------------------------------------------


def retried_enough(trial: FrozenTrial, retries: int) -> bool:
    """True when a lost trial gets no retry: it was already run ``retries`` times again."""
    return len(trial.system_attrs.get("retry_history", [])) >= retries


def counts(trial: FrozenTrial, retries: int) -> bool:
    """Finished in a state that counts toward the study's target."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    if trial.state != TrialState.FAIL:
        return False
    status = trial.user_attrs.get("status")
    if status == FAILED:
        return True  # the layout's own verdict: NaN loss, does not fit, a layer raised
    if status == SURPLUS:
        return False
    return retried_enough(trial, retries)  # lost or interrupted: counts once no retry follows


def holds_slot(trial: FrozenTrial, retries: int) -> bool:
    return trial.state in (TrialState.WAITING, TrialState.RUNNING) or counts(trial, retries)


@dataclass(frozen=True)
class Tally:
    """The study seen by one worker: trials that count, run and wait, against the target."""

    target: int
    counted: int
    running: int
    waiting: int
    deadline: float | None

    @classmethod
    def of(cls, study: optuna.Study, retries: int) -> Tally:
        attrs = study.user_attrs
        trials = study.get_trials(deepcopy=False)
        return cls(
            target=int(attrs.get(TARGET_ATTR, 0)),
            counted=sum(counts(t, retries) for t in trials),
            running=sum(t.state == TrialState.RUNNING for t in trials),
            waiting=sum(t.state == TrialState.WAITING for t in trials),
            deadline=attrs.get(DEADLINE_ATTR),
        )

    @property
    def done(self) -> bool:
        return self.counted >= self.target

    @property
    def free(self) -> int:
        return self.target - self.counted - self.running - self.waiting


def set_target(study: optuna.Study, *, trials: int, timeout: float | None, retries: int) -> int:
    """``trials`` more trials than count now (a second launch of the same run adds none: the
    target only grows); a deadline ``timeout`` seconds from now, or none. Returns the target."""
    tally = Tally.of(study, retries)
    target = max(tally.target, tally.counted + trials)
    study.set_user_attr(TARGET_ATTR, target)
    study.set_user_attr(DEADLINE_ATTR, None if timeout is None else time.time() + timeout)
    return target


# ---- signals -----------------------------------------------------------------------------------


class StopSignals:
    """SIGINT/SIGTERM handling for a worker: between trials a signal only asks the loop to stop
    (the trial that just ended is stored first); during a trial it raises WorkerInterrupted."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self.in_trial = False

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = signal.Signals(signum).name
        if self.in_trial:
            self.in_trial = False  # a second signal while the trial is being failed waits its turn
            raise WorkerInterrupted(self.requested)

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopSignals]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # signals reach only the main thread; nothing to install here
            return
        before = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, handler in before.items():
                signal.signal(s, handler)


# ---- the guarded objective -------------------------------------------------------------------


class GuardedObjective:
    """The search objective behind the slot check, with every error turned into a stored reason."""

    def __init__(self, objective: Callable[[optuna.Trial], Any], retries: int, stop: StopSignals):
        self.objective, self.retries, self.stop = objective, retries, stop
        self.current: int | None = None  # trial id of the trial running now

    def __call__(self, trial: optuna.Trial) -> Any:
        self.current = trial._trial_id
        study = trial.study
        target = int(study.user_attrs.get(TARGET_ATTR, 0))
        ahead = sum(holds_slot(t, self.retries) for t in study.get_trials(deepcopy=False) if t.number < trial.number)
        if ahead >= target:
            trial.set_user_attr("status", SURPLUS)
            trial.set_user_attr("reason", f"the study already had its {target} trials when this one started")
            raise Surplus("surplus")
        history = study._storage.get_trial(trial._trial_id).system_attrs.get("retry_history")
        if history:
            trial.set_user_attr("retry", {"of": history[0], "attempt": len(history) + 1})
            trial.set_user_attr("reason", None)  # the retry copied the lost trial's attributes
        self.stop.in_trial = True
        try:
            return self.objective(trial)
        except WorkerInterrupted as err:
            self.stop.in_trial = False
            trial.set_user_attr("status", INTERRUPTED)
            trial.set_user_attr("reason", f"worker stopped by {err.signame} during the trial")
            raise
        except (TrialFailed, optuna.TrialPruned):
            raise
        except Exception as err:  # noqa: BLE001 - a layer that raises must not stop the worker
            reason = f"{type(err).__name__}: {err}".strip()
            trial.set_user_attr("status", FAILED)
            trial.set_user_attr("reason", reason[:2000])
            raise TrialFailed(reason) from None
        finally:
            self.stop.in_trial = False


# ---- the worker loop ---------------------------------------------------------------------------


def work(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], Any],
    *,
    heartbeat: Heartbeat,
    deadline: float | None = None,
    callbacks: tuple[Callable[..., Any], ...] = (),
    poll: float = 1.0,
) -> str:
    """Run trials of ``study`` until it has its target ("done"), its deadline or ``deadline``
    passes ("time"), or a signal asks to stop ("SIGTERM" / "SIGINT")."""
    stop = StopSignals()
    guarded = GuardedObjective(objective, heartbeat.retries, stop)
    started = 0
    with stop.installed():
        while True:
            if stop.requested:
                return stop.requested
            fail_stale_trials(study)
            tally = Tally.of(study, heartbeat.retries)
            if tally.done:
                return "done"
            now = time.time()
            expired = any(d is not None and now >= d for d in (tally.deadline, deadline))
            # like Optuna's optimize(timeout=...), a worker that `archdsl search` started (it passes
            # its deadline) starts one trial whatever the time; a worker that joins later does not
            if expired and (started or deadline is None):
                return "time"
            if tally.waiting == 0 and tally.free <= 0:
                # every slot is held by a running trial: wait, since one may die and be retried
                time.sleep(poll)
                continue
            started += 1
            try:
                study.optimize(
                    guarded, n_trials=1, catch=(TrialFailed,), callbacks=list(callbacks), gc_after_trial=False
                )
            except WorkerInterrupted:
                _retry_interrupted(study, guarded.current, heartbeat)
                return stop.requested or "SIGINT"
            except optuna.exceptions.UpdateFinishedTrialError:
                # this worker was too slow to stamp its heartbeat: another one failed the trial and
                # queued its retry; the result is dropped and the worker goes on
                continue


def _retry_interrupted(study: optuna.Study, trial_id: int | None, heartbeat: Heartbeat) -> None:
    if trial_id is None:
        return
    trial = study._storage.get_trial(trial_id)
    if trial.state == TrialState.FAIL and trial.user_attrs.get("status") == INTERRUPTED:
        heartbeat.callback()(study, trial)
