"""Where a study lives and how Optuna drives it: storage, samplers and pruners by name.

Storage. The default is an Optuna journal file, ``RUN/study.log`` (``JournalStorage`` with a
``JournalFileBackend``): it needs no server, every change is one appended line (a worker
killed mid-trial cannot corrupt what the others wrote), and the file lock lets several
processes on one machine share the study. Reads replay the log into memory once and then
only the new lines, so polling it for the live display costs little. SQLite would also work
without a server, but its writers wait on one database lock and every read is a query;
``--storage sqlite:///runs/x.db`` (or any other Optuna URL) still selects it.

    >>> storage = open_storage("runs/quickstart/study.log")      # doctest: +SKIP
    >>> sampler = make_sampler("tpe", seed=0, n_objectives=2, trials=20)
"""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend

from archdsl.search.recipe import RecipeError
from archdsl.search.storages import Heartbeat, HeartbeatJournalStorage, StorageUnavailable, first_line, open_rdb

JOURNAL_NAME = "study.log"


def open_storage(where: str | Path, heartbeat: Heartbeat | None = None) -> BaseStorage:
    """An Optuna URL (``sqlite:///x.db``, ``postgresql://...``) or a journal file path. Workers
    pass ``heartbeat``: running trials are stamped and a dead worker's trial is retried."""
    text = str(where)
    if "://" in text:
        try:
            return open_rdb(text, heartbeat)
        except StorageUnavailable as err:
            raise RecipeError(f"--storage: {err.message}") from None
        except Exception as err:  # noqa: BLE001 - SQLAlchemy raises many kinds; all mean "cannot open this URL"
            raise RecipeError(f"--storage: cannot open '{text}': {first_line(err)}") from None
    path = Path(text)
    if path.is_dir():
        path = path / JOURNAL_NAME
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = JournalFileBackend(str(path))
        return HeartbeatJournalStorage(backend, heartbeat) if heartbeat else JournalStorage(backend)
    except OSError as err:
        raise RecipeError(f"--storage: cannot use '{path}': {err.strerror or err}") from None


def make_sampler(
    name: str, *, seed: int, n_objectives: int, trials: int, workers: int = 1
) -> optuna.samplers.BaseSampler:
    """The recipe's sampler. Every one reads the constraints that ``trial.set_constraint`` stores."""
    # Small studies: start modelling after a third of the trials instead of Optuna's fixed 10.
    startup = max(3, min(10, trials // 3))
    if name == "tpe":
        # multivariate + group model the sites jointly and cope with sites that only exist in
        # some layouts (a choice inside an alternative); constant_liar keeps parallel workers apart.
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=startup, multivariate=True, group=True, constant_liar=workers > 1
        )
    if name == "nsgaii":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, trials // 3)))
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise RecipeError(f"[study] sampler: unknown sampler '{name}'")


def make_pruner(
    name: str, *, n_objectives: int, steps: int, eval_every: int | None, ladder: bool = False
) -> optuna.pruners.BasePruner:
    """Single-objective pruners act on the values the train callback reports; a
    multi-objective study has the fidelity ladder instead (Optuna cannot prune those), and a
    recipe's ladder replaces the pruner of a single-objective study too."""
    if n_objectives > 1 or name == "none" or ladder:
        return optuna.pruners.NopPruner()
    every = eval_every or max(1, steps // 10)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=every)
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=every, reduction_factor=3)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=every, max_resource=steps, reduction_factor=3)
    raise RecipeError(f"[study] pruner: unknown pruner '{name}'")


def study_names(storage: BaseStorage) -> list[str]:
    return [s.study_name for s in optuna.study.get_all_study_summaries(storage, include_best_trial=False)]
