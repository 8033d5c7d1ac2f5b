"""Refuse a run that cannot fit before anything is allocated, with the figures (from the cost
model: weights, gradients and AdamW state per parameter, activations of one step)."""

from __future__ import annotations

import torch

from archdsl.costing.model import cost
from archdsl.nn.memory import available_bytes
from archdsl.training._settings import TrainError


def training_bytes(graph, seq_len: int, batch: int, act_bytes: int) -> dict[str, float]:
    """Bytes of one training step: float32 weights, float32 gradients, two float32 AdamW moments
    and the activations kept for backward (``act_bytes`` per element: 2 under bf16 autocast)."""
    c = cost(graph, seq_len=seq_len, batch=batch, act_bytes=act_bytes)
    parts = {
        "weights": 4.0 * c.params,
        "gradients": 4.0 * c.params,
        "optimizer": 8.0 * c.params,
        "activations": float(c.activation_memory),
    }
    parts["total"] = sum(parts.values())
    return parts


def check_training_fits(graph, seq_len: int, batch: int, device: torch.device, act_bytes: int) -> None:
    parts = training_bytes(graph, seq_len, batch, act_bytes)
    free = available_bytes(device)
    if free is not None and parts["total"] > free:
        shown = " + ".join(
            f"{name} {_gib(parts[name])}" for name in ("weights", "gradients", "optimizer", "activations")
        )
        raise TrainError(
            f"training needs {_gib(parts['total'])} ({shown}, batch {batch} x {seq_len} tokens) but {device} has "
            f"{_gib(free)} available; use a smaller model, batch or task"
        )


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:,.2f} GiB"
