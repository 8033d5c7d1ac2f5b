"""Mamba-1's training step with an older selective scan beside the current one, in one process.

    git show 30d2fd6:archdsl/layers/selective_scan.py > /tmp/old_selective_scan.py
    python benchmarks/bench_mamba_ab.py --old /tmp/old_selective_scan.py --threads 1

Builds `2x(mamba mlp)` and `2x(attn mlp)` (float32, vocab 256, AdamW) and times, in alternation,
one training step of attn, of mamba with the scan module given by ``--old`` swapped in, and of
mamba as it is; prints the medians and the ratios old / new and new / attn. Both scans are
called with the same arguments, so the old module must keep ``selective_scan_chunked``'s
signature.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time

import torch

import archdsl
from archdsl.nn.layers import mamba as mamba_module

VOCAB = 256


def train_step(text: str, d_model: int, batch: int, seq: int):
    torch.manual_seed(0)
    model = archdsl.build(archdsl.parse(text, d_model=d_model, vocab=VOCAB))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, VOCAB, (batch, seq))

    def step():
        loss = torch.nn.functional.cross_entropy(model(ids).reshape(-1, VOCAB), ids.reshape(-1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="path of the older selective_scan.py")
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = importlib.util.spec_from_file_location("old_selective_scan", args.old)
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    new_scan = mamba_module.selective_scan_chunked
    shape = (args.d_model, args.batch, args.seq)
    attn, mamba = train_step("2x(attn mlp)", *shape), train_step("2x(mamba mlp)", *shape)

    def mamba_old():
        mamba_module.selective_scan_chunked = old.selective_scan_chunked
        try:
            mamba()
        finally:
            mamba_module.selective_scan_chunked = new_scan

    steps = {"attn": attn, "mamba old": mamba_old, "mamba new": mamba}
    times: dict[str, list[float]] = {name: [] for name in steps}
    for step in steps.values():
        step()  # warm-up
    for _ in range(args.rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
    print(
        f"d_model {args.d_model}, {args.batch} x {args.seq} tokens, {torch.get_num_threads()} threads, "
        f"medians of {args.rounds} alternating rounds"
    )
    print(" ".join(f"{name} {v:,.0f} ms;" for name, v in ms.items()))
    print(f"old / new {ms['mamba old'] / ms['mamba new']:.2f}x, new / attn {ms['mamba new'] / ms['attn']:.2f}x")


if __name__ == "__main__":
    main()
