"""Tests of the cost stage. Helpers shared by its test files live here."""

from __future__ import annotations

import torch
from torch import nn

import archdsl
from archdsl.errors import ArchDSLError
from archdsl.layers import list_layers

# Common overrides tried on every registered layer; each layer keeps those it accepts.
OVERRIDES = ["", "heads=2 kv_heads=1", "window=8", "state=16 head_dim=16", "hidden=96", "experts=4 top_k=2",
             "head_dim=16", "expand=1", "groups=2 head_dim=16"]  # fmt: skip


def layer_calls(d_model: int = 64) -> list[str]:
    """Layer calls that resolve at ``d_model``: every registered layer (tests' own excluded)
    with its defaults and with whichever of the common overrides it accepts."""
    calls = []
    for name in list_layers():
        if name.endswith("_cost_layer"):
            continue
        for extra in OVERRIDES:
            text = f"{name} {extra}".strip()
            try:
                archdsl.parse(text, d_model=d_model, vocab=50)
            except ArchDSLError:
                continue
            calls.append(text)
    return calls


def build_meta(spec, dtype=torch.float32) -> nn.Module:
    """The built model on the meta device: shapes and parameter counts, no memory."""
    with torch.device("meta"):
        return archdsl.build(spec).to(dtype)
