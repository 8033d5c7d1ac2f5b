"""The settings of one training run, validated in one place (unknown names get a suggestion)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from archdsl.errors import ArchDSLError, did_you_mean


class TrainError(ArchDSLError):
    """A training run that cannot start: bad settings, a model too large for the device."""


class TrainSettings(BaseModel):
    """Every knob of the loop. ``archdsl.train(spec, task, **settings)`` takes these names."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    steps: int = Field(1000, ge=1, le=100_000_000, description="optimizer steps")
    batch: int = Field(32, ge=1, le=1_000_000, description="sequences per step")
    lr: float = Field(1e-3, gt=0.0, description="peak learning rate")
    seed: int = Field(0, ge=0, description="seeds the weights and the training batches")
    device: str = Field("cpu", description="torch device: cpu, cuda, cuda:1, ...")
    dtype: Literal["float32", "bfloat16"] | None = Field(
        None, description="autocast dtype; none: bfloat16 on CUDA, float32 on CPU (weights stay float32)"
    )
    eval_every: int | None = Field(None, ge=1, description="evaluate every K steps; none: 10 times per run")
    warmup: int | None = Field(None, ge=0, description="linear warm-up steps; none: 10% of the steps, at most 1000")
    min_lr_ratio: float = Field(0.1, ge=0.0, le=1.0, description="the cosine ends at lr * min_lr_ratio")
    weight_decay: float = Field(0.1, ge=0.0, description="AdamW decay of matrices (never norms, biases, embeddings)")
    betas: tuple[float, float] = Field((0.9, 0.95), description="AdamW betas")
    grad_clip: float | None = Field(1.0, gt=0.0, description="clip the gradient norm to this; none: no clipping")
    aux_loss: float = Field(0.01, ge=0.0, description="weight of MoE load-balancing losses")
    compile: bool = Field(False, description="torch.compile the model")
    threads: int | None = Field(None, ge=1, le=1024, description="torch CPU threads for the run; none: unchanged")
    d_model: int | None = Field(None, ge=8, description="override the program's d_model")
    vocab: int | None = Field(None, ge=2, description="model vocabulary; none: the task's (at least the task's)")

    @model_validator(mode="after")
    def _consistent(self) -> TrainSettings:
        if self.warmup is not None and self.warmup > self.steps:
            raise ValueError(f"warmup ({self.warmup}) is longer than the run ({self.steps} steps)")
        return self

    @property
    def eval_interval(self) -> int:
        return self.eval_every if self.eval_every is not None else max(1, self.steps // 10)

    @property
    def warmup_steps(self) -> int:
        return self.warmup if self.warmup is not None else min(1000, self.steps // 10)

    @classmethod
    def parse(cls, settings: dict[str, Any]) -> TrainSettings:
        """Validate keyword settings; every problem is a TrainError naming the setting."""
        fields = cls.model_fields
        for key in settings:
            if key not in fields:
                raise TrainError(
                    f"train() has no setting '{key}'{did_you_mean(key, fields)}; settings: {', '.join(fields)}"
                )
        try:
            return cls.model_validate(settings)
        except ValidationError as err:
            first = err.errors()[0]
            loc = first["loc"]
            if loc:
                raise TrainError(f"train setting '{loc[0]}': {first['msg']} (got {settings.get(loc[0])!r})") from None
            raise TrainError(f"train settings: {first['msg'].removeprefix('Value error, ')}") from None
