"""from_hf_config on every family's default config (built by transformers, nothing downloaded):
the layout read back from the text equals the one computed here from the config's own fields,
and the key hyper-parameters land on the right layers."""

from __future__ import annotations

import pytest

import archdsl
from archdsl.errors import ArchDSLError
from tests.interop.helpers import imported, params_of, sublayers

transformers = pytest.importorskip("transformers")


def test_llama_default_is_exact():
    config = transformers.LlamaConfig()
    text, spec = imported(config)
    assert sublayers(spec) == ["attn", "mlp"] * config.num_hidden_layers
    attn = params_of(spec, "attn")[0]
    assert (attn.heads, attn.kv_heads, attn.head_dim) == (32, 32, 128)
    assert attn.rope_theta == config.rope_parameters["rope_theta"]
    assert params_of(spec, "mlp")[0].hidden == config.intermediate_size
    assert (spec.model.d_model, spec.model.vocab) == (config.hidden_size, config.vocab_size)
    assert spec.model.norm_eps == config.rms_norm_eps and spec.model.tie_embeddings is False
    assert text.splitlines()[-1] == f"{config.num_hidden_layers}x(attn mlp)"  # rolled
    assert "differs" not in text


def test_mistral_windows_every_layer():
    config = transformers.MistralConfig(sliding_window=1024, num_hidden_layers=6)
    _, spec = imported(config)
    assert sublayers(spec) == ["attn", "mlp"] * 6
    assert {p.window for p in params_of(spec, "attn")} == {1024}


def test_mamba_and_mamba2_defaults():
    config = transformers.MambaConfig()
    _, spec = imported(config)
    assert sublayers(spec) == ["mamba"] * config.num_hidden_layers
    p = params_of(spec, "mamba")[0]
    assert (p.state, p.expand, p.conv, p.dt_rank) == (config.state_size, config.expand, config.conv_kernel, 48)
    assert spec.model.tie_embeddings is True

    config = transformers.Mamba2Config()
    _, spec = imported(config)
    assert sublayers(spec) == ["ssm"] * config.num_hidden_layers
    p = params_of(spec, "ssm")[0]
    assert (p.state, p.head_dim, p.groups, p.chunk) == (128, 64, 8, 256)
    assert p.expand * config.hidden_size // p.head_dim == config.num_heads


def test_jamba_default_periods():
    """Attention where i % attn_layer_period == attn_layer_offset, experts where the config's own
    ``layers_num_experts`` says so; the differences (no RoPE, dt/B/C norms, router) are named."""
    config = transformers.JambaConfig()
    with pytest.raises(ArchDSLError) as err:
        archdsl.from_hf_config(config)
    for named in ("attention=no positional encoding", "dt_layernorm", "not renormalised", "--approximate"):
        assert named in str(err.value)
    text, spec = imported(config, approximate=True)
    expected = []
    for mixer, experts in zip(config.layers_block_type, config.layers_num_experts):
        expected += ["attn" if mixer == "attention" else "mamba", "moe" if experts > 1 else "mlp"]
    assert sublayers(spec) == expected
    assert expected.count("attn") == 4 and expected.count("moe") == 16  # 32 layers, 1:7, every other
    moe = params_of(spec, "moe")[0]
    assert (moe.experts, moe.top_k, moe.hidden) == (16, 2, 14336)
    assert params_of(spec, "mamba")[0].dt_rank == config.mamba_dt_rank
    assert text.count("# differs:") == 3


def test_nemotron_h_pattern_string():
    config = transformers.NemotronHConfig(hybrid_override_pattern="M-M*-ME-M*-", num_hidden_layers=11)
    _, spec = imported(config, approximate=True)
    letters = {"linear_attention": "ssm", "full_attention": "attn", "mlp": "mlp", "moe": "moe"}
    assert sublayers(spec) == [letters[k] for k in config.layers_block_type]
    assert config.hybrid_override_pattern == "M-M*-ME-M*-"
    ssm = params_of(spec, "ssm")[0]
    assert ssm.expand * config.hidden_size // ssm.head_dim == config.mamba_num_heads
    assert (ssm.state, ssm.groups) == (config.ssm_state_size, config.n_groups)


def test_nemotron_h_from_a_json_dict_with_the_pattern():
    data = transformers.NemotronHConfig(hybrid_override_pattern="M*M-").to_dict()
    data.pop("layers_block_type")
    data["hybrid_override_pattern"] = "MM*-"  # what published config.json files carry
    _, spec = imported(data, approximate=True)
    assert sublayers(spec) == ["ssm", "ssm", "attn", "mlp"]


