"""Rotary position embedding as Hugging Face Llama computes it (the "default" rope type).

Pairs are the two halves of the head dimension (``rotate_half``), not interleaved neighbours, and
frequencies are ``1 / theta^(2i / head_dim)`` in float32, so weights trained with
``LlamaRotaryEmbedding`` work unchanged::

    >>> rope = Rotary(head_dim=8, theta=10000.0)
    >>> cos, sin = rope.cos_sin(torch.arange(5), torch.float32)
    >>> cos.shape
    torch.Size([5, 8])
"""

from __future__ import annotations

import torch


def inv_freq(head_dim: int, theta: float, device: torch.device | str | None = None) -> torch.Tensor:
    """``1 / theta^(arange(0, head_dim, 2) / head_dim)`` in float32, shape ``(head_dim // 2,)``."""
    return 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim))


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``(x1, x2) -> (-x2, x1)`` over the two halves of the last dimension."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` (..., head_dim) by angles whose ``cos``/``sin`` broadcast against it."""
    return x * cos + rotate_half(x) * sin


class Rotary:
    """Computes cos/sin tables for given positions. Not an ``nn.Module``: it has no weights, and
    keeping the frequencies out of the module's buffers stops ``model.to(bfloat16)`` from rounding
    them (the angles are always computed in float32, then cast, as HF does)."""

    def __init__(self, head_dim: int, theta: float):
        self.head_dim = head_dim
        self.theta = theta
        self._inv_freq: torch.Tensor | None = None

    def _freqs(self, device: torch.device) -> torch.Tensor:
        if self._inv_freq is None or self._inv_freq.device != device:
            self._inv_freq = inv_freq(self.head_dim, self.theta, device)
        return self._inv_freq

    def cos_sin(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """``positions`` (T,) integer -> ``cos, sin`` each (T, head_dim) in ``dtype``."""
        freqs = positions.float()[:, None] * self._freqs(positions.device)[None, :]  # (T, head_dim/2)
        emb = torch.cat((freqs, freqs), dim=-1)  # (T, head_dim)
        return emb.cos().to(dtype), emb.sin().to(dtype)
