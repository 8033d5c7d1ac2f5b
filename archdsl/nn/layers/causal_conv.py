"""The causal depthwise convolution of the conv, ssm, mamba, gdn and rglru layers.

``weight`` is an ``nn.Conv1d`` depthwise weight (C, 1, K) and ``bias`` (C) or None; output t
reads inputs t - K + 1 .. t (Conv1d is a cross-correlation: the last tap multiplies the current
input). Generation keeps ``past`` (B, C, K - 1): the last K - 1 inputs, oldest first (zeros: no
history). The functions return pre-activations, except the ``_silu`` pair that fuses SiLU;
activations and dtype casts stay with the callers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from archdsl.nn.linear import onednn_enabled


def causal_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x (B, T, C) -> (B, T, C) by ``F.conv1d`` on the sequence padded on the left with K - 1 zeros."""
    xp = F.pad(x.transpose(1, 2), (weight.shape[-1] - 1, 0))  # (B, C, K - 1 + T)
    return F.conv1d(xp, weight, bias, groups=xp.shape[1]).transpose(1, 2)


def conv_from(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, past: torch.Tensor):
    """:func:`causal_conv` over x (B, T, C) continuing from ``past``. Returns the output (B, T, C)
    and the new past (B, C, K - 1): the last K - 1 inputs of ``past`` then x."""
    T = x.shape[1]
    # the remembered inputs take the place of the zero padding (zeros in a fresh state)
    window = torch.cat([past.to(x.dtype), x.transpose(1, 2)], -1)  # (B, C, K - 1 + T)
    out = F.conv1d(window, weight, bias, groups=window.shape[1]).transpose(1, 2)  # (B, T, C)
    return out, window[..., T:].contiguous()


def conv_step(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, past: torch.Tensor):
    """One token x (B, C) after ``past``, in ``past``'s dtype. Returns the output (B, C) and the
    new past (B, C, K - 1), a new tensor (no in-place write, so a loop of steps stays differentiable)."""
    window = torch.cat([past, x[..., None].to(past.dtype)], -1)  # (B, C, K)
    out = (window * weight[:, 0]).sum(-1)
    if bias is not None:
        out = out + bias
    return out, window[..., 1:]


def _depthwise(x: torch.Tensor, taps: torch.Tensor, bias: torch.Tensor | None, drop_front: bool) -> torch.Tensor:
    """A depthwise cross-correlation of x (B, T, C) with ``taps`` (C, K) over the sequence padded
    by K - 1 zeros on both sides, keeping the first T outputs (the causal conv) or, with
    ``drop_front``, the last T (the same taps reversed in time: the causal conv's transpose).

    The sequence goes to ``conv2d`` as a (B, C, 1, T) image in channels-last memory, which is x's
    own (B, T, C) layout: oneDNN's depthwise kernel for that layout reads each input once for all
    taps, where shifted multiply-adds make one pass per tap (3x the time at d_model 256). On a CPU
    without oneDNN, or in a dtype it has no kernel for (float64), conv2d would unfold the taps
    channel by channel: there the multiply-adds run."""
    T, K = x.shape[1], taps.shape[-1]
    if x.device.type == "cpu" and not (onednn_enabled() and x.dtype in (torch.float32, torch.bfloat16)):
        return _shifted_taps(x, taps, bias, drop_front)
    image = x.transpose(1, 2).unsqueeze(2).contiguous(memory_format=torch.channels_last)  # a copy only if x is strided
    out = F.conv2d(image, taps[:, None, None, :], bias, padding=(0, K - 1), groups=x.shape[2])
    out = out[..., K - 1 :] if drop_front else out[..., :T]
    return out.squeeze(2).transpose(1, 2)  # (B, T, C), channels-last again


def _shifted_taps(x: torch.Tensor, taps: torch.Tensor, bias: torch.Tensor | None, drop_front: bool) -> torch.Tensor:
    """:func:`_depthwise` as one multiply-add per tap on x shifted in time (no padded copy)."""
    T, K = x.shape[1], taps.shape[-1]
    last = 0 if drop_front else K - 1  # the tap that reads the output's own position
    out = torch.mul(x, taps[:, last]) if bias is None else torch.addcmul(bias, x, taps[:, last])
    for k in range(K):
        shift = k if drop_front else K - 1 - k  # output t reads x[t + shift] (or x[t - shift])
        if k != last and shift < T:
            if drop_front:
                out[:, : T - shift].addcmul_(x[:, shift:], taps[:, k])
            else:
                out[:, shift:].addcmul_(x[:, : T - shift], taps[:, k])
    return out


class _CausalConvSiLU(torch.autograd.Function):
    """``silu(bias + sum_k w[:, k] * x[t - K + 1 + k])``: a causal depthwise conv in (B, T, C) layout.

    The sequence stays channels-last throughout (no transposes: their strided layout made SiLU's
    backward several times slower, and ``F.conv1d``'s backward on a CPU was slow and erratic on
    shared cores). Forward and the input's gradient are channels-last depthwise ``conv2d`` calls
    (see :func:`_depthwise`): the gradient of a causal conv is the conv of the output's
    gradient with the taps reversed, reading forward in time. x (often a slice of a projection,
    which autograd keeps anyway) and the pre-activation are saved. The weight's gradient is a
    product into one buffer and a sum per tap (``linalg.vecdot`` was twice as slow, and
    ``conv2d``'s own weight gradient slower still).
    """

    @staticmethod
    def forward(ctx, x, weight, bias):
        pre = _depthwise(x, weight, bias, drop_front=False)
        ctx.save_for_backward(x, weight, pre)
        ctx.has_bias = bias is not None
        return F.silu(pre)

    @staticmethod
    def backward(ctx, dy):
        x, weight, pre = ctx.saved_tensors
        T, K = pre.shape[1], weight.shape[-1]
        dpre = torch.ops.aten.silu_backward(dy.contiguous(), pre)
        dx = _depthwise(dpre, weight.flip(-1), None, drop_front=True)
        dw = weight.new_empty(K, weight.shape[0])
        scratch = torch.mul(dpre, x)
        dw[K - 1] = scratch.sum((0, 1))
        for k in range(K - 1):
            shift = K - 1 - k  # x[t] reaches the output t + shift through w[:, k]
            if shift < T:
                # a contiguous stretch of the buffer: sums over a sliced (strided) one are 3x slower
                part = scratch.view(-1)[: dpre[:, shift:].numel()].view_as(dpre[:, shift:])
                dw[k] = torch.mul(dpre[:, shift:], x[:, : T - shift], out=part).sum((0, 1))
            else:
                dw[k] = 0
        return dx, dw.t(), dpre.sum((0, 1)) if ctx.has_bias else None


def causal_conv_silu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``silu(causal_conv(x, weight, bias))`` on x (B, T, C) by :class:`_CausalConvSiLU` (the fast
    path of ssm, mamba and gdn)."""
    return _CausalConvSiLU.apply(x, weight[:, 0], bias)


def causal_conv_silu_from(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, past: torch.Tensor):
    """:func:`causal_conv_silu` over x (B, T, C) continuing from ``past``. Returns the output
    (B, T, C) and the new past (B, C, K - 1): the last K - 1 inputs of ``past`` then x."""
    T = x.shape[1]
    full = torch.cat([past.transpose(1, 2).to(x.dtype), x], 1)  # (B, K - 1 + T, C)
    # the conv pads with K - 1 zeros of its own: their outputs are dropped, the rest read past
    out = causal_conv_silu(full, weight, bias)[:, full.shape[1] - T :]
    return out, full[:, T:].transpose(1, 2).contiguous()