def test_zamba2_shared_blocks_cycle():
    config = transformers.Zamba2Config(num_mem_blocks=2)
    with pytest.raises(ArchDSLError, match="concat\\(hidden, embeddings\\).*LoRA"):
        archdsl.from_hf_config(config)
    _, spec = imported(config, approximate=True)
    expected, seen = [], 0
    for kind in config.layers_block_type:
        if kind == "hybrid":
            expected += [("shared", seen % 2, "attn"), ("shared", seen % 2, "mlp")]
            seen += 1
        expected.append("ssm")
    got = sublayers(spec)
    groups = {}  # the Spec names groups; map them to 0, 1 in order of first use
    got = [("shared", groups.setdefault(x[1], len(groups)), x[2]) if isinstance(x, tuple) else x for x in got]
    assert got == expected
    assert len(config.hybrid_layer_ids) == seen == 9
    ssm = params_of(spec, "ssm")[0]
    assert ssm.head_dim == config.mamba_headdim and ssm.state == config.mamba_d_state


def test_falcon_h1_parallel_branches_and_multipliers():
    config = transformers.FalconH1Config()
    with pytest.raises(ArchDSLError, match="mamba_rms_norm=False"):
        archdsl.from_hf_config(config)
    _, spec = imported(config, approximate=True)
    assert sublayers(spec) == [("attn", "ssm"), "mlp"] * config.num_hidden_layers
    scaled = transformers.FalconH1Config(mamba_rms_norm=True, mamba_norm_before_gate=False, key_multiplier=0.5)
    with pytest.raises(ArchDSLError, match="key_multiplier=0.5: archdsl scales nothing"):
        archdsl.from_hf_config(scaled)
    text = archdsl.from_hf_config(scaled, approximate=True)
    assert "# differs: key_multiplier=0.5" in text


def test_qwen3_next_layer_types_and_sparse_layers():
    config = transformers.Qwen3NextConfig(num_hidden_layers=8, mlp_only_layers=[1], decoder_sparse_step=2)
    _, spec = imported(config, approximate=True)
    mixer = {"linear_attention": "gdn", "full_attention": "attn"}
    expected = []
    for i, kind in enumerate(config.layer_types):
        sparse = i not in config.mlp_only_layers and (i + 1) % config.decoder_sparse_step == 0
        expected += [mixer[kind], "moe" if sparse else "mlp"]
    assert sublayers(spec) == expected
    gdn = params_of(spec, "gdn")[0]
    assert (gdn.heads, gdn.head_dim, gdn.conv) == (16, 128, 4)
    assert gdn.head_dim * gdn.expand_v * gdn.heads == config.linear_num_value_heads * config.linear_value_head_dim
    assert params_of(spec, "attn")[0].qk_norm is True


def test_qwen3_sliding_layers():
    config = transformers.Qwen3Config(num_hidden_layers=4, use_sliding_window=True, max_window_layers=2)
    _, spec = imported(config)
    windows = [p.window for p in params_of(spec, "attn")]
    assert windows == [config.sliding_window if k == "sliding_attention" else None for k in config.layer_types]
    assert windows[-1] == 4096


def test_lfm2_conv_layers():
    config = transformers.Lfm2Config(num_hidden_layers=6, full_attn_idxs=[2, 5])
    _, spec = imported(config)
    assert sublayers(spec) == [
        x for k in config.layer_types for x in ("attn" if k == "full_attention" else "conv", "mlp")
    ]
    assert params_of(spec, "conv")[0].kernel == config.conv_L_cache


def test_every_family_reads_its_default_config():
    """The default of each supported family imports (exactly, or with its differences named)
    and the text passes ``archdsl check``'s pipeline (parse, resolve, lower)."""
    for name in ("Llama", "Mistral", "Qwen3", "Qwen3Next", "Lfm2", "Mamba", "Mamba2", "Jamba", "NemotronH",
                 "Zamba2", "FalconH1"):  # fmt: skip
        config = getattr(transformers, f"{name}Config")()
        text = archdsl.from_hf_config(config, approximate=True)
        archdsl.to_graph(archdsl.parse(text))
        assert text.startswith(f"# imported from <{name}Config> (model_type {config.model_type})")
