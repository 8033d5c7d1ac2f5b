"""to_hf_layer_types: the Hugging Face fields of a layout, and back through the family's config:
import(export(x)) has x's sub-layers."""

from __future__ import annotations

import warnings

import pytest

import archdsl
from archdsl.errors import ArchDSLError
from archdsl.interop.hf_export import to_hf_layer_types
from tests.interop.helpers import imported, sublayers

transformers = pytest.importorskip("transformers")

SMALL = {"vocab_size": 100, "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2}


def _config(cls, **fields):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(**fields)


@pytest.mark.parametrize(
    "text",
    ["3x(ssm mlp) ssm attn mlp 2x(ssm moe)", "ssm ssm attn ssm", "4x(attn mlp)", "mlp ssm", "2x(ssm attn moe mlp)"],
)
def test_nemotron_pattern_round_trip(text):
    spec = archdsl.parse(text, d_model=64)
    fields = to_hf_layer_types(spec)
    letters = {"ssm": "M", "attn": "*", "mlp": "-", "moe": "E"}
    assert fields["hybrid_override_pattern"] == "".join(letters[t] for t in sublayers(spec))
    pattern = fields["hybrid_override_pattern"]
    config = _config(
        transformers.NemotronHConfig, **SMALL, hybrid_override_pattern=pattern, mamba_num_heads=8, mamba_head_dim=16
    )
    _, back = imported(config, approximate=True)
    assert sublayers(back) == sublayers(spec)


@pytest.mark.parametrize("text", ["2x(3x(gdn moe) attn moe)", "gdn mlp attn moe gdn mlp", "3x(attn mlp)"])
def test_qwen3_next_layer_types_round_trip(text):
    spec = archdsl.parse(text, d_model=64)
    fields = to_hf_layer_types(spec)
    n = fields["num_hidden_layers"]
    dense = [i for i, kind in enumerate(fields.get("mlp_layer_types", ["dense"] * n)) if kind == "dense"]
    config = _config(
        transformers.Qwen3NextConfig,
        **SMALL,
        num_hidden_layers=n,
        layer_types=fields["layer_types"],
        mlp_only_layers=dense,
        head_dim=16,
        linear_num_key_heads=4,
        linear_num_value_heads=4,
        linear_key_head_dim=16,
        linear_value_head_dim=16,
        num_experts=4,
        num_experts_per_tok=2,
    )
    _, back = imported(config, approximate=True)
    assert sublayers(back) == sublayers(spec)


def test_sliding_and_conv_layer_types_round_trip():
    spec = archdsl.parse("2x(attn window=32 mlp attn mlp)", d_model=64)
    fields = to_hf_layer_types(spec)
    assert fields["layer_types"] == ["sliding_attention", "full_attention"] * 2
    assert fields["sliding_window"] == 32 and "hybrid_override_pattern" not in fields
    config = _config(
        transformers.Qwen3Config,
        **SMALL,
        num_hidden_layers=4,
        layer_types=fields["layer_types"],
        use_sliding_window=True,
        sliding_window=32,
    )
    _, back = imported(config)
    assert [n.params.window for n in back.layers() if n.type == "attn"] == [32, None, 32, None]

    spec = archdsl.parse("2x(conv mlp conv mlp attn mlp)", d_model=64)
    fields = to_hf_layer_types(spec)
    config = _config(transformers.Lfm2Config, **SMALL, num_hidden_layers=6, layer_types=fields["layer_types"])
    _, back = imported(config)
    assert sublayers(back) == sublayers(spec)


def test_a_layout_for_nemotron_only_and_one_for_layer_types_only():
    fields = to_hf_layer_types(archdsl.parse("ssm attn mlp"))
    assert fields["hybrid_override_pattern"] == "M*-"
    assert "layer_types" not in fields and fields["num_hidden_layers"] == 3
    fields = to_hf_layer_types(archdsl.parse("conv mlp"))
    assert fields["layer_types"] == ["conv"] and "hybrid_override_pattern" not in fields


@pytest.mark.parametrize(
    "text, message",
    [
        ("ssm (attn | ssm) mlp", r"sub-layer 2 \(at <string>:1:5\) is parallel branches"),
        ("let g = shared(attn mlp)\nssm g", r"sub-layer 2 \(at <string>:1:9\) is a shared\(...\) block"),
        ("rglru mlp rglru", r"layer_types: sub-layer 3 \(at <string>:1:\d+\) \(rglru\) is not followed by an mlp"),
        ("gdn mlp ssm mlp", r"one recurrent mixer per model; this layout has gdn \(sub-layer 1\), ssm \(sub-layer 3\)"),
        ("mlp conv", r"layer_types: sub-layer 1 \(at <string>:1:1\) is mlp with no token mixer"),
        ("attn window=8 mlp attn window=16 mlp conv mlp", r"sliding_window is one size per model.*windows \[8, 16\]"),
        ("attn window=8 mlp conv", r"hybrid_override_pattern: sub-layer 1 .* is attn with a window"),
    ],
)
def test_unexpressible_layouts_name_the_sub_layer(text, message):
    with pytest.raises(ArchDSLError, match=message):
        to_hf_layer_types(archdsl.parse(text, d_model=64))
