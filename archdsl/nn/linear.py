"""The projections of every layer: ``nn.Linear`` with its float32 products on a CPU run by oneDNN.

PyTorch's CPU builds send a float32 ``F.linear`` to MKL's GEMM. On this project's AMD EPYC
machine, at the shapes of a layer (4,096 to 8,192 tokens of d_model 64 to 256, forward and
backward), MKL on two threads reached 77-154 GFLOP/s where oneDNN's kernels for a 1 x 1
convolution over the same memory reached 107-180, 15-40% more (on one thread both ran at
42-84 GFLOP/s, MKL a few percent ahead). So with more than one thread the projection is
computed as that convolution: the tokens (..., K) are viewed, without a copy, as a (1, K, 1,
tokens) image in channels-last memory and convolved with the (out, K, 1, 1) weight; autograd runs
oneDNN's backward for the input's and the weight's gradients. The result equals ``F.linear`` up
to the order of float32 sums.

Only on AMD processors, where it was measured: MKL picks its kernels by the processor's vendor,
and on Intel's or ARM's the GEMM may well be the faster path. Elsewhere ``F.linear`` stays: on
one thread (a search's workers), on accelerators and the meta device, in other dtypes (bfloat16
products already go to oneDNN, float64 has no oneDNN kernel), where oneDNN is absent or switched
off (``torch.backends.mkldnn``), for a few tokens, as in decoding, where setting up the
convolution costs more than the product, and under ``torch.compile``, which picks its own kernels
for a product it can see (and would stop its graph to read /proc/cpuinfo).
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# Fewer token rows than this take F.linear: at 64 rows both took the same time.
MIN_ROWS = 128


@functools.cache
def amd_cpu() -> bool:
    """Whether this machine's processor is AMD's (from /proc/cpuinfo; False where there is none)."""
    try:
        return "AuthenticAMD" in Path("/proc/cpuinfo").read_text(errors="replace")[:4096]
    except OSError:
        return False


def onednn_enabled() -> bool:
    """Whether this torch has oneDNN and it is switched on (``torch.backends.mkldnn``)."""
    return torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, through oneDNN on a CPU in float32 (see the module docstring)."""
    K = x.shape[-1]
    if (
        (x.numel() // K if K else 0) < MIN_ROWS
        or x.device.type != "cpu"
        or torch.compiler.is_compiling()
        or torch.get_num_threads() < 2
        or not amd_cpu()
        or x.dtype != torch.float32
        or weight.dtype != torch.float32
        or not onednn_enabled()
    ):
        return F.linear(x, weight, bias)
    return onednn_linear(x, weight, bias)


def onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear`` as oneDNN's 1 x 1 convolution over the tokens of x (..., K), whatever the
    processor and thread count (:func:`linear` decides when to take it)."""
    K = x.shape[-1]
    rows = x.numel() // K
    image = x.reshape(1, 1, rows, K).permute(0, 3, 1, 2)  # (1, K, 1, rows), channels-last: x's memory
    out = F.conv2d(image, weight[:, :, None, None], bias)  # (1, out, 1, rows), channels-last
    return out.permute(0, 2, 3, 1).reshape(*x.shape[:-1], weight.shape[0])


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters, names and initialisation) whose forward is :func:`linear`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)
