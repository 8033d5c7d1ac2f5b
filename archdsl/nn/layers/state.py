"""Helpers for generation state shared by the layers."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from archdsl.errors import GenerationError


def state_nbytes(state: Any) -> int:
    """Bytes of every tensor in a layer's state (dataclass, dict, list or tensor), so the cost
    model's inference-state formula can be checked against what generation really allocates."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        return sum(state_nbytes(getattr(state, f.name)) for f in dataclasses.fields(state))
    if isinstance(state, dict):
        return sum(state_nbytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(state_nbytes(v) for v in state)
    return 0


def check_batch(layer: str, what: str, got: int, expected: int) -> None:
    """GenerationError unless ``what`` ("step" or "prefill") of layer type ``layer`` got the batch
    size ``expected`` that its state was made for."""
    if got != expected:
        raise GenerationError(
            f"{layer}: {what} got a batch of {got} sequences but the state was made for {expected}; "
            f"call init_state with batch={got}"
        )
