"""``rglru``: Griffin's recurrent block (De et al. 2024), as in Hugging Face RecurrentGemma.

Two branches of the input: ``y = gelu(linear_y(x))`` and ``linear_x(x)`` -> causal depthwise
conv -> RG-LRU; the output is ``linear_out(lru * y)``. The RG-LRU, per channel::

    r_t = sigmoid(W_a x_t + b_a)        i_t = sigmoid(W_x x_t + b_x)     (block-diagonal, per head)
    log a_t = -c * softplus(a_param) * r_t
    h_t = a_t * h_{t-1} + sqrt(1 - a_t^2) * (i_t * x_t)

Weights carry RecurrentGemma's names and layouts (``linear_y``, ``linear_x``, ``linear_out``, all
with biases; gate weights (heads, in, out); ``recurrent_param``), without its ``rg_lru.`` prefix.
One difference: RecurrentGemma resets at position 0 and skips ``sqrt(1 - a^2)`` there; archdsl
applies the equation above at every token (the paper's form), so outputs differ at token 0 only.

Fast path: the linear recurrence ``h_t = a_t h_{t-1} + u_t`` is an associative scan
(Hillis-Steele: ceil(log2 T) passes over the sequence, in float32, with decays multiplied as
products in [0, 1] so nothing overflows), wrapped in an autograd function whose backward is the
same scan run backwards in time, so training keeps only ``a`` and ``h`` per token.
``reference=True`` runs :meth:`RGLRU.step` token by token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from archdsl.layers.builtin.rglru import RGLRUParams
from archdsl.nn.layers.causal_conv import causal_conv, conv_from, conv_step
from archdsl.nn.layers.state import check_batch
from archdsl.nn.linear import Linear
from archdsl.spec.model import ModelSettings

_MAX_SQRT_GRADIENT = 1000.0  # Griffin's bound on d sqrt(x) / dx, against NaNs when a_t -> 1


@dataclass
class RGLRUState:
    conv: torch.Tensor  # (B, width, conv - 1): the last inputs of the conv
    h: torch.Tensor  # (B, width): the RG-LRU state


class _BoundedSqrt(torch.autograd.Function):
    """``sqrt(x)`` whose derivative is clipped at ``_MAX_SQRT_GRADIENT`` (Griffin, RecurrentGemma)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.sqrt()

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / (4.0 * x).clamp(min=_MAX_SQRT_GRADIENT**-2).sqrt()


