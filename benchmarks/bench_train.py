"""The training loop's overhead and the MQAR known-answer table, on the CPU.

    python benchmarks/bench_train.py                 # both parts (about 10 min on a shared 2-core VM)
    python benchmarks/bench_train.py --part overhead
    python benchmarks/bench_train.py --part mqar --steps 1000 --budget-s 120

overhead: tokens/s of ``archdsl.train`` (data generated on the fly, learning-rate schedule, loss
checks, bookkeeping) against a bare forward + backward + clip + AdamW step of the same model on
one fixed batch, timed in alternation in one process; the ratio is what the loop keeps.

mqar: test accuracy of two-layer models of each mixing layer at width 64 after a fixed budget
(the same steps for all, cut at --budget-s seconds), as Zoology's first figure does for its
layers: attention should solve it, mixing-free models cannot.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import archdsl
from archdsl.tasks import get_task
from archdsl.train._optim import make_optimizer

MQAR_MODELS = ["2x(attn)", "2x(ssm)", "2x(mamba)", "2x(gdn)", "2x(conv)", "2x(rglru)", "ssm attn", "2x(mlp)"]


def bare_tokens_per_s(spec: str, task, batch: int, steps: int, d_model: int) -> float:
    """Forward, masked loss, backward, clipping and an AdamW step on one fixed batch."""
    model = archdsl.build(archdsl.parse(spec, d_model=d_model, vocab=task.vocab_size))
    optimizer = make_optimizer(model, 1e-3, 0.1, (0.9, 0.95), torch.device("cpu"))
    data = task.generate(batch, torch.Generator().manual_seed(0))
    start = 0.0
    for step in range(steps + 1):
        if step == 1:
            start = time.perf_counter()  # the first step pays one-time costs; so does the loop's
        logits = model(data.inputs)
        loss = F.cross_entropy(logits[data.mask].float(), data.targets[data.mask])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return steps * batch * task.seq_len / (time.perf_counter() - start)


def loop_tokens_per_s(spec: str, task, batch: int, steps: int, d_model: int) -> float:
    result = archdsl.train(spec, task, steps=steps + 1, batch=batch, d_model=d_model, eval_every=steps + 1)
    return result.tokens_per_s


def overhead(rounds: int, steps: int) -> None:
    print("loop tokens/s vs bare forward+backward+step (same model and batch, alternated, medians)")
    print(f"{'model':<16} {'task':<40} {'loop tok/s':>11} {'bare tok/s':>11} {'ratio':>7}")
    cases = [
        ("2x(attn mlp)", get_task("mqar")),
        ("2x(attn mlp)", get_task("mad/in_context_recall")),
        ("4x(ssm)", get_task("mqar")),
    ]
    for spec, task in cases:
        loops, bares, ratios = [], [], []
        for _ in range(rounds):
            loop = loop_tokens_per_s(spec, task, 32, steps, 64)
            bare = bare_tokens_per_s(spec, task, 32, steps, 64)
            loops.append(loop)
            bares.append(bare)
            ratios.append(loop / bare)
        print(
            f"{spec:<16} {task.label:<40} {statistics.median(loops):>11,.0f} {statistics.median(bares):>11,.0f} "
            f"{statistics.median(ratios):>7.3f}",
            flush=True,
        )


def mqar_table(steps: int, budget_s: float) -> None:
    task = get_task("mqar", vocab=64, seq_len=32, pairs=4, test_examples=256)
    print(f"\nMQAR ({task.label}), width 64, batch 32, lr 3e-3, {steps} steps or {budget_s:.0f} s")
    print(f"{'model':<12} {'params':>8} {'accuracy':>9} {'best':>6} {'steps':>6} {'tok/s':>8} {'wall s':>7}")
    for spec in MQAR_MODELS:
        over_budget = lambda event: event.elapsed_s > budget_s and f"budget of {budget_s:.0f} s spent"
        r = archdsl.train(
            spec, task, steps=steps, batch=32, d_model=64, lr=3e-3, warmup=50, weight_decay=0.0,
            eval_every=50, callback=over_budget,
        )  # fmt: skip
        print(
            f"{spec:<12} {r.params:>8,} {r.metrics['accuracy']:>9.3f} {r.best['accuracy']:>6.3f} {r.steps:>6} "
            f"{r.tokens_per_s:>8,.0f} {r.wall_s:>7.1f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["overhead", "mqar", "all"], default="all")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="alternations of loop and bare timing")
    parser.add_argument("--overhead-steps", type=int, default=60)
    parser.add_argument("--steps", type=int, default=1000, help="MQAR steps per model")
    parser.add_argument("--budget-s", type=float, default=75.0, help="MQAR wall-clock cap per model")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s); the machine may be shared: compare ratios")
    if args.part in ("overhead", "all"):
        overhead(args.rounds, args.overhead_steps)
    if args.part in ("mqar", "all"):
        mqar_table(args.steps, args.budget_s)


if __name__ == "__main__":
    main()
