"""Parse, lower and build time of every example, and one forward pass of each.

    python benchmarks/bench_examples.py [--seq 256]

Times are medians of three runs on this machine (float32, batch 1).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

import archdsl

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.arch"))


def median_ms(fn, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq", type=int, default=256, help="tokens of the forward pass")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, forward of 1 x {args.seq} tokens, float32\n")
    print(
        f"{'example':<12}{'sub-layers':>11}{'params':>13}{'parse ms':>10}{'lower ms':>10}{'build ms':>10}"
        f"{'forward ms':>12}"
    )
    for path in EXAMPLES:
        text = path.read_bytes()
        spec = archdsl.parse(text, filename=str(path))
        parse_ms = median_ms(lambda: archdsl.parse(text, filename=str(path)))
        lower_ms = median_ms(lambda: archdsl.to_graph(spec))
        build_ms = median_ms(lambda: archdsl.build(spec))
        model = archdsl.build(spec).eval()
        ids = torch.randint(0, spec.model.vocab, (1, args.seq))
        with torch.no_grad():
            model(ids)  # warm-up
            forward_ms = median_ms(lambda: model(ids))
        params = sum(p.numel() for p in model.parameters())
        print(
            f"{path.stem:<12}{len(spec.layers()):>11}{params:>13,}{parse_ms:>10.1f}{lower_ms:>10.1f}"
            f"{build_ms:>10.0f}{forward_ms:>12.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
