"""Running a search: open (or join) the study, enqueue the baselines, run the workers.

Workers share nothing but the study's storage (Optuna's journal file by default), as the
Optuna docs advise: ``--workers N`` starts N processes on this machine, each with its own
sampler and a 1/N share of the CPU threads; more machines join by running the same command
against a shared ``--storage``.

    >>> summary = run_search(load_recipe("search/quickstart.toml"), out="runs/quickstart")  # doctest: +SKIP
"""

from __future__ import annotations

import multiprocessing
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

import archdsl
from archdsl.errors import ArchDSLError
from archdsl.search.distributed import heartbeat_of, placements, work
from archdsl.search.objective import SearchObjective
from archdsl.search.recipe import Recipe, RecipeError, recipe_from_dict
from archdsl.search.study import JOURNAL_NAME, make_pruner, make_sampler, open_storage, study_names

RECIPE_ATTR = "recipe"


@dataclass(frozen=True)
class Run:
    """Where a search runs: its recipe (as stored in the study), storage and study name."""

    recipe: Recipe
    storage: str  # journal file path or Optuna URL
    study_name: str
    out: Path


def plan_run(
    recipe: Recipe | None,
    *,
    out: str | Path | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    seed: int | None = None,
) -> Run:
    """Resolve where the study lives. Without a recipe, the recipe stored in the study is used."""
    if recipe is None:
        if storage is None and out is None:
            raise RecipeError("give a RECIPE, or --out RUN / --storage URL of a study to join")
        where = storage or str(Path(out) / JOURNAL_NAME)
        study = load_stored_study(where, study_name)
        recipe = recipe_from_dict(study.user_attrs[RECIPE_ATTR], filename=f"{where} (study {study.study_name})")
        return Run(recipe, where, study.study_name, Path(out) if out else Path(where).parent)
    data = recipe.to_toml_dict()  # the space file inlined: the study carries all it needs
    if seed is not None:
        data["study"]["seed"] = seed
    recipe = recipe_from_dict(data, filename=recipe.path or "<recipe>")
    out_dir = Path(out) if out is not None else Path("runs") / recipe.name
    return Run(recipe, storage or str(out_dir / JOURNAL_NAME), study_name or recipe.name, out_dir)


def load_stored_study(where: str, name: str | None) -> optuna.Study:
    if "://" not in where and not Path(where).exists():
        raise RecipeError(f"no study storage at '{where}'")
    storage = open_storage(where)
    names = study_names(storage)
    if name is None:
        if len(names) != 1:
            raise RecipeError(
                f"'{where}' holds {len(names)} studies ({', '.join(names) or 'none'}); choose with --study"
            )
        name = names[0]
    if name not in names:
        raise RecipeError(f"no study '{name}' in '{where}'; it holds: {', '.join(names) or 'none'}")
    study = optuna.load_study(study_name=name, storage=storage)
    if RECIPE_ATTR not in study.user_attrs:
        raise RecipeError(f"study '{name}' in '{where}' was not made by archdsl search (no recipe stored)")
    return study


def prepare_study(run: Run, objective: SearchObjective) -> optuna.Study:
    """Create the study or check that the stored one has the same recipe; enqueue the
    baselines once; put trials that a killed or interrupted worker left behind back in the queue."""
    storage = open_storage(run.storage)
    study = optuna.create_study(
        study_name=run.study_name, storage=storage, directions=objective.directions, load_if_exists=True
    )
    stored = study.user_attrs.get(RECIPE_ATTR)
    if stored is None:
        study.set_user_attr(RECIPE_ATTR, run.recipe.to_toml_dict())
        study.set_user_attr("objectives", [o.__dict__ for o in objective.objectives])
        study.set_user_attr("archdsl", archdsl.__version__)
    else:
        _check_same_recipe(run, recipe_from_dict(stored, filename="the stored recipe"))
    if [d.name.lower() for d in study.directions] != objective.directions:
        raise RecipeError(f"study '{run.study_name}' optimises other directions; use another --out or --study")
    if not study.user_attrs.get("baselines_enqueued"):
        for i, text in enumerate(run.recipe.study.baselines):
            try:
                params = objective.space.match(
                    archdsl.parse(text, filename=f"baselines[{i}]", **objective.space_settings)
                )
            except ArchDSLError as err:
                raise RecipeError(f"[study] baselines[{i}] ({text!r}): {err.message}", file=run.recipe.path) from None
            study.enqueue_trial(params, user_attrs={"baseline": text})
        study.set_user_attr("baselines_enqueued", True)
    return study


