"""The two kinds of residual sub-layer the builder makes from graph nodes."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from archdsl.nn.norm import RMSNorm


class Residual(nn.Module):
    """``x + mixer(norm(x))``: one layer call of the language (pre-norm, as Llama and Mamba-2)."""

    def __init__(self, mixer: nn.Module, d_model: int, eps: float):
        super().__init__()
        self.norm = RMSNorm(d_model, eps)
        self.mixer = mixer

    def forward(self, x: torch.Tensor, *, reference: bool = False) -> torch.Tensor:
        return x + self.mixer(self.norm(x), reference=reference)

    def init_state(self, batch: int, *, max_len: int, device: Any, dtype: Any) -> Any:
        return self.mixer.init_state(batch, max_len=max_len, device=device, dtype=dtype)

    def step(self, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        y, state = self.mixer.step(self.norm(x), state)
        return x + y, state

    def can_prefill(self) -> bool:
        return callable(getattr(self.mixer, "prefill", None))

    def prefill(self, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        y, state = self.mixer.prefill(self.norm(x), state)
        return x + y, state


class ParallelResidual(nn.Module):
    """``x + sum_j branch_j(norm(x))`` where each branch is layers applied one after another
    (Hymba's attention and SSM heads side by side, Falcon-H1's parallel mixers)."""

    def __init__(self, branches: list[list[nn.Module]], d_model: int, eps: float):
        super().__init__()
        self.norm = RMSNorm(d_model, eps)
        self.branches = nn.ModuleList(nn.ModuleList(branch) for branch in branches)

    def forward(self, x: torch.Tensor, *, reference: bool = False) -> torch.Tensor:
        h = self.norm(x)
        total = None
        for branch in self.branches:
            y = h
            for layer in branch:
                y = layer(y, reference=reference)
            total = y if total is None else total + y
        return x + total

    def init_state(self, batch: int, *, max_len: int, device: Any, dtype: Any) -> Any:
        return [
            [layer.init_state(batch, max_len=max_len, device=device, dtype=dtype) for layer in branch]
            for branch in self.branches
        ]

    def step(self, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        return self._advance(x, state, "step")

    def can_prefill(self) -> bool:
        return all(callable(getattr(layer, "prefill", None)) for branch in self.branches for layer in branch)

    def prefill(self, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        return self._advance(x, state, "prefill")

    def _advance(self, x: torch.Tensor, state: Any, method: str) -> tuple[torch.Tensor, Any]:
        h = self.norm(x)
        total = None
        for branch, branch_state in zip(self.branches, state):
            y = h
            for k, layer in enumerate(branch):
                y, branch_state[k] = getattr(layer, method)(y, branch_state[k])
            total = y if total is None else total + y
        return x + total, state