def _scan(a: torch.Tensor, u: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """``h_t = a_t h_{t-1} + u_t`` along dim 1 from ``h0``, by doubling (Hillis-Steele).

    After the pass with step ``s``, ``u[t]`` holds the recurrence over the ``2s`` tokens ending at t
    and ``a[t]`` the product of their decays."""
    u = u.clone()
    a = a.clone()
    u[:, 0] += a[:, 0] * h0
    T, s = u.shape[1], 1
    while s < T:
        u[:, s:] = u[:, s:] + a[:, s:] * u[:, :-s]  # right side is read in full before the write
        a[:, s:] = a[:, s:] * a[:, :-s]
        s *= 2
    return u


class LinearScan(torch.autograd.Function):
    """Differentiable ``h_t = a_t h_{t-1} + u_t`` for a, u (B, T, W) and h0 (B, W), float32.

    The gradient is the recurrence run backwards: ``g_t = dh_t + a_{t+1} g_{t+1}``, then
    ``du_t = g_t``, ``da_t = g_t h_{t-1}`` and ``dh0 = a_0 g_0``."""

    @staticmethod
    def forward(ctx, a, u, h0):
        with torch.no_grad():
            h = _scan(a, u, h0)
        ctx.save_for_backward(a, h, h0)
        return h

    @staticmethod
    def backward(ctx, dh):
        a, h, h0 = ctx.saved_tensors
        a_next = torch.cat([a[:, 1:], torch.zeros_like(a[:, :1])], 1)
        g = _scan(a_next.flip(1), dh.flip(1), torch.zeros_like(h0)).flip(1)
        h_prev = torch.cat([h0[:, None], h[:, :-1]], 1)
        return g * h_prev, g, a[:, 0] * g[:, 0]


class RGLRU(nn.Module):
    def __init__(self, params: RGLRUParams, model: ModelSettings):
        super().__init__()
        p = params.resolve(model)
        self.p = p
        D, W, H = model.d_model, p.width, p.heads
        self.linear_y = Linear(D, W)
        self.linear_x = Linear(D, W)
        self.linear_out = Linear(W, D)
        self.conv1d = nn.Conv1d(W, W, p.conv, groups=W)
        bw = W // H
        std = 1.0 / math.sqrt(bw)
        self.input_gate_weight = nn.Parameter(torch.randn(H, bw, bw) * std)
        self.input_gate_bias = nn.Parameter(torch.zeros(H, bw))
        self.recurrent_gate_weight = nn.Parameter(torch.randn(H, bw, bw) * std)
        self.recurrent_gate_bias = nn.Parameter(torch.zeros(H, bw))
        # Griffin's init: a = exp(-softplus(param)) uniform in [0.9, 0.999] (through a^2), so that
        # a_t^(1/c) starts there when r_t = 1
        a = torch.empty(W).uniform_(0.9**2, 0.999**2).sqrt()
        self.recurrent_param = nn.Parameter(torch.log(1.0 / a - 1.0))

    def _gates(self, x: torch.Tensor):
        """Conv output x (..., W) -> decay a and input u of the recurrence, float32."""
        H = self.p.heads
        xb = x.unflatten(-1, (H, -1))  # (..., H, W / H)
        gate_x = torch.sigmoid(torch.einsum("...hi,hio->...ho", xb, self.input_gate_weight) + self.input_gate_bias)
        gate_a = torch.sigmoid(
            torch.einsum("...hi,hio->...ho", xb, self.recurrent_gate_weight) + self.recurrent_gate_bias
        )
        acc = torch.promote_types(x.dtype, torch.float32)  # float32, or float64 in tests
        log_a = -self.p.c * F.softplus(self.recurrent_param.to(acc)) * gate_a.flatten(-2).to(acc)
        # sqrt(1 - a^2) through expm1: exact where a is close to 1, which is where it matters
        multiplier = _BoundedSqrt.apply(-torch.expm1(2.0 * log_a))
        u = x.to(acc) * gate_x.flatten(-2).to(acc) * multiplier
        return log_a.exp(), u

    def forward(self, x: torch.Tensor, *, reference: bool = False) -> torch.Tensor:
        B, T, _ = x.shape
        if reference:
            state = self.init_state(B, max_len=T, device=x.device, dtype=x.dtype)
            return torch.stack([self.step(x[:, t], state)[0] for t in range(T)], 1)
        y = F.gelu(self.linear_y(x), approximate="tanh")  # (B, T, W)
        xb = causal_conv(self.linear_x(x), self.conv1d.weight, self.conv1d.bias)  # (B, T, W)
        a, u = self._gates(xb)
        h = LinearScan.apply(a, u, u.new_zeros(B, self.p.width))  # (B, T, W) float32
        return self.linear_out(h.to(x.dtype) * y)

    def init_state(self, batch: int, *, max_len: int, device=None, dtype=None) -> RGLRUState:
        return RGLRUState(
            conv=torch.zeros(batch, self.p.width, self.p.conv - 1, device=device, dtype=dtype),
            h=torch.zeros(batch, self.p.width, device=device, dtype=dtype),
        )

    def prefill(self, x: torch.Tensor, state: RGLRUState) -> tuple[torch.Tensor, RGLRUState]:
        """A whole prompt x (B, T, D) through the scan, from and into ``state``."""
        check_batch("rglru", "prefill", x.shape[0], state.h.shape[0])
        y = F.gelu(self.linear_y(x), approximate="tanh")  # (B, T, W)
        xb, conv = conv_from(self.linear_x(x), self.conv1d.weight, self.conv1d.bias, state.conv)
        a, u = self._gates(xb)  # (B, T, W) each
        h = LinearScan.apply(a, u, state.h.to(u.dtype))  # h_0 enters decayed by a_1 .. a_t
        state.conv = conv.to(state.conv.dtype)
        state.h = h[:, -1].to(state.h.dtype, copy=True)  # a copy: no view keeping all of h alive
        return self.linear_out(h.to(x.dtype) * y), state

    def step(self, x: torch.Tensor, state: RGLRUState) -> tuple[torch.Tensor, RGLRUState]:
        check_batch("rglru", "step", x.shape[0], state.h.shape[0])
        y = F.gelu(self.linear_y(x), approximate="tanh")  # (B, W)
        xb, conv = conv_step(self.linear_x(x), self.conv1d.weight, self.conv1d.bias, state.conv)  # (B, W)
        xb = xb.to(x.dtype)
        a, u = self._gates(xb)
        h = a * state.h.to(a.dtype) + u
        # new tensors rather than in-place writes, so the reference path stays differentiable
        state.conv = conv
        state.h = h.to(state.h.dtype)
        return self.linear_out(h.to(x.dtype) * y), state
