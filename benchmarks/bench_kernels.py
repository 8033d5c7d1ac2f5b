"""The two oneDNN paths of the layers against what they replace, forward + backward, one process.

    python benchmarks/bench_kernels.py            # 1 and 2 threads, 9 rounds
    python benchmarks/bench_kernels.py --rounds 3

- Projections: ``F.linear`` (MKL's GEMM in PyTorch's CPU builds) against oneDNN's 1 x 1 conv over
  the tokens' memory, the path ``archdsl.nn.linear`` takes on two or more threads on AMD
  processors; GFLOP/s of forward and backward (3 products), at the sizes of a layer's
  projections (d_model 256 at 2 x 2,048 tokens; d_model 64 at 64 x 128).
- The fused causal conv + SiLU of ssm, mamba and gdn: one multiply-add pass per tap (the path
  without oneDNN) against oneDNN's channels-last depthwise conv, ms of forward and backward, on a
  slice of a projection as in the layers.

Both sides of a row run in alternation, one call each per round, so that the drift of a shared
machine's speed falls on both; the figures are medians.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from archdsl.nn import linear as linear_module
from archdsl.nn.layers.causal_conv import causal_conv_silu

PROJECTIONS = [(4096, 256, 1288), (4096, 512, 256), (8192, 64, 256), (8192, 256, 64)]  # tokens, in, out
CONVS = [(2, 2048, 768, 1288), (64, 128, 128, 256), (64, 128, 192, 400)]  # batch, tokens, channels, row


def _alternate(fns: dict, rounds: int) -> dict:
    """Median seconds of each function, called in alternation after a warm-up call of each."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _step(fn, x, w, g):
    """One forward and backward of the projection ``fn(x, w)``."""
    return lambda: fn(x, w).backward(g)


def _conv_step(x, w, bias, g):
    """One forward and backward of the fused conv, with oneDNN on or off (the per-tap path)."""

    def step(onednn: bool) -> None:
        torch.backends.mkldnn.enabled = onednn
        try:
            causal_conv_silu(x, w, bias).backward(g)
        finally:
            torch.backends.mkldnn.enabled = True

    return step


def projections(rounds: int) -> None:
    print("projections, forward + backward, GFLOP/s")
    print(f"{'tokens x in -> out':<22}{'threads':>8}{'F.linear':>10}{'oneDNN':>8}")
    for tokens, k, n in PROJECTIONS:
        x = torch.randn(2, tokens // 2, k, requires_grad=True)
        w = torch.randn(n, k, requires_grad=True)
        g = torch.randn(2, tokens // 2, n)
        flops = 3 * 2 * tokens * k * n
        for threads in (1, 2):
            torch.set_num_threads(threads)
            steps = {"mkl": _step(F.linear, x, w, g), "onednn": _step(linear_module.onednn_linear, x, w, g)}
            t = _alternate(steps, rounds)
            row = f"{tokens} x {k} -> {n}"
            print(f"{row:<22}{threads:>8}{flops / t['mkl'] / 1e9:>10.0f}{flops / t['onednn'] / 1e9:>8.0f}", flush=True)


def convs(rounds: int) -> None:
    print("\ncausal conv + SiLU (K = 4), forward + backward, ms")
    print(f"{'batch, tokens, channels':<26}{'threads':>8}{'per tap':>9}{'oneDNN':>8}")
    for b, T, C, width in CONVS:
        proj = torch.randn(b, T, width, requires_grad=True)
        w = torch.randn(C, 1, 4, requires_grad=True)
        bias = torch.randn(C, requires_grad=True)
        g = torch.randn(b, T, C)
        conv = _conv_step(proj[..., :C], w, bias, g)
        for threads in (1, 2):
            torch.set_num_threads(threads)
            t = _alternate({"taps": lambda: conv(False), "onednn": lambda: conv(True)}, rounds)  # noqa: B023
            print(f"{f'{b}, {T}, {C}':<26}{threads:>8}{t['taps'] * 1e3:>9.1f}{t['onednn'] * 1e3:>8.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    print(f"torch {torch.__version__}; archdsl takes oneDNN for projections here: ", end="")
    print("yes, on 2+ threads" if linear_module.amd_cpu() else "no (not an AMD processor)\n")
    projections(args.rounds)
    convs(args.rounds)


if __name__ == "__main__":
    main()
