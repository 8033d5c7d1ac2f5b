"""Every file in examples/ is parsed, printed, lowered, built, run forward and generated from.

The examples folder is the test matrix: a new .arch file is tested without anyone adding a test.
"""

from __future__ import annotations

import torch

import archdsl
from archdsl.syntax.printer import print_spec

# Small enough that 8 examples run forward and step by step in seconds on two cores.
SMALL = {"d_model": 256, "vocab": 97}


def test_example_round_trips_through_the_printer(example_path):
    spec = archdsl.load(example_path)
    assert archdsl.parse(print_spec(spec)) == spec
    rolled = archdsl.parse(print_spec(spec, roll=True))
    assert [(n.type, n.params) for n in rolled.layers()] == [(n.type, n.params) for n in spec.layers()]


def test_example_has_a_source_comment(example_path):
    first = example_path.read_text().splitlines()[0]
    assert first.startswith("# ") and "20" in first  # names its paper or model, with the year


def test_example_builds_and_runs_forward_at_its_own_size(example_path):
    spec = archdsl.load(example_path)
    model = archdsl.build(spec)
    ids = torch.randint(0, spec.model.vocab, (1, 16))
    with torch.no_grad():
        logits = model(ids)
    assert logits.shape == (1, 16, spec.model.vocab) and torch.isfinite(logits).all()


def test_example_step_by_step_equals_forward(example_path):
    spec = archdsl.load(example_path, **SMALL)
    model = archdsl.build(spec).double().eval()
    ids = torch.randint(0, SMALL["vocab"], (2, 12))
    with torch.no_grad():
        full = model(ids)
        state = model.init_state(batch=2, max_len=12)
        stepped = torch.stack([model.step(ids[:, t], state) for t in range(12)], dim=1)
    torch.testing.assert_close(stepped, full, rtol=1e-6, atol=1e-6)


def test_example_prefill_then_steps_equals_forward(example_path):
    spec = archdsl.load(example_path, **SMALL)
    model = archdsl.build(spec).double().eval()
    ids = torch.randint(0, SMALL["vocab"], (2, 12))
    with torch.no_grad():
        full = model(ids)
        state = model.init_state(batch=2, max_len=12)
        prompt = model.prefill(ids[:, :7], state)  # the layers' fast paths, filling the state
        rest = torch.stack([model.step(ids[:, t], state) for t in range(7, 12)], dim=1)
    torch.testing.assert_close(torch.cat([prompt, rest], dim=1), full, rtol=1e-6, atol=1e-6)
