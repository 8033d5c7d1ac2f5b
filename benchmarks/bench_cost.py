"""How long the analytic cost of a 1,000-layer model takes (target: under 10 ms, no module built).

    python benchmarks/bench_cost.py

Prints the median over several runs of: parsing the text, lowering to the graph, costing the
graph (the aggregator alone), and ``archdsl.cost(spec)`` (lowering + costing), plus a sweep of
the costs at the four usual lengths. ``torch.nn.Module.__init__`` is made to raise while
timing, so a module built by mistake would stop the benchmark.
"""

from __future__ import annotations

import statistics
import time

import torch

import archdsl
from archdsl.costing import cost

# 1,000 layer calls: a Jamba-like hybrid of SSM, attention, MLP and MoE sub-layers
TEXT = "model d_model=4096 vocab=128000\n100x(2x(ssm mlp) ssm moe experts=16 top_k=2 attn kv_heads=8 mlp gdn rglru)"


def median_ms(fn, runs: int = 20) -> float:
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    spec = archdsl.parse(TEXT)
    graph = archdsl.to_graph(spec)

    def refuse(*args, **kwargs):
        raise RuntimeError("a module was built while costing")

    original = torch.nn.Module.__init__
    torch.nn.Module.__init__ = refuse
    try:
        c = cost(graph, seq_len=8192)
        rows = [
            ("parse (text -> Spec)", median_ms(lambda: archdsl.parse(TEXT), runs=5)),
            ("to_graph (Spec -> graph)", median_ms(lambda: archdsl.to_graph(spec))),
            ("cost(graph)", median_ms(lambda: cost(graph, seq_len=8192))),
            ("cost(spec) = to_graph + cost", median_ms(lambda: cost(spec, seq_len=8192))),
            (
                "cost(graph) at 2k, 8k, 32k, 128k",
                median_ms(lambda: [cost(graph, seq_len=s) for s in (2048, 8192, 32768, 131072)]),
            ),
        ]
    finally:
        torch.nn.Module.__init__ = original
    print(
        f"{c.n_layers} layer calls, {c.params / 1e9:.1f}B params, {c.train_flops / 1e9:.1f} GFLOP/token to train at 8k"
    )
    for name, ms in rows:
        print(f"  {name:36s} {ms:8.2f} ms")


if __name__ == "__main__":
    main()
