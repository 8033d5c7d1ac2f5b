"""The equal-parameter comparison files in benchmarks/cost_compare/ are what they claim."""

from __future__ import annotations

from pathlib import Path

import torch

import archdsl

FILES = sorted((Path(__file__).resolve().parents[2] / "benchmarks" / "cost_compare").glob("*.arch"))


def test_comparison_models_have_equal_parameters_within_five_percent():
    assert len(FILES) == 3
    counts = {}
    for path in FILES:
        spec = archdsl.load(path)
        with torch.device("meta"):
            built = sum(p.numel() for p in archdsl.build(spec).parameters())
        assert archdsl.cost(spec).params == built
        counts[path.stem] = built
    assert max(counts.values()) <= 1.05 * min(counts.values()), counts
