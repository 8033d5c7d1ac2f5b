"""Reading a study back: each trial's status, layout and values, as the display and the report see them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

# The display folds the statuses into the five counts the user watches.
SHOWN = ("running", "finished", "pruned", "infeasible", "failed")
_FOLD = {"stopped": "pruned", "interrupted": "failed", "waiting": "running"}


def format_value(name: str, value: float | None) -> str:
    """An objective or cost value in the unit of its name: bytes as KiB/MiB, counts as K/M/G."""
    from archdsl.costing.budget import format_bytes, format_count

    if value is None:
        return ""
    key = name.split("@", 1)[0]
    if key in ("state", "kv", "act_mem", "train_mem"):
        return format_bytes(value)
    if key in ("params", "nonemb_params", "layers") or "flops" in key:
        return format_count(value)
    return f"{value:.4g}"


def layout_line(dsl: str | None) -> str:
    """The layout without its model header (the same for every trial of a study), on one line."""
    lines = [line for line in (dsl or "").splitlines() if line.strip() and not line.lstrip().startswith("model ")]
    return " ".join(line.strip() for line in lines)


def status_of(trial: FrozenTrial) -> str:
    """finished / pruned / stopped (ladder) / infeasible / failed / interrupted / running / waiting."""
    if trial.state == TrialState.RUNNING:
        return "running"
    if trial.state == TrialState.WAITING:
        return "waiting"
    status = trial.user_attrs.get("status")
    if status:
        return status
    return {TrialState.COMPLETE: "finished", TrialState.PRUNED: "pruned"}.get(trial.state, "failed")


def shown_status(trial: FrozenTrial) -> str:
    status = status_of(trial)
    return _FOLD.get(status, status)


def counts(trials: list[FrozenTrial]) -> dict[str, int]:
    out = dict.fromkeys(SHOWN, 0)
    for t in trials:
        if t.state != TrialState.WAITING:
            out[shown_status(t)] = out.get(shown_status(t), 0) + 1
    return out


def feasible(trial: FrozenTrial) -> bool:
    return all(v <= 0 for v in trial.constraints.values())


def is_done(trial: FrozenTrial) -> bool:
    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def best_trials(study: optuna.Study, trials: list[FrozenTrial] | None = None) -> list[FrozenTrial]:
    """Feasible finished trials that no other dominates (the best one for one objective),
    sorted by the first objective, best first; a trial that reused an earlier trial's result
    (the same layout, see objective.py) is not listed again."""
    trials = study.get_trials(deepcopy=False) if trials is None else trials
    done = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE and t.values is not None and feasible(t) and "same_as" not in t.user_attrs
    ]
    if not done:
        return []
    signs = [1.0 if d == optuna.study.StudyDirection.MINIMIZE else -1.0 for d in study.directions]
    points = [[s * v for s, v in zip(signs, t.values)] for t in done]
    front = [
        t
        for t, p in zip(done, points)
        if not any(all(a <= b for a, b in zip(q, p)) and any(a < b for a, b in zip(q, p)) for q in points)
    ]
    return sorted(front, key=lambda t: (signs[0] * t.values[0], t.number))


@dataclass(frozen=True)
class TrialRow:
    """One trial as the display, the JSON lines and the report show it."""

    number: int
    status: str
    dsl: str | None
    values: list[float] | None
    metrics: dict[str, float]
    cost: dict[str, float]
    reason: str | None
    baseline: str | None
    steps: int | None
    duration_s: float | None
    feasible: bool  # finished within the budget (a point that may stand on the Pareto front)

    @classmethod
    def of(cls, trial: FrozenTrial) -> TrialRow:
        duration = None
        if trial.datetime_start is not None and trial.datetime_complete is not None:
            duration = (trial.datetime_complete - trial.datetime_start).total_seconds()
        return cls(
            number=trial.number,
            status=status_of(trial),
            dsl=trial.user_attrs.get("dsl"),
            values=list(trial.values) if trial.values is not None else None,
            metrics=dict(trial.user_attrs.get("metrics", {})),
            cost=dict(trial.user_attrs.get("cost_values", {})),
            reason=trial.user_attrs.get("reason"),
            baseline=trial.user_attrs.get("baseline"),
            steps=trial.user_attrs.get("steps"),
            duration_s=duration,
            feasible=trial.state == TrialState.COMPLETE and feasible(trial),
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}
