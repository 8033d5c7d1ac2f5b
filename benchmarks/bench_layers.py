"""One training step of ``2x(X mlp)`` for every registered layer X, against the machine's matmul rate.

    python benchmarks/bench_layers.py                  # d_model 64 and 128, batch 64 x 128 and 16 x 512
    python benchmarks/bench_layers.py --quick          # fewer rounds, no profile
    python benchmarks/bench_layers.py --d-model 64 --shape 64x128 --layers attn,mamba
    python benchmarks/bench_layers.py --quick --compile  # and each model under torch.compile

Each (d_model, shape) runs in a fresh process (float32, vocab 256, AdamW, the threads torch
chose). Inside it the models of every layer, and a plain matrix product of the same size, are
timed in alternation, one step each per round, so that drift of a shared machine's speed falls
on all of them alike; the table gives medians and ratios to ``attn`` of the same rounds.

Columns: ms per step (forward, cross-entropy, backward, AdamW step); GFLOP/s with the FLOPs of
``archdsl.cost`` (``train_flops``, three forwards); that rate as a share of the measured matmul
rate (products of (tokens, d_model) x (d_model, 4 d_model) and of its transpose, the sizes of
the model's projections, by the projections' own path, ``archdsl.nn.linear``); the step time
over ``attn``'s; and, from ``torch.profiler`` over a few steps, the share of self CPU time
outside matrix-product operators, with the largest of those operators. With ``--compile`` a
second table gives each model's step under ``torch.compile`` (the training setting ``compile``)
beside its eager step, from the same rounds, and the first compiled step, which compiles.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from common import run_case

VOCAB = 256
# Operators that are matrix products (their self time is "in matrix products"); attention's
# fused SDPA kernels are mostly products too, but are counted outside, as they are not plain GEMMs.
# The projections run as oneDNN convolutions on two or more threads (archdsl/nn/linear.py), so
# convolutions count as products: the depthwise causal convs of the scan layers land there too.
MATMUL_OPS = {"aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm", "aten::addbmm", "aten::mv", "aten::dot"}
MATMUL_OPS |= {"aten::mkldnn_convolution", "aten::convolution_backward"}


def build_step(layer: str, d_model: int, batch: int, seq: int, compiled: bool = False):
    import archdsl

    torch.manual_seed(0)
    spec = archdsl.parse(f"2x({layer} mlp)", d_model=d_model, vocab=VOCAB)
    model = archdsl.build(spec)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, VOCAB, (batch, seq))
    target = torch.roll(ids, -1, dims=1)
    forward = torch.compile(model) if compiled else model  # as the training setting `compile` does

    def step():
        logits = forward(ids)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), target.reshape(-1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    flops = archdsl.cost(spec, seq_len=seq, batch=batch).train_flops * batch * seq
    return step, flops


def matmul_step(d_model: int, tokens: int):
    """Forward-sized products of the model's projections, (tokens, d) x (d, 4d) and back, by the
    projections' own path (archdsl.nn.linear: oneDNN on two or more threads, MKL on one)."""
    from archdsl.nn.linear import linear

    x, w = torch.randn(tokens, d_model), torch.randn(4 * d_model, d_model)
    h, v = torch.randn(tokens, 4 * d_model), torch.randn(d_model, 4 * d_model)

    def step():
        linear(x, w)
        linear(h, v)

    return step, 2 * 2 * tokens * d_model * 4 * d_model


