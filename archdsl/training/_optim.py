"""AdamW with decay on matrices only, and the learning-rate schedule (warm-up, then cosine)."""

from __future__ import annotations

import math

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: decayed (the weight matrices of the layers and the LM head) and not decayed
    (norm weights, biases, embeddings, and 1-D parameters such as SSM ``A_log``, ``D`` and
    ``dt_bias``), as GPT-2 / nanoGPT do and as MAD's contributors asked for norms."""
    # every norm weight and bias is 1-D; embeddings are the only matrices that keep their decay off
    no_decay = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters(recurse=False)}
    decay, keep, seen = [], [], set()
    for param in model.parameters():  # parameters() yields a shared (tied) tensor once
        if id(param) in seen or not param.requires_grad:
            continue
        seen.add(id(param))
        (keep if id(param) in no_decay or param.dim() < 2 else decay).append(param)
    # a tied LM head is the embedding: it stays out of decay, as the embedding does
    return [{"params": decay, "weight_decay": weight_decay}, {"params": keep, "weight_decay": 0.0}]


def make_optimizer(
    model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float], device: torch.device
) -> torch.optim.AdamW:
    # the fused kernel is one launch per step on CUDA; on CPU the default (foreach) is fine
    fused = device.type == "cuda"
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=betas, fused=fused or None)


def lr_at(step: int, *, peak: float, warmup: int, total: int, min_ratio: float) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warm-up to ``peak`` over
    ``warmup`` steps, then a cosine down to ``peak * min_ratio`` at the last step."""
    if step < warmup:
        return peak * (step + 1) / warmup
    span = max(1, total - warmup - 1)
    progress = min(1.0, (step - warmup) / span)
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
