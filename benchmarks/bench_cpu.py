"""archdsl against Hugging Face transformers on this CPU, same weights, same run.

    python benchmarks/bench_cpu.py            # the full table (several minutes on 2 cores)
    python benchmarks/bench_cpu.py --quick    # fewer repeats and contexts

Prints training tokens/s (forward + backward, float32, d_model 256, 4 layers) for
`4x(ssm)` vs Mamba2ForCausalLM's torch path and `4x(attn mlp)` vs LlamaForCausalLM with SDPA,
at 1 x 2,048, 2 x 2,048 and 1 x 8,192 tokens, the ratios, and the decode latency per token
of each model at several context lengths.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from common import hf_pair, run_case, time_it, train_step_fn  # noqa: E402

D_MODEL, LAYERS, VOCAB = 256, 4, 1024


def measure(case: dict) -> dict:
    torch.manual_seed(0)
    reference, ours = hf_pair(case["kind"], D_MODEL, LAYERS, VOCAB)
    if case["what"] == "train":
        # both models in one process, timed in alternation, so that drift of this shared
        # machine's speed falls on both alike; the ratio is of the two medians
        ids = torch.randint(0, VOCAB, (case["batch"], case["seq"]))
        steps = {"transformers": train_step_fn(reference, ids), "archdsl": train_step_fn(ours, ids)}
        times: dict[str, list[float]] = {name: [] for name in steps}
        for name, step in steps.items():
            time_it(step, repeats=1, warmup=0)  # warm-up
        for _ in range(case["repeats"]):
            for name, step in steps.items():
                times[name].append(time_it(step, repeats=1, warmup=0))
        tokens = case["batch"] * case["seq"]
        return {**case, **{name: tokens / statistics.median(t) for name, t in times.items()}}
    # decode: fill the state to the context length, then time single-token steps
    model = ours if case["impl"] == "archdsl" else reference
    model.eval()
    ctx, warmup, new = case["seq"], 8, 64
    ids = torch.randint(0, VOCAB, (1, ctx))
    with torch.no_grad():
        if case["impl"] == "archdsl":
            state = model.init_state(1, ctx + warmup + new + 1)
            model.prefill(ids, state)
            token = ids[:, -1]
            seconds = time_it(lambda: model.step(token, state), repeats=new, warmup=warmup)
        else:
            out = model(ids, use_cache=True)
            cache = out.past_key_values if hasattr(out, "past_key_values") else out.cache_params
            token = ids[:, -1:]
            position = [ctx]

            def step():
                kwargs = (
                    {"past_key_values": cache}
                    if case["kind"] == "llama"
                    else {"cache_params": cache, "cache_position": torch.tensor([position[0]])}
                )
                model(token, use_cache=True, **kwargs)
                position[0] += 1

            seconds = time_it(step, repeats=new, warmup=warmup)
    return {**case, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="fewer repeats and contexts")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(measure(json.loads(args.case))))
        return
    repeats = 3 if args.quick else 5
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; d_model {D_MODEL}, {LAYERS} layers, "
        f"vocab {VOCAB}, float32\n"
    )
    print("training (forward + backward), tokens/s, medians of alternating steps in one process")
    print(f"{'model':<14}{'tokens':>8}{'batch':>6}{'transformers':>14}{'archdsl':>10}{'ratio':>8}")
    for kind, label in (("mamba2", "4x(ssm)"), ("llama", "4x(attn mlp)")):
        for seq, batch in ((2048, 1), (2048, 2), (8192, 1)):
            case = {"what": "train", "kind": kind, "seq": seq, "batch": batch, "repeats": repeats}
            r = run_case(Path(__file__), case, timeout=1800)
            if "error" in r:
                print(f"{label:<14}{seq:>8}{batch:>6}  failed: {r['error']}", flush=True)
                continue
            ratio = r["archdsl"] / r["transformers"]
            print(
                f"{label:<14}{seq:>8}{batch:>6}{r['transformers']:>14.0f}{r['archdsl']:>10.0f}{ratio:>7.2f}x",
                flush=True,
            )
    print("\ndecode latency per token (ms), batch 1, median of 64 steps after 8")
    contexts = (1024, 4096) if args.quick else (1024, 4096, 16384)
    print(f"{'model':<14}{'context':>8}{'transformers':>14}{'archdsl':>10}")
    for kind, label in (("mamba2", "4x(ssm)"), ("llama", "4x(attn mlp)")):
        for ctx in contexts:
            row = {
                impl: run_case(
                    Path(__file__), {"what": "decode", "kind": kind, "impl": impl, "seq": ctx, "batch": 1}, timeout=900
                )
                for impl in ("transformers", "archdsl")
            }
            cell = lambda r: f"{r['seconds'] * 1e3:.2f}" if "seconds" in r else "failed"  # noqa: E731
            print(f"{label:<14}{ctx:>8}{cell(row['transformers']):>14}{cell(row['archdsl']):>10}", flush=True)
            for r in row.values():
                if "error" in r:
                    print(f"    {r['impl']}: {r['error']}")


if __name__ == "__main__":
    main()