def _check_same_recipe(run: Run, stored: Recipe) -> None:
    mine, theirs = run.recipe.identity(), stored.identity()
    if mine != theirs:
        keys = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        raise RecipeError(
            f"study '{run.study_name}' in '{run.storage}' was run with a different recipe "
            f"(it differs in [{'], ['.join(keys)}]); continue it unchanged, or start another with --out or --study",
            file=run.recipe.path,
        )


def quiet_optuna() -> None:
    """Our display replaces Optuna's per-trial log lines; its experimental warnings are noise here."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")


def run_worker(
    run: Run,
    *,
    n_trials: int | None,
    deadline: float | None,
    sampler_seed: int,
    workers: int,
    until_total: int | None = None,
    threads: int | None = None,
    device: str | None = None,
    callbacks: tuple[Callable[..., Any], ...] = (),
) -> str:
    """One worker: its own sampler, the shared study; trials until the study has its target or
    the deadline passes. Returns why it stopped: "done", "time", "SIGINT" or "SIGTERM".
    ``n_trials`` and ``until_total`` are not quotas: the target stored in the study decides,
    exactly under races (archdsl.search.distributed)."""
    import torch

    quiet_optuna()
    if threads is not None:
        torch.set_num_threads(threads)
    objective = SearchObjective(run.recipe, device=device)
    sampler = make_sampler(
        run.recipe.study.sampler, seed=sampler_seed, n_objectives=len(objective.objectives),
        trials=run.recipe.study.trials, workers=workers,
    )  # fmt: skip
    pruner = make_pruner(
        run.recipe.study.pruner, n_objectives=len(objective.objectives), steps=objective.steps,
        eval_every=objective.eval_every, ladder=objective.ladder is not None,
    )  # fmt: skip
    heartbeat = heartbeat_of(run.recipe)
    storage = open_storage(run.storage, heartbeat)
    study = optuna.load_study(study_name=run.study_name, storage=storage, sampler=sampler, pruner=pruner)
    return work(study, objective, heartbeat=heartbeat, deadline=deadline, callbacks=callbacks)


def _worker_process(kwargs: dict[str, Any]) -> None:
    run = Run(recipe_from_dict(kwargs.pop("recipe")), kwargs.pop("storage"), kwargs.pop("study_name"), Path("."))
    run_worker(run, **kwargs)


def start_workers(
    run: Run, *, until_total: int, workers: int, deadline: float | None, seed_base: int, device: str | None
):
    """Start ``workers`` processes (spawned: a clean interpreter each, no copied torch state)
    that run trials until the study has the target stored in it (``until_total`` is kept for
    callers; the stored target decides)."""
    context = multiprocessing.get_context("spawn")
    procs = []
    gpus = gpu_count() if device == "cuda" else 0
    places = placements(workers, device, gpus=gpus, cores=os.cpu_count() or 1)  # a GPU each, or a share of the cores
    for i, (dev, threads) in enumerate(places):
        kwargs = {
            "recipe": run.recipe.to_toml_dict(), "storage": run.storage, "study_name": run.study_name,
            "n_trials": None, "until_total": until_total, "deadline": deadline, "sampler_seed": seed_base + i,
            "workers": workers, "threads": threads, "device": dev,
        }  # fmt: skip
        proc = context.Process(target=_worker_process, args=(kwargs,), name=f"archdsl-worker-{i}")
        proc.start()
        procs.append(proc)
    return procs


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