def timed(fn) -> float:
    import time

    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def profile_share(step, steps: int = 3) -> tuple[float, list[tuple[str, float]]]:
    """Share of self CPU time outside matrix products, and the three largest such operators."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    rows = [(e.key, e.self_cpu_time_total) for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(t for _, t in rows)
    outside = [(k, t) for k, t in rows if k not in MATMUL_OPS]
    top = sorted(outside, key=lambda r: -r[1])[:3]
    return sum(t for _, t in outside) / total, [(k, t / total) for k, t in top]


def measure(case: dict) -> dict:
    if case.get("threads"):
        torch.set_num_threads(case["threads"])
    d, batch, seq = case["d_model"], case["batch"], case["seq"]
    steps = {name: build_step(name, d, batch, seq) for name in case["layers"]}
    steps["matmul"] = matmul_step(d, batch * seq)
    if case.get("compile"):
        steps.update({f"{name} compiled": build_step(name, d, batch, seq, compiled=True) for name in case["layers"]})
    times: dict[str, list[float]] = {name: [] for name in steps}
    first = {name: timed(step) for name, (step, _) in steps.items()}  # warm-up; compiling, where compiled
    for _ in range(case["rounds"]):
        for name, (step, _) in steps.items():
            times[name].append(timed(step))
    out = {}
    for name, (step, flops) in steps.items():
        out[name] = {"ms": 1e3 * statistics.median(times[name]), "gflops": flops / statistics.median(times[name]) / 1e9}
        out[name]["first_s"] = first[name]
        if name.endswith(" compiled"):
            eager = name.removesuffix(" compiled")
            out[name]["vs_eager"] = statistics.median(t / e for t, e in zip(times[name], times[eager]))
    if "attn" in times:
        for name in case["layers"]:
            ratios = [t / a for t, a in zip(times[name], times["attn"])]
            out[name]["vs_attn"] = statistics.median(ratios)
    for name in case["layers"]:
        ratios = [(steps[name][1] / t) / (steps["matmul"][1] / m) for t, m in zip(times[name], times["matmul"])]
        out[name]["of_matmul"] = statistics.median(ratios)
        if case["profile"]:
            share, top = profile_share(steps[name][0])
            out[name]["outside"] = share
            out[name]["top"] = top
    return {**case, "results": out}


def main() -> None:
    from archdsl.layers.registry import list_layers

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="5 rounds instead of 9, no profile")
    parser.add_argument("--d-model", type=int, action="append", help="d_model (repeatable; default 64 and 128)")
    parser.add_argument("--shape", action="append", help="BATCHxSEQ (repeatable; default 64x128 and 16x512)")
    parser.add_argument("--layers", help="comma-separated layer names (default: every registered layer)")
    parser.add_argument("--rounds", type=int, help="alternating rounds (default 9, 5 with --quick)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--compile", action="store_true", help="also each model under torch.compile (a second table)")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(measure(json.loads(args.case))))
        return
    layers = args.layers.split(",") if args.layers else list_layers()
    if "attn" in list_layers() and "attn" not in layers:
        layers = ["attn", *layers]
    rounds = args.rounds or (5 if args.quick else 9)
    shapes = [tuple(int(v) for v in s.lower().split("x")) for s in (args.shape or ["64x128", "16x512"])]
    print(
        f"torch {torch.__version__}, {args.threads or torch.get_num_threads()} threads, float32, vocab {VOCAB}, AdamW; "
        f"`2x(X mlp)`; medians of {rounds} alternating rounds in one process per table"
    )
    for d in args.d_model or [64, 128]:
        for batch, seq in shapes:
            case = {
                "d_model": d,
                "batch": batch,
                "seq": seq,
                "layers": layers,
                "rounds": rounds,
                "profile": not args.quick,
                "threads": args.threads,
                "compile": args.compile,
            }
            r = run_case(Path(__file__), case, timeout=3600)
            print(f"\nd_model {d}, batch {batch} x {seq} tokens", flush=True)
            if "error" in r:
                print(f"  failed: {r['error']}")
                continue
            res = r["results"]
            mm = res["matmul"]
            print(f"  matmul rate at these sizes: {mm['gflops']:.0f} GFLOP/s")
            print("  | X | ms / step | GFLOP/s | of matmul | vs attn | outside matmul | largest outside |")
            print("  |---|---|---|---|---|---|---|")
            for name in layers:
                x = res[name]
                outside = f"{100 * x['outside']:.0f}%" if "outside" in x else "-"
                top = ", ".join(f"{k.removeprefix('aten::')} {100 * s:.0f}%" for k, s in x.get("top", []))
                print(
                    f"  | {name} | {x['ms']:,.0f} | {x['gflops']:.1f} | {100 * x['of_matmul']:.0f}% | "
                    f"{x.get('vs_attn', float('nan')):.2f}x | {outside} | {top or '-'} |",
                    flush=True,
                )
            if args.compile:
                print("\n  | X | eager ms | compiled ms | compiled / eager | first compiled step, s |")
                print("  |---|---|---|---|---|")
                for name in layers:
                    x, c = res[name], res[f"{name} compiled"]
                    print(f"  | {name} | {x['ms']:,.0f} | {c['ms']:,.0f} | {c['vs_eager']:.2f}x | {c['first_s']:.1f} |")


if __name__ == "__main__":
    main()
