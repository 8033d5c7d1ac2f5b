"""archdsl against Hugging Face transformers on one CUDA GPU, same run (the device machine).

    python benchmarks/bench_gpu.py              # eager and torch.compile, prints JSON lines + a table
    python benchmarks/bench_gpu.py --no-compile

bf16, d_model 1024, 8 layers, AdamW-free training steps (forward + backward), as the figures in
shared/anchors/h200-2026-11-28.jsonl were measured: `8x(ssm)` vs Mamba2ForCausalLM's torch path
and `8x(attn mlp)` vs LlamaForCausalLM with SDPA at 2,048 and 8,192 tokens (batch 4) and
32,768 tokens (batch 1). MFU = training FLOPs per token (archdsl.cost: 3 x forward, matrix
products + attention scores + scans) x tokens/s / peak bf16 FLOP/s (989 TFLOP/s, H100/H200
dense spec; override with --peak-tflops).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from common import hf_pair, run_case, time_it, train_step_fn  # noqa: E402

D_MODEL, LAYERS, VOCAB = 1024, 8, 32000
CASES = [(2048, 4), (8192, 4), (32768, 1)]


def measure(case: dict) -> dict:
    import archdsl

    torch.manual_seed(0)
    with torch.device("cuda"):
        reference, ours = hf_pair(case["kind"], D_MODEL, LAYERS, VOCAB)
    model = (ours if case["impl"] == "archdsl" else reference).to(torch.bfloat16)
    if case["compile"]:
        model = torch.compile(model)
    ids = torch.randint(0, VOCAB, (case["batch"], case["seq"]), device="cuda")
    torch.cuda.reset_peak_memory_stats()
    seconds = time_it(train_step_fn(model, ids), repeats=5, warmup=2, sync=torch.cuda.synchronize)
    tok_s = case["batch"] * case["seq"] / seconds
    flops = archdsl.cost(ours.spec, seq_len=case["seq"]).train_flops
    return {
        **case,
        "tok_s": tok_s,
        "step_ms": seconds * 1e3,
        "peak_gb": torch.cuda.max_memory_allocated() / 2**30,
        "mfu": flops * tok_s / (case["peak_tflops"] * 1e12),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--peak-tflops", type=float, default=989.0)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(measure(json.loads(args.case))))
        return
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}; d_model {D_MODEL}, {LAYERS} layers, bf16")
    modes = [False] if args.no_compile else [False, True]
    rows = []
    for compiled in modes:
        for kind, label in (("mamba2", "8x(ssm)"), ("llama", "8x(attn mlp)")):
            for seq, batch in CASES:
                for impl in ("transformers", "archdsl"):
                    if impl == "transformers" and kind == "mamba2" and (compiled or seq > 2048):
                        continue  # its torch path runs out of memory past 2,048 tokens (anchors file)
                    case = {
                        "kind": kind,
                        "impl": impl,
                        "seq": seq,
                        "batch": batch,
                        "compile": compiled,
                        "peak_tflops": args.peak_tflops,
                    }
                    result = run_case(Path(__file__), case, timeout=600)
                    print(json.dumps(result), flush=True)
                    rows.append((label, result))
    print(f"\n{'model':<14}{'impl':<14}{'mode':<9}{'tokens':>7}{'batch':>6}{'tok/s':>10}{'MFU':>7}{'peak GB':>9}")
    for label, r in rows:
        mode = "compile" if r["compile"] else "eager"
        if "tok_s" in r:
            print(
                f"{label:<14}{r['impl']:<14}{mode:<9}{r['seq']:>7}{r['batch']:>6}{r['tok_s']:>10.0f}"
                f"{r['mfu']:>7.3f}{r['peak_gb']:>9.1f}"
            )
        else:
            print(f"{label:<14}{r['impl']:<14}{mode:<9}{r['seq']:>7}{r['batch']:>6}  {r['error']}")


if __name__ == "__main__":
    main()
