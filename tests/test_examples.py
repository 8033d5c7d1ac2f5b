"""Every file in examples/ is parsed, printed, lowered, built, run forward and generated from.

The examples folder is the test matrix: a new .arch file is tested without anyone adding a test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import archdsl
from archdsl.syntax.printer import print_spec

# Small enough that 8 examples run forward and step by step in seconds on two cores.
SMALL = {"d_model": 256, "vocab": 97}
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"


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
    model = archdsl.build(spec).eval()
    ids = torch.randint(0, spec.model.vocab, (1, 16))
    with torch.no_grad():
        logits = model(ids)
        # the same tokens another way: the prompt through prefill, the last one through step
        state = model.init_state(batch=1, max_len=16)
        model.prefill(ids[:, :15], state)
        last = model.step(ids[:, 15], state)
    assert logits.shape == (1, 16, spec.model.vocab) and torch.isfinite(logits).all()
    torch.testing.assert_close(last, logits[:, 15], rtol=1e-4, atol=1e-4)


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


def _hf_twin_config(spec):
    """transformers' config of the architecture an example claims to be (its own source), from
    the example's resolved settings, or None where from_hf has no such model."""
    import transformers

    m, layers = spec.model, spec.layers()
    kinds = [node.type for node in layers]
    if kinds == ["attn", "mlp"] * (len(kinds) // 2) and kinds:
        attn, mlp = layers[0].params, layers[1].params
        assert all(node.params in (attn, mlp) for node in layers)  # one repeated block
        return transformers.LlamaConfig(
            vocab_size=m.vocab,
            hidden_size=m.d_model,
            intermediate_size=mlp.hidden,
            num_hidden_layers=len(kinds) // 2,
            num_attention_heads=attn.heads,
            num_key_value_heads=attn.kv_heads,
            head_dim=attn.head_dim,
            rms_norm_eps=m.norm_eps,
            tie_word_embeddings=m.tie_embeddings,
            rope_parameters={"rope_type": "default", "rope_theta": attn.rope_theta},
        )
    if kinds and set(kinds) == {"ssm"}:
        ssm = layers[0].params
        assert all(node.params == ssm for node in layers)
        return transformers.Mamba2Config(
            vocab_size=m.vocab,
            hidden_size=m.d_model,
            num_hidden_layers=len(kinds),
            state_size=ssm.state,
            head_dim=ssm.head_dim,
            num_heads=ssm.expand * m.d_model // ssm.head_dim,
            n_groups=ssm.groups,
            expand=ssm.expand,
            conv_kernel=ssm.conv,
            chunk_size=ssm.chunk,
            layer_norm_epsilon=m.norm_eps,
            tie_word_embeddings=m.tie_embeddings,
        )
    return None


TWINS = ["llama", "mamba2"]  # the examples whose source model transformers has and from_hf imports


def test_examples_with_a_transformers_twin_are_listed(example_path):
    pytest.importorskip("transformers")
    config = _hf_twin_config(archdsl.load(example_path, **SMALL))
    assert (config is not None) == (example_path.stem in TWINS)


@pytest.mark.parametrize("name", TWINS)
def test_example_forward_equals_its_transformers_twin(name):
    """The example is the architecture it names: imported from transformers' model of that
    architecture it is the same program, and with the same weights it computes the same logits."""
    transformers = pytest.importorskip("transformers")
    spec = archdsl.load(EXAMPLES_DIR / f"{name}.arch", **SMALL)
    reference = transformers.AutoModelForCausalLM.from_config(_hf_twin_config(spec)).eval()
    if name == "mamba2":
        with torch.no_grad():  # D and dt_bias off their defaults, so that they matter
            for layer in reference.backbone.layers:
                layer.mixer.D.uniform_(0.5, 1.5)
                layer.mixer.dt_bias.uniform_(-2, 0)
    imported = archdsl.from_hf(reference)
    assert [(n.type, n.params) for n in imported.spec.layers()] == [(n.type, n.params) for n in spec.layers()]
    model = archdsl.build(spec).eval()
    model.load_state_dict(imported.state_dict())  # strict: the example's own modules take the weights
    ids = torch.randint(0, SMALL["vocab"], (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(model(ids), reference(ids).logits, rtol=1e-4, atol=1e-4)
