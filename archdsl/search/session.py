"""``archdsl search``: one call that plans the run, prepares the study, runs the trials and
shows them (live panel, JSON lines or quiet). Returns the summary as a dict.

    >>> from archdsl.search import search, load_recipe
    >>> summary = search(load_recipe("search/quickstart.toml"), display="quiet")   # doctest: +SKIP

With several workers the trials run in spawned processes, so a script that calls ``search``
needs the usual ``if __name__ == "__main__":`` guard (``multiprocessing``'s rule).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from optuna.trial import TrialState
from rich.console import Console
from rich.live import Live

from archdsl.search.display import Monitor
from archdsl.search.distributed import default_workers, set_target
from archdsl.search.objective import SearchObjective
from archdsl.search.recipe import Recipe, RecipeError
from archdsl.search.runner import gpu_count, plan_run, prepare_study, quiet_optuna, run_worker, start_workers

DISPLAYS = ("live", "json", "quiet")
_STARTED = (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def search(
    recipe: Recipe | None,
    *,
    out: str | Path | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    trials: int | None = None,
    timeout: float | None = None,
    seed: int | None = None,
    workers: int | None = None,
    device: str | None = None,
    display: str = "live",
    console: Console | None = None,
) -> dict[str, Any]:
    """Run (or continue, or join) the study of ``recipe``; ``trials`` more trials this time."""
    if display not in DISPLAYS:
        raise RecipeError(f"display must be one of {', '.join(DISPLAYS)}, got {display!r}")
    quiet_optuna()
    run = plan_run(recipe, out=out, storage=storage, study_name=study_name, seed=seed)
    settings = run.recipe.study
    trials = settings.trials if trials is None else trials
    timeout = settings.timeout if timeout is None else timeout
    workers = settings.workers if workers is None else workers
    device = device or run.recipe.train.settings().get("device")
    if workers is None:
        workers = default_workers(device, gpus=gpu_count() if device == "cuda" else 0, cores=os.cpu_count() or 1)
    if trials < 1 or workers < 1:
        raise RecipeError("--trials and --workers must be positive")

    objective = SearchObjective(run.recipe, device=device)
    study = prepare_study(run, objective)
    set_target(study, trials=trials, timeout=timeout, retries=settings.retries)  # shared by every worker
    first = len(study.get_trials(deepcopy=False, states=_STARTED))
    deadline = None if timeout is None else time.time() + timeout
    # A continued study must not replay the same sampler draws: offset the seed by its size.
    seed_base = settings.seed + 7919 * first
    monitor = Monitor(
        study, objectives=[o.name for o in objective.objectives], first=first, planned=trials,
        workers=workers, deadline=deadline,
    )  # fmt: skip
    console = console or Console()

    def work() -> None:
        if workers == 1:
            callbacks = (lambda study, trial: monitor.emit_finished(),) if display == "json" else ()
            run_worker(
                run, n_trials=trials, deadline=deadline, sampler_seed=seed_base, workers=1, device=device,
                callbacks=callbacks,
            )  # fmt: skip
            return
        procs = start_workers(
            run, until_total=first + trials, workers=min(workers, trials), deadline=deadline, seed_base=seed_base,
            device=device,
        )  # fmt: skip
        try:
            while any(p.is_alive() for p in procs):
                for p in procs:
                    p.join(timeout=0.5)
                if display == "json":
                    monitor.emit_finished()
        finally:
            for p in procs:
                p.join()
        failed = [p for p in procs if p.exitcode not in (0, None)]
        if failed:
            raise RecipeError(f"{len(failed)} worker(s) exited with an error (code {failed[0].exitcode}); see above")

    if display == "live":
        with Live(monitor, console=console, refresh_per_second=2, transient=False):
            work()
    else:
        work()
    summary = monitor.summary()
    summary.update({"storage": run.storage, "out": str(run.out)})
    if display == "json":
        monitor.emit_finished()
        sys.stdout.write(json.dumps(summary) + "\n")
    return summary
