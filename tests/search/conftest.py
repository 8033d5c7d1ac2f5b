"""A tiny recipe every search test varies: two layers drawn from attention, Mamba-2 and a
convolution, MQAR at 16 tokens, 12 training steps (about a second per trial on one core)."""

from __future__ import annotations

import copy

import pytest

from archdsl.search.recipe import recipe_from_dict

TINY = {
    "space": {"text": "2x each({attn heads=2, ssm state=8 head_dim=8 chunk=16, conv})", "d_model": 16},
    "task": {"name": "mqar", "seq_len": 16, "pairs": 2, "vocab": 32, "test_examples": 64},
    "train": {"steps": 12, "batch": 8, "eval_every": 4, "lr": 3e-3},
    "study": {
        "name": "tiny",
        "objectives": {"accuracy": "max", "state@1k": "min"},
        "trials": 4,
        "workers": 1,  # in this process: the tests read its trials, and one worker is reproducible
        "baselines": ["2x(attn heads=2)"],
    },
}


def tiny_recipe(**sections):
    """TINY with sections updated key by key (``study={"trials": 2}``); a None value drops a key."""
    data = copy.deepcopy(TINY)
    for section, values in sections.items():
        if values is None:
            data.pop(section, None)
            continue
        data.setdefault(section, {})
        for key, value in values.items():
            if value is None:
                data[section].pop(key, None)
            else:
                data[section][key] = value
    return recipe_from_dict(data, filename="tiny.toml")


@pytest.fixture
def tiny():
    return tiny_recipe
