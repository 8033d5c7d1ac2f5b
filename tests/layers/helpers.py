"""Measurements the layer tests share: gradients to compare, what autograd keeps, and what the
FLOP counter sees of the fused causal conv."""

from __future__ import annotations

import torch


def saved_activation_bytes(layer: torch.nn.Module, x: torch.Tensor) -> int:
    """Bytes of the tensors autograd keeps for backward in ``layer(x)``, parameters left out and
    every storage counted once: what a cost formula's activation estimate is checked against."""
    weights = {p.untyped_storage().data_ptr() for p in layer.parameters()}
    kept: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights:
            kept[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        layer(x)
    return sum(kept.values())


def grads(layer: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Gradients of a fixed random projection of ``y`` for the input and every parameter."""
    gy = torch.randn_like(y, generator=torch.Generator().manual_seed(1))
    names = [n for n, _ in layer.named_parameters()]
    g = torch.autograd.grad((y * gy).sum(), [x, *layer.parameters()])
    return dict(zip(["x", *names], g))


def assert_grads_close(ga, gb, rtol=1e-4, atol=1e-5) -> None:
    """Each gradient equal up to tolerances relative to its own largest entry (at least 1)."""
    for name in ga:
        scale = gb[name].abs().max().clamp(min=1.0)
        torch.testing.assert_close(ga[name] / scale, gb[name] / scale, rtol=rtol, atol=atol, msg=name)


def fused_conv_counted_flops(conv_weight: torch.Tensor, T: int) -> int:
    """What ``torch.utils.flop_counter`` sees of the fused causal conv + SiLU over T tokens
    (archdsl/nn/layers/causal_conv.py) with a depthwise ``conv_weight`` (C, 1, K): a ``conv2d``
    over the sequence padded by K - 1 zeros on both sides, 2 FLOPs per tap and channel at each of
    its T + K - 1 outputs (T are kept)."""
    return 2 * conv_weight.numel() * (T + conv_weight.shape[-1] - 1)
