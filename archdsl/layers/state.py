"""Helpers for generation state shared by the layers."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch


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
