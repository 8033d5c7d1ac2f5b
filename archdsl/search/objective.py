"""The objective of a search: one trial reads as sample -> cost / budget -> build -> train -> report.

A layout over the budget is recorded as infeasible (``trial.set_constraint``, one constraint
per budget limit, positive when over) and never built. A trial that cannot be sampled,
diverges or does not fit ends as failed with its reason; the study goes on. Every trial
stores its layout as rolled DSL text, its full cost, its metrics and its status as user
attributes, so a report (or optuna-dashboard) needs nothing but the study. A layout that an
earlier trial trained to the end is not trained again: its metrics are reused (``same_as``).

    >>> objective = SearchObjective(load_recipe("search/quickstart.toml"))   # doctest: +SKIP
    >>> optuna.create_study(directions=objective.directions).optimize(objective, n_trials=2)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import optuna

import archdsl
from archdsl.costing.budget import KEYS, Budget
from archdsl.costing.report import model_json
from archdsl.errors import ArchDSLError
from archdsl.search.ladder import Ladder
from archdsl.search.recipe import Recipe, RecipeError
from archdsl.syntax.printer import print_spec

# Statuses stored as the user attribute "status"; Optuna's own state says COMPLETE / PRUNED / FAIL.
FINISHED, PRUNED, STOPPED, INFEASIBLE, FAILED, INTERRUPTED = (
    "finished", "pruned", "stopped", "infeasible", "failed", "interrupted",
)  # fmt: skip


class TrialFailed(ArchDSLError):
    """A trial that ended with a reason (cannot be sampled, diverged, does not fit); the
    study catches it and goes on."""


@dataclass(frozen=True)
class ObjectiveSpec:
    """One objective with its direction: a task metric or an ``archdsl.Budget`` cost key."""

    name: str
    direction: str  # "maximize" or "minimize"
    kind: str  # "metric" or "cost"

    def measure_cost(self, cost: Any) -> float:
        # A budget limit measures exactly one key at one length: reuse its parser and measurer.
        budget = Budget.parse(f"{self.name}>=0")
        return float(budget.check(cost).values[0][1])


def resolve_objectives(recipe: Recipe, metrics: dict[str, str]) -> list[ObjectiveSpec]:
    """Directions for every objective: the recipe's, else the task's for a metric, else
    "minimize" for a cost key. An unknown name is an error naming both families."""
    out = []
    for objective in recipe.objectives():
        if objective.name in metrics:
            out.append(ObjectiveSpec(objective.name, objective.direction or metrics[objective.name], "metric"))
            continue
        key = objective.name.split("@", 1)[0]
        if key in KEYS:
            try:
                Budget.parse(f"{objective.name}>=0")
            except ArchDSLError as err:
                raise RecipeError(f"[study] objectives: '{objective.name}': {err.message}", file=recipe.path) from None
            out.append(ObjectiveSpec(objective.name, objective.direction or "minimize", "cost"))
            continue
        raise RecipeError(
            f"[study] objectives: unknown objective '{objective.name}'; expected a metric of task "
            f"'{recipe.task.name}' ({', '.join(metrics)}) or a cost key "
            f"({', '.join(k.name + ('@LEN' if k.at else '') for k in KEYS.values())})",
            file=recipe.path,
        )
    return out


def constraint_value(limit: Any, value: float) -> float:
    """Optuna's constraint for one budget limit: <= 0 when it holds, else how far over,
    relative to the limit (0.26 is 26 % over), so limits of different units compare. A broken
    strict limit (``<`` at equality) is a tiny positive number, never 0, which Optuna counts as met."""
    scale = abs(limit.value) or 1.0
    if limit.op in ("<=", "<"):
        distance = (value - limit.value) / scale
    elif limit.op in (">=", ">"):
        distance = (limit.value - value) / scale
    else:  # ==
        distance = abs(value - limit.value) / scale
    if limit.holds(value):
        return min(distance, 0.0)
    return max(distance, 1e-12)


class SearchObjective:
    """Callable objective for ``study.optimize``; built once per worker from a recipe."""

    def __init__(self, recipe: Recipe, *, device: str | None = None):
        from archdsl.tasks import get_task
        from archdsl.training import TrainSettings

        self.recipe = recipe
        try:
            self.task = get_task(recipe.task.name, **recipe.task.settings())
        except ArchDSLError as err:
            raise RecipeError(f"[task] {err.message}", file=recipe.path) from None
        settings = {"vocab": self.task.vocab_size, **recipe.space.model_settings()}
        text, filename = recipe.space_text()
        self.space_settings = settings  # baselines are parsed with the same model settings
        self.space = archdsl.parse_space(text, filename=filename, **settings)
        self.budget = Budget.parse(recipe.budget.limits) if recipe.budget.limits.strip() else None
        self.seq_len = recipe.budget.seq_len or self.task.seq_len
        self.objectives = resolve_objectives(recipe, dict(self.task.metrics))
        self.train_settings = recipe.train.settings()
        if device is not None:
            self.train_settings["device"] = device
        self.ladder = None
        if recipe.ladder is not None:
            self.train_settings["steps"] = recipe.ladder.stages[-1]
            every = self.train_settings.get("eval_every") or math.gcd(*recipe.ladder.stages)
            if any(s % every for s in recipe.ladder.stages):
                raise RecipeError(
                    f"[train] eval_every = {every} must divide every ladder stage {recipe.ladder.stages}",
                    file=recipe.path,
                )
            self.train_settings["eval_every"] = every
            self.ladder = Ladder(
                recipe.ladder.stages, keep=recipe.ladder.keep, min_trials=recipe.ladder.min_trials,
                directions=self.directions,
            )  # fmt: skip
        self.trains = any(o.kind == "metric" for o in self.objectives)
        try:  # bad train settings fail now, not in every trial
            checked = TrainSettings.parse(self.train_settings)
        except ArchDSLError as err:
            raise RecipeError(f"[train] {err.message}", file=recipe.path) from None
        self.steps, self.eval_every = checked.steps, checked.eval_interval

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        started = time.perf_counter()
        # 1. sample: a concrete layout of the space
        try:
            spec = self.space.sample(trial)
        except ArchDSLError as err:
            raise self._fail(trial, f"cannot sample: {err.message}") from None
        trial.set_user_attr("dsl", print_spec(spec, roll=True))
        sampled = time.perf_counter()

        # 2. cost and budget: analytic, before anything is allocated
        try:
            cost = archdsl.cost(spec, seq_len=self.seq_len)
        except ArchDSLError as err:
            raise self._fail(trial, f"cannot cost: {err.message}") from None
        check = self.budget.check(cost) if self.budget is not None else None
        trial.set_user_attr("cost", model_json("trial", [cost], check))
        cost_values = {o.name: o.measure_cost(cost) for o in self.objectives if o.kind == "cost"}
        trial.set_user_attr("cost_values", cost_values)
        if check is not None:
            # A retried trial arrives with its first run's constraints copied in (same layout, same
            # values); Optuna would warn and keep them, so they are set only once.
            already = getattr(trial, "constraints", None) or {}
            for limit, value in check.values:
                if limit.text not in already:
                    trial.set_constraint(limit.text, constraint_value(limit, value))
            if not check.ok:
                reason = "over budget: " + "; ".join(str(v) for v in check.violations)
                self._end(trial, INFEASIBLE, reason)
                raise optuna.TrialPruned(reason)

        # 3 + 4. build and train (the same loop `archdsl train` runs)
        metrics: dict[str, float] = {}
        costed = time.perf_counter()
        # where the time goes (the benchmark's machinery share); set before training so a
        # trial that is pruned or stopped keeps it too
        trial.set_user_attr("timing", {"sample_s": sampled - started, "cost_s": costed - sampled})
        earlier = _finished_with(trial, trial.user_attrs["dsl"]) if self.trains else None
        if earlier is not None:
            # A sampler may propose a layout again (TPE does, about one trial in six on recall.toml):
            # the layout's result is the one measured, and training it again would only cost time.
            trial.set_user_attr("same_as", earlier.number)
            for key in ("metrics", "train", "steps"):
                if key in earlier.user_attrs:
                    trial.set_user_attr(key, earlier.user_attrs[key])
            metrics = dict(earlier.user_attrs.get("metrics", {}))
        elif self.trains:
            metrics = self._train(trial, spec, cost_values)

        # 5. report
        values = []
        for o in self.objectives:
            value = cost_values[o.name] if o.kind == "cost" else metrics.get(o.name)
            if value is None or not math.isfinite(value):
                raise self._fail(trial, f"metric '{o.name}' is {value!r} at the end of training")
            values.append(float(value))
        self._end(trial, FINISHED, None)
        return values[0] if len(values) == 1 else tuple(values)

    # ---- training ----------------------------------------------------------------------------

    def _train(self, trial: optuna.Trial, spec: Any, cost_values: dict[str, float]) -> dict[str, float]:
        single = len(self.objectives) == 1

        def on_evaluation(event: Any) -> str | None:
            if self.ladder is not None:
                # the ladder (any number of objectives; it replaces the pruner when given)
                stage = self.ladder.stage_at(event.step)
                if stage is None:
                    return None
                values = [
                    cost_values[o.name] if o.kind == "cost" else event.metrics.get(o.name, math.nan)
                    for o in self.objectives
                ]
                if not all(math.isfinite(v) for v in values):
                    return None  # a diverging run ends by itself, as failed
                return self.ladder.decide(trial, stage, values)
            if single:
                # Optuna's pruners: report the objective, let the study's pruner decide.
                value = event.metrics.get(self.objectives[0].name)
                if value is None or not math.isfinite(value):
                    return None
                trial.report(float(value), event.step)
                if trial.should_prune():
                    reason = f"pruned at step {event.step}: {self.objectives[0].name} = {value:.4g}"
                    self._end(trial, PRUNED, reason, steps=event.step)
                    raise optuna.TrialPruned(reason)
            return None

        seed = self.recipe.study.seed * 100_003 + trial.number
        started = time.perf_counter()
        try:
            result = archdsl.train(spec, self.task, seed=seed, callback=on_evaluation, **self.train_settings)
        except optuna.TrialPruned:
            self._timing(trial, train_s=time.perf_counter() - started)
            raise
        except ArchDSLError as err:  # e.g. the model does not fit in memory, a bad train setting
            raise self._fail(trial, err.message) from None
        except (MemoryError, RuntimeError) as err:
            if isinstance(err, MemoryError) or "out of memory" in str(err).lower():
                raise self._fail(trial, f"does not fit: {err}") from None
            raise
        except KeyboardInterrupt:
            self._end(trial, INTERRUPTED, "interrupted")
            raise
        self._timing(trial, train_s=time.perf_counter() - started)
        trial.set_user_attr("train", _train_summary(result))
        trial.set_user_attr("metrics", dict(result.metrics))
        trial.set_user_attr("steps", result.steps)
        if result.status == "diverged":
            raise self._fail(trial, f"diverged: {result.reason}", steps=result.steps)
        if result.status == "stopped":
            self._end(trial, STOPPED, result.reason, steps=result.steps)
            raise optuna.TrialPruned(result.reason)
        return dict(result.metrics)

    def _timing(self, trial: optuna.Trial, **seconds: float) -> None:
        trial.set_user_attr("timing", {**trial.user_attrs.get("timing", {}), **seconds})

    # ---- endings -------------------------------------------------------------------------------

    def _end(self, trial: optuna.Trial, status: str, reason: str | None, steps: int | None = None) -> None:
        trial.set_user_attr("status", status)
        if reason:
            trial.set_user_attr("reason", reason)
        if steps is not None:
            trial.set_user_attr("steps", steps)

    def _fail(self, trial: optuna.Trial, reason: str, steps: int | None = None) -> TrialFailed:
        self._end(trial, FAILED, reason, steps)
        return TrialFailed(reason)


def _finished_with(trial: optuna.Trial, dsl: str) -> optuna.trial.FrozenTrial | None:
    """An earlier trial of the study that trained the same layout to the end, if any (a trial
    that itself reused one points to it, so the first is returned)."""
    done = trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    same = [t for t in done if t.user_attrs.get("dsl") == dsl and t.user_attrs.get("status") == FINISHED]
    return min(same, key=lambda t: t.number, default=None)


def _train_summary(result: Any) -> dict[str, Any]:
    """What the report needs of a training run (the curve is kept short)."""
    data = result.to_dict()
    keep = ("status", "reason", "steps", "metrics", "tokens_per_s", "peak_mem_bytes", "wall_s", "params", "curve")
    return {k: data[k] for k in keep if k in data}
