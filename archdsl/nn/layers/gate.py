"""SiLU of a gate that is a slice of a projection, as mamba, ssm and gdn take their gate z.

A slice ``proj[..., a:b]`` is strided (each row of the slice skips the rest of the projection's
row), and on a CPU ``silu`` runs several times slower on such a tensor than on a contiguous
one, its backward (``silu_backward``) about five times slower. :func:`silu_gate` copies the slice
to contiguous memory for each of the two, and keeps nothing for backward but the slice itself (a
view of the projection, which autograd keeps anyway), so it costs no activation memory.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class _SiLUGate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z):
        ctx.save_for_backward(z)
        return F.silu(z.contiguous())

    @staticmethod
    def backward(ctx, grad):
        (z,) = ctx.saved_tensors
        return torch.ops.aten.silu_backward(grad.contiguous(), z.contiguous())


def silu_gate(z: torch.Tensor) -> torch.Tensor:
    """``F.silu(z)``, the same values and gradient, faster where z is a strided slice.

    >>> z = torch.randn(2, 3, 8)[..., 4:]
    >>> torch.equal(silu_gate(z), F.silu(z))
    True
    """
    return _SiLUGate.apply(z)
