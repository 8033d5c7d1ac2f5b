"""Joining a study from any machine (``archdsl worker``) and listing the studies of a storage
(``archdsl studies``). A worker needs only the storage and the study name: the recipe, the
trial target, the deadline and the heartbeat settings are all stored in the study.

    >>> join("postgresql+psycopg://me@db/archdsl", "recall", workers=4)      # doctest: +SKIP
    {'study': 'recall', 'stopped': 'done', ...}
    >>> list_studies("postgresql+psycopg://me@db/archdsl")                   # doctest: +SKIP
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from archdsl.search.distributed import TARGET_ATTR, Tally, counts, heartbeat_of
from archdsl.search.recipe import RecipeError, recipe_from_dict
from archdsl.search.runner import RECIPE_ATTR, plan_run, quiet_optuna, run_worker, start_workers
from archdsl.search.study import open_storage
from archdsl.search.trials import best_trials, layout_line


def join(
    storage: str,
    study_name: str | None,
    *,
    workers: int = 1,
    device: str | None = None,
    on_trial: Callable[[FrozenTrial], None] | None = None,
) -> dict[str, Any]:
    """Run trials of a stored study here until it has its target or deadline, or a signal
    stops the worker(s). ``workers`` processes: one per GPU with ``device="cuda"``, else they
    split the CPU cores. Returns what the study looks like afterwards and why the work ended."""
    quiet_optuna()
    run = plan_run(None, storage=storage, study_name=study_name)
    retries = heartbeat_of(run.recipe).retries
    study = optuna.load_study(study_name=run.study_name, storage=open_storage(storage))
    before = Tally.of(study, retries)
    device = device or run.recipe.train.settings().get("device")
    seed = secrets.randbelow(2**31)  # workers that join at once must not draw the same layouts
    started = time.time()
    if before.done:
        stopped = "nothing left"
    elif workers == 1:
        callbacks = (lambda study, trial: on_trial(trial),) if on_trial is not None else ()
        stopped = run_worker(
            run, n_trials=before.target, deadline=None, sampler_seed=seed, workers=2, device=device,
            threads=None, callbacks=callbacks,
        )  # fmt: skip
    else:
        stopped = _run_processes(run, workers=workers, seed=seed, device=device)
    after = Tally.of(study, retries)
    return {
        "study": run.study_name, "stopped": stopped, "target": after.target, "counted": after.counted,
        "running": after.running, "waiting": after.waiting, "wall_s": time.time() - started,
    }  # fmt: skip


def _run_processes(run: Any, *, workers: int, seed: int, device: str | None) -> str:
    """``workers`` spawned processes; SIGINT/SIGTERM here is passed on, so each stops cleanly."""
    procs = start_workers(run, until_total=0, workers=workers, deadline=None, seed_base=seed, device=device)
    received: list[str] = []

    def forward(signum: int, frame: Any) -> None:
        received.append(signal.Signals(signum).name)
        for p in procs:
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signum)

    before = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for p in procs:
            while p.is_alive():
                p.join(timeout=0.5)
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
    failed = [p for p in procs if p.exitcode != 0]
    if failed:
        raise RecipeError(f"{len(failed)} worker(s) exited with an error (code {failed[0].exitcode}); see above")
    return received[0] if received else "done"


def list_studies(storage: str) -> list[dict[str, Any]]:
    """Every study of ``storage``: trials by state, against the target, and the best trials."""
    quiet_optuna()
    store = open_storage(storage)
    out = []
    for summary in optuna.get_all_study_summaries(store, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=store)
        attrs = study.user_attrs
        retries = 2
        if RECIPE_ATTR in attrs:
            try:
                retries = heartbeat_of(recipe_from_dict(attrs[RECIPE_ATTR])).retries
            except RecipeError:
                pass  # a recipe of another archdsl version: count with the default
        trials = study.get_trials(deepcopy=False)
        by_state = {s.name.lower(): 0 for s in TrialState}
        for t in trials:
            by_state[t.state.name.lower()] += 1
        best = best_trials(study, trials)
        out.append({
            "study": study.study_name,
            "archdsl": RECIPE_ATTR in attrs,
            "objectives": [o.get("name") for o in attrs.get("objectives", [])] or [d.name.lower() for d in study.directions],
            "directions": [d.name.lower() for d in study.directions],
            "trials": len(trials),
            "counted": sum(counts(t, retries) for t in trials),
            "target": attrs.get(TARGET_ATTR),
            "states": by_state,
            "best": [{"number": t.number, "values": list(t.values), "dsl": layout_line(t.user_attrs.get("dsl"))} for t in best],
        })  # fmt: skip
    return out
