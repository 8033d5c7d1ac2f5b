"""`conv`: LFM2's gated short convolution.

``in_proj`` maps x to three chunks B, C, x'; the layer returns ``out_proj(C * conv(B * x'))``
where ``conv`` is a causal depthwise convolution of ``kernel`` taps without bias. Weights are
named and shaped as Hugging Face ``Lfm2ShortConv`` (``in_proj``, ``conv`` an ``nn.Conv1d`` with
``groups = d_model``, ``out_proj``), so a state dict copies across. Generation keeps the last
``kernel - 1`` inputs of the convolution.

    >>> from archdsl.spec.model import ModelSettings
    >>> ShortConv(ConvParams(kernel=3), ModelSettings(d_model=32))(torch.randn(2, 7, 32)).shape
    torch.Size([2, 7, 32])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from archdsl.layers.builtin.conv import ConvParams
from archdsl.nn.layers.causal_conv import causal_conv, conv_from, conv_step
from archdsl.nn.layers.state import check_batch
from archdsl.nn.linear import Linear
from archdsl.spec.model import ModelSettings


@dataclass
class ConvState:
    """The last ``kernel - 1`` inputs of the convolution (B * x'), oldest first."""

    conv: torch.Tensor  # (B, D, kernel - 1)


class ShortConv(nn.Module):
    def __init__(self, params: ConvParams, model: ModelSettings):
        super().__init__()
        self.params = params.resolve(model)
        d, self.kernel = model.d_model, self.params.kernel
        self.in_proj = Linear(d, 3 * d, bias=False)
        # Padding is applied on the left only in forward, so the layer's own padding stays 0.
        self.conv = nn.Conv1d(d, d, kernel_size=self.kernel, groups=d, bias=False)
        self.out_proj = Linear(d, d, bias=False)

    def forward(self, x: torch.Tensor, *, reference: bool = False) -> torch.Tensor:
        b, c, h = self.in_proj(x).chunk(3, dim=-1)  # (B, T, D) each
        bx = b * h
        if reference:
            y = self._conv_reference(bx)
        else:
            y = causal_conv(bx, self.conv.weight)  # (B, T, D)
        return self.out_proj(c * y)

    def _conv_reference(self, bx: torch.Tensor) -> torch.Tensor:
        """Plain twin: y_t = sum_j w[:, j] * bx_{t - (kernel-1) + j}, one position at a time
        (Conv1d is a cross-correlation: the last tap multiplies the current input)."""
        w = self.conv.weight[:, 0]  # (D, kernel)
        T = bx.shape[1]
        out = []
        for t in range(T):
            acc = torch.zeros_like(bx[:, t])
            for j in range(self.kernel):
                src = t - (self.kernel - 1) + j
                if src >= 0:
                    acc = acc + w[:, j] * bx[:, src]
            out.append(acc)
        return torch.stack(out, dim=1)

    def init_state(self, batch: int, *, max_len: int, device, dtype) -> ConvState:
        return ConvState(conv=torch.zeros(batch, self.conv.in_channels, self.kernel - 1, device=device, dtype=dtype))

    def prefill(self, x: torch.Tensor, state: ConvState) -> tuple[torch.Tensor, ConvState]:
        """A whole prompt x (B, T, D) through the conv1d path; the state keeps its last inputs."""
        check_batch("conv", "prefill", x.shape[0], state.conv.shape[0])
        b, c, h = self.in_proj(x).chunk(3, dim=-1)  # (B, T, D) each
        y, conv = conv_from(b * h, self.conv.weight, None, state.conv)  # (B, T, D)
        state.conv.copy_(conv)
        return self.out_proj(c * y), state

    def step(self, x: torch.Tensor, state: ConvState) -> tuple[torch.Tensor, ConvState]:
        check_batch("conv", "step", x.shape[0], state.conv.shape[0])
        b, c, h = self.in_proj(x).chunk(3, dim=-1)  # (B, D) each
        # taps cast to the state's dtype (the other layers' steps promote to the weights' dtype instead)
        y, conv = conv_step(b * h, self.conv.weight.to(state.conv.dtype), None, state.conv)  # (B, D)
        state.conv.copy_(conv)
        return self.out_proj(c * y.to(x.dtype)), state
