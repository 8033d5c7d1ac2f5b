"""The training loop's overhead and the MQAR known-answer table, on the CPU.

    python benchmarks/bench_train.py                 # both parts (about 4 CPU-minutes)
    python benchmarks/bench_train.py --part overhead
    python benchmarks/bench_train.py --part mqar --cpu-budget-s 15

overhead: tokens per CPU-second of ``archdsl.train`` (data generated on the fly, learning-rate
schedule, loss checks, bookkeeping) against a bare forward + backward + clip + AdamW step of the
same model on one fixed batch, timed in alternation in one process with this process's CPU time
(so that other work on a shared machine does not enter the ratio); the ratio is what the loop
keeps.

mqar: test accuracy of two-layer models of each mixing layer at width 64 after a fixed budget of
CPU seconds (this process's, so other work on a shared machine does not shrink it), the
picture of Zoology's first figure: attention solves it, a mixing-free model cannot.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import archdsl
from archdsl.tasks import get_task
from archdsl.training._optim import make_optimizer

MQAR_MODELS = ["2x(attn)", "2x(ssm)", "2x(mamba)", "2x(gdn)", "2x(conv)", "2x(rglru)", "ssm attn", "2x(mlp)"]


def bare_tokens_per_s(spec: str, task, batch: int, steps: int, d_model: int) -> float:
    """Forward, masked loss, backward, clipping and an AdamW step on one fixed batch."""
    model = archdsl.build(archdsl.parse(spec, d_model=d_model, vocab=task.vocab_size))
    optimizer = make_optimizer(model, 1e-3, 0.1, (0.9, 0.95), torch.device("cpu"))
    data = task.generate(batch, torch.Generator().manual_seed(0))
    start = 0.0
    for step in range(steps + 1):
        if step == 1:
            start = time.process_time()  # the first step pays one-time costs; the loop's is left out too
        logits = model(data.inputs)
        loss = F.cross_entropy(logits[data.mask].float(), data.targets[data.mask])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return steps * batch * task.seq_len / (time.process_time() - start)


def loop_tokens_per_s(spec: str, task, batch: int, steps: int, d_model: int) -> float:
    """The loop's steps 2..steps+1, timed from the end of step 1 to the end of the last step."""
    marks: dict[int, float] = {}

    def mark(step: int, loss: float) -> None:
        marks[step] = time.process_time()

    archdsl.train(spec, task, steps=steps + 1, batch=batch, d_model=d_model, eval_every=steps + 1, progress=mark)
    return steps * batch * task.seq_len / (marks[steps + 1] - marks[1])


def overhead(rounds: int, steps: int) -> None:
    print("loop vs bare forward+backward+step: tokens per CPU-second (same model and batch, alternated, medians)")
    print(f"{'model':<16} {'task':<40} {'loop tok/s':>11} {'bare tok/s':>11} {'ratio':>7}")
    # the smallest models are where the loop's own work weighs most
    cases = [("2x(attn mlp)", get_task("mqar")), ("2x(attn mlp)", get_task("mad/in_context_recall"))]
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


def mqar_table(max_steps: int, cpu_budget_s: float) -> None:
    """Each model trains until it has used ``cpu_budget_s`` seconds of this process's CPU time
    (checked at every evaluation): a budget that other processes on a shared machine do not eat."""
    task = get_task("mqar", vocab=64, seq_len=32, pairs=4, test_examples=256)
    print(f"\nMQAR ({task.label}), width 64, batch 32, lr 3e-3, {cpu_budget_s:.0f} CPU-s (at most {max_steps} steps)")
    print(
        f"{'model':<12} {'params':>8} {'accuracy':>9} {'best':>6} {'steps':>6} {'tok/s':>8} {'CPU s':>6} {'wall s':>7}"
    )
    for spec in MQAR_MODELS:
        cpu_start = time.process_time()

        def over_budget(event, cpu_start=cpu_start):
            return time.process_time() - cpu_start > cpu_budget_s and "CPU budget spent"

        r = archdsl.train(
            spec, task, steps=max_steps, batch=32, d_model=64, lr=3e-3, warmup=50, weight_decay=0.0,
            eval_every=50, callback=over_budget,
        )  # fmt: skip
        print(
            f"{spec:<12} {r.params:>8,} {r.metrics['accuracy']:>9.3f} {r.best['accuracy']:>6.3f} {r.steps:>6} "
            f"{r.tokens_per_s:>8,.0f} {time.process_time() - cpu_start:>6.0f} {r.wall_s:>7.0f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["overhead", "mqar", "all"], default="all")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="alternations of loop and bare timing")
    parser.add_argument("--overhead-steps", type=int, default=60)
    parser.add_argument("--steps", type=int, default=3000, help="MQAR: at most this many steps per model")
    parser.add_argument("--cpu-budget-s", type=float, default=15.0, help="MQAR: CPU seconds per model")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s); the machine may be shared: compare ratios")
    if args.part in ("overhead", "all"):
        overhead(args.rounds, args.overhead_steps)
    if args.part in ("mqar", "all"):
        mqar_table(args.steps, args.cpu_budget_s)


if __name__ == "__main__":
    main()
