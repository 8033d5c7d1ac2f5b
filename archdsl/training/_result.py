"""What a run gives back: the event a callback sees after each evaluation, and the result."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class TrainEvent:
    """Passed to ``callback(event)`` after every evaluation. ``metrics`` are the test metrics
    (e.g. ``{"loss": .., "accuracy": ..}``), ``train_loss`` the mean training loss since the
    last evaluation."""

    step: int
    metrics: dict[str, float]
    elapsed_s: float
    train_loss: float
    tokens_per_s: float


@dataclass
class TrainResult:
    """The outcome of :func:`archdsl.train`.

    ``status`` is ``finished``, ``diverged`` (the loss became NaN or infinite; ``reason`` names
    the step) or ``stopped`` (the callback asked; ``reason`` is what it returned). ``metrics``
    are the test metrics of the final weights (for ``diverged``: the last finite weights),
    ``best`` the best value of each metric over the evaluations, ``curve`` one entry per
    evaluation (step, train_loss, test metrics, elapsed_s). ``model`` is the trained module
    (not part of :meth:`to_dict`).
    """

    status: Literal["finished", "diverged", "stopped"]
    reason: str | None
    steps: int
    metrics: dict[str, float]
    best: dict[str, float]
    curve: list[dict[str, float]]
    tokens_per_s: float
    peak_mem_bytes: int
    wall_s: float
    params: int
    task: str = ""
    spec: str = ""  # the canonical text of the trained model (its d_model and vocab included)
    main_metric: str = ""
    directions: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    model: Any = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (NaN and infinities become None)."""
        return _json_safe(
            {
                "status": self.status,
                "reason": self.reason,
                "steps": self.steps,
                "metrics": self.metrics,
                "best": self.best,
                "curve": self.curve,
                "tokens_per_s": self.tokens_per_s,
                "peak_mem_bytes": self.peak_mem_bytes,
                "wall_s": self.wall_s,
                "params": self.params,
                "task": self.task,
                "spec": self.spec,
                "main_metric": self.main_metric,
                "directions": self.directions,
                "settings": self.settings,
            }
        )


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value
