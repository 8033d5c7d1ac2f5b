"""The imported layout, built by archdsl, has the parameters of the Hugging Face model built from
the same (small) config: the module's count, and ``archdsl.cost(...).params``, against
``transformers``' own model. Where the layers differ, the difference is computed here from the
config and must be exactly what the named differences add."""

from __future__ import annotations

import warnings

import pytest

import archdsl

transformers = pytest.importorskip("transformers")

SMALL = {"vocab_size": 100, "hidden_size": 64}


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _counts(config, model_class, **kwargs) -> tuple[int, int]:
    """(Hugging Face's count, archdsl's count); archdsl's module and its analytic cost agree."""
    spec = archdsl.parse(archdsl.from_hf_config(config, **kwargs))
    ours = _count(archdsl.build(spec))
    assert archdsl.cost(spec).params == ours
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = _count(model_class(config))
    return theirs, ours


EXACT = {
    "llama": lambda: (
        transformers.LlamaConfig(
            **SMALL, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
        ),
        transformers.LlamaForCausalLM,
    ),
    "qwen3-sliding": lambda: (
        transformers.Qwen3Config(
            **SMALL,
            intermediate_size=96,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            use_sliding_window=True,
            sliding_window=8,
            max_window_layers=2,
        ),
        transformers.Qwen3ForCausalLM,
    ),
    "mamba2": lambda: (
        transformers.Mamba2Config(**SMALL, num_hidden_layers=2, num_heads=8, head_dim=16, n_groups=2, state_size=8),
        transformers.Mamba2ForCausalLM,
    ),
    "mamba": lambda: (
        transformers.MambaConfig(**SMALL, num_hidden_layers=2, state_size=8),
        transformers.MambaForCausalLM,
    ),
    "lfm2-conv": lambda: (
        transformers.Lfm2Config(
            **SMALL,
            intermediate_size=96,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            full_attn_idxs=[1, 3],
        ),
        transformers.Lfm2ForCausalLM,
    ),
    # Falcon-H1 with the Mamba-2 mixer of HF Mamba2 (gated RMSNorm, gate before norm) and unit
    # multipliers is expressible exactly: (attn | ssm) mlp
    "falcon-h1": lambda: (
        transformers.FalconH1Config(
            **SMALL,
            intermediate_size=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            mamba_d_ssm=None,
            mamba_n_heads=8,
            mamba_d_head=16,
            mamba_d_state=8,
            mamba_rms_norm=True,
            mamba_norm_before_gate=False,
        ),
        transformers.FalconH1ForCausalLM,
    ),
}


@pytest.mark.parametrize("family", list(EXACT))
def test_exact_families_have_the_same_parameter_count(family):
    config, model_class = EXACT[family]()
    theirs, ours = _counts(config, model_class)  # no approximate=True: these import exactly
    assert ours == theirs


def test_nemotron_h_mamba_and_attention():
    """Nemotron-H's attention has no RoPE (a difference with no parameters) and its Mamba-2
    mixer is HF Mamba2's: with only M and * layers the counts are equal. Its MLP (relu2, two
    matrices) and MoE are not archdsl's and are left out here (see the Jamba test for MoE)."""
    config = transformers.NemotronHConfig(
        **SMALL,
        hybrid_override_pattern="M*M*M",
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        ssm_state_size=8,
        mamba_num_heads=8,
        mamba_head_dim=16,
        n_groups=2,
    )
    theirs, ours = _counts(config, transformers.NemotronHForCausalLM, approximate=True)
    assert ours == theirs


def test_jamba_differs_by_the_mamba_inner_norms():
    """Jamba's Mamba-1 mixer adds RMSNorms on dt (dt_rank weights), B and C (state weights each)
    that HF Mamba, and archdsl's mamba, do not have; everything else (attention, SwiGLU, the
    Mixtral-shaped experts and router) counts the same."""
    config = transformers.JambaConfig(
        **SMALL,
        intermediate_size=96,
        num_hidden_layers=8,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_experts=4,
        mamba_d_state=8,
        mamba_dt_rank=8,
    )
    theirs, ours = _counts(config, transformers.JambaForCausalLM, approximate=True)
    mamba_layers = config.layers_block_type.count("mamba")
    assert mamba_layers == 7
    assert theirs - ours == mamba_layers * (config.mamba_dt_rank + 2 * config.mamba_d_state)


def test_zamba2_differs_by_what_the_import_names():
    """Zamba2's shared block reads concat(hidden, embeddings) (2 * hidden wide: q, k, v and the
    block's first norm are twice as wide), each hybrid layer has its own linear after the block
    and its own LoRA on the shared MLP; all named as differences. The Mamba-2 layers match."""
    config = transformers.Zamba2Config(
        **SMALL,
        num_hidden_layers=5,
        layers_block_type=["mamba", "mamba", "hybrid", "mamba", "hybrid"],
        num_attention_heads=4,
        intermediate_size=96,
        mamba_d_state=8,
        n_mamba_heads=4,
    )
    theirs, ours = _counts(config, transformers.Zamba2ForCausalLM, approximate=True)
    d, hybrids, width = config.hidden_size, 2, config.num_attention_heads * config.attention_head_dim
    qkv_input = 3 * d * width  # q, k, v read 2d channels, not d
    norm = d  # the block's input norm over 2d channels
    linear = hybrids * d * d
    lora = hybrids * (d * config.adapter_rank + config.adapter_rank * 2 * config.intermediate_size)
    assert theirs - ours == qkv_input + norm + linear + lora


def test_qwen3_next_differs_by_gate_and_shared_expert():
    """Qwen3-Next's attention projects a sigmoid output gate alongside q (heads * head_dim more
    rows) and its MoE adds a shared expert (a SwiGLU) with a one-unit gate; both are named as
    differences. Gated DeltaNet with as many value heads as key heads counts the same."""
    config = transformers.Qwen3NextConfig(
        **SMALL,
        intermediate_size=96,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        linear_key_head_dim=16,
        linear_value_head_dim=16,
        linear_num_key_heads=4,
        linear_num_value_heads=4,
        num_experts=4,
        num_experts_per_tok=2,
        moe_intermediate_size=32,
        shared_expert_intermediate_size=32,
        partial_rotary_factor=1.0,
    )
    theirs, ours = _counts(config, transformers.Qwen3NextForCausalLM, approximate=True)
    d, attention_layers = config.hidden_size, config.layer_types.count("full_attention")
    gate = attention_layers * d * config.num_attention_heads * config.head_dim
    shared = config.num_hidden_layers * (3 * d * config.shared_expert_intermediate_size + d)
    assert theirs - ours == gate + shared
