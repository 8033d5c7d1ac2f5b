"""The fidelity ladder: early stopping for multi-objective studies, where Optuna's pruners
do not apply.

A recipe lists training stages, e.g. ``[100, 400, 1600]`` steps. Every trial trains towards
the last stage; when it reaches an earlier one, its objective values there are stored in the
study (user attribute ``ladder``) and compared with those of every other trial that reached
the same stage. It goes on only if it lies in the best Pareto layers, which together hold a
``keep`` fraction of those trials; otherwise it stops there. The decision is made inside the
train callback, asynchronously like ASHA, so nothing is checkpointed or resumed: a trial that
goes on simply keeps training. Until ``min_trials`` trials have reached a stage every trial
goes on (there is nothing to compare with yet). Baselines always run to the end, so the
report compares the search with them at full fidelity.

    >>> ladder = Ladder([100, 400, 1600], keep=1/3, min_trials=2, directions=["maximize", "minimize"])
    >>> ladder.stage_at(400), ladder.stage_at(1600)
    (1, None)
    >>> ladder.goes_on([0.9, 10.0], [[0.5, 10.0], [0.7, 10.0]])
    True
    >>> ladder.goes_on([0.1, 10.0], [[0.5, 10.0], [0.7, 10.0], [0.6, 10.0]])
    False
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import optuna

LADDER_ATTR = "ladder"  # user attribute: {"stage index": [objective values at that stage]}


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` is no worse than ``b`` everywhere and better somewhere (all values minimised)."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def pareto_layers(points: Sequence[Sequence[float]]) -> list[int]:
    """Non-dominated sorting: the layer of each point (0 is the Pareto front), minimising.
    Quadratic in the number of points, which is the number of trials at one stage."""
    layer = [-1] * len(points)
    remaining = set(range(len(points)))
    depth = 0
    while remaining:
        front = {i for i in remaining if not any(dominates(points[j], points[i]) for j in remaining if j != i)}
        for i in front:
            layer[i] = depth
        remaining -= front
        depth += 1
    return layer


class Ladder:
    """Stage bookkeeping and the go-on rule; ``directions`` are Optuna's, one per objective."""

    def __init__(self, stages: Sequence[int], *, keep: float, min_trials: int, directions: Sequence[str]):
        self.stages = list(stages)
        self.keep = keep
        self.min_trials = min_trials
        self.signs = [1.0 if d == "minimize" else -1.0 for d in directions]

    def stage_at(self, step: int) -> int | None:
        """The index of the decision stage that ends at ``step``; None at the last stage or between stages."""
        try:
            index = self.stages.index(step)
        except ValueError:
            return None
        return index if index < len(self.stages) - 1 else None

    def goes_on(self, values: Sequence[float], others: Sequence[Sequence[float]]) -> bool:
        """Whether a trial with ``values`` at a stage trains on, given the other trials' values there."""
        if len(others) + 1 < self.min_trials:
            return True
        points = [self._minimised(v) for v in [values, *others]]
        layers = pareto_layers(points)
        quota = math.ceil(self.keep * len(points))
        ahead = sum(1 for layer in layers[1:] if layer < layers[0])
        return ahead < quota

    def decide(self, trial: optuna.Trial, stage: int, values: Sequence[float]) -> str | None:
        """Store ``values`` at ``stage`` for ``trial`` and return the reason to stop, or None.
        The other trials' values are read from the study's storage, so workers in other
        processes take part."""
        record = dict(trial.user_attrs.get(LADDER_ATTR, {}))
        record[str(stage)] = [float(v) for v in values]
        trial.set_user_attr(LADDER_ATTR, record)
        if trial.user_attrs.get("baseline"):
            return None
        others = []
        for other in trial.study.get_trials(deepcopy=False):
            if other.number == trial.number:
                continue
            at = other.user_attrs.get(LADDER_ATTR, {}).get(str(stage))
            if at is not None:
                others.append(at)
        if self.goes_on(values, others):
            return None
        kept = math.ceil(self.keep * (len(others) + 1))
        return (
            f"ladder: stopped after stage {stage + 1} of {len(self.stages)} ({self.stages[stage]} steps): "
            f"not among the best {kept} of the {len(others) + 1} trials there"
        )

    def _minimised(self, values: Sequence[float]) -> list[float]:
        return [s * v for s, v in zip(self.signs, values)]
