"""Shared pieces of the benchmarks: same-weight model pairs, timing, one subprocess per case.

Each measurement runs in a fresh Python process, so that a reference implementation that runs
out of memory (Hugging Face's Mamba2 path materialises a 6-D tensor) is reported, not fatal, and
so that one case's allocator state does not slow the next.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def hf_pair(kind: str, d_model: int, layers: int, vocab: int):
    """(transformers model, archdsl model with the same weights) for 'llama' or 'mamba2'."""
    import transformers

    import archdsl

    if kind == "llama":
        config = transformers.LlamaConfig(
            vocab_size=vocab,
            hidden_size=d_model,
            intermediate_size=archdsl.parse("mlp", d_model=d_model).layers()[0].params.hidden,
            num_hidden_layers=layers,
            num_attention_heads=max(1, d_model // 64),
            attn_implementation="sdpa",
        )
        reference = transformers.LlamaForCausalLM(config)
    elif kind == "mamba2":
        config = transformers.Mamba2Config(
            vocab_size=vocab,
            hidden_size=d_model,
            num_hidden_layers=layers,
            state_size=128,
            head_dim=64,
            num_heads=2 * d_model // 64,
            n_groups=1,
            expand=2,
            chunk_size=256,
            tie_word_embeddings=False,
        )
        reference = transformers.Mamba2ForCausalLM(config)
    else:
        raise ValueError(kind)
    return reference, archdsl.from_hf(reference)


def logits_of(model, ids):
    out = model(ids)
    return out.logits if hasattr(out, "logits") else out


def time_it(fn, repeats: int, warmup: int = 1, sync=lambda: None) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def train_step_fn(model, ids):
    def step():
        logits = logits_of(model, ids)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), ids.flatten())
        loss.backward()
        for p in model.parameters():
            p.grad = None

    return step


def run_case(script: Path, case: dict, timeout: float) -> dict:
    """Run ``script --case JSON`` in a fresh process; its last stdout line is a JSON result."""
    try:
        proc = subprocess.run(
            [sys.executable, str(script), "--case", json.dumps(case)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {**case, "error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["killed (out of memory?)"])[-1]
        return {**case, "error": tail[:200]}
    return json.loads(lines[-1])
