"""Families built on Mamba mixers: Mamba, Mamba-2, Jamba, Nemotron-H, Zamba2, Falcon-H1.

Each function reads a config's fields (:class:`~archdsl.interop.reader.Fields`) and returns a
:class:`~archdsl.interop.layout.Layout` with one block per decoder layer of the original.
"""

from __future__ import annotations

import math

from archdsl.interop.common import NO_BIAS, SWIGLU, attention, header, mamba2, mamba2_biases, rope_theta, swiglu
from archdsl.interop.layout import Call, Layout, Parallel, Shared
from archdsl.interop.reader import Fields

NO_ROPE = "archdsl's attn applies RoPE"


def mamba(f: Fields) -> Layout:
    f.expect("use_bias", False, NO_BIAS)
    f.expect("use_conv_bias", True, "archdsl's mamba convolution has a bias")
    f.expect("hidden_act", "silu", "archdsl's mamba uses silu")
    d = f.get("hidden_size", kind=int)
    expand = f.get("expand", 2, kind=int)
    f.expect("intermediate_size", expand * d, "archdsl's mamba is expand * d_model wide")
    call = Call.of(
        "mamba",
        state=f.get("state_size", 16, kind=int),
        expand=expand,
        conv=f.get("conv_kernel", 4, kind=int),
        dt_rank=_dt_rank(f, "time_step_rank", d),
    )
    head = header(f, tied_default=True, eps_key="layer_norm_epsilon", eps_default=1e-5)
    return Layout(**head, blocks=[(call,)] * f.get("num_hidden_layers", kind=int))


def mamba2_model(f: Fields) -> Layout:
    mamba2_biases(f, "use_bias", "use_conv_bias", "hidden_act")
    d = f.get("hidden_size", kind=int)
    f.ignore("time_step_rank")  # read by nothing in HF's Mamba2 mixer
    call = mamba2(
        f,
        inner=f.get("expand", 2, kind=int) * d,
        heads=f.get("num_heads", kind=int),
        head_dim=f.get("head_dim", 64, kind=int),
        groups=f.get("n_groups", 1, kind=int),
        state=f.get("state_size", 128, kind=int),
        conv=f.get("conv_kernel", 4, kind=int),
        chunk=f.get("chunk_size", 256, kind=int),
    )
    head = header(f, tied_default=False, eps_key="layer_norm_epsilon", eps_default=1e-5)
    return Layout(**head, blocks=[(call,)] * f.get("num_hidden_layers", kind=int))


def jamba(f: Fields) -> Layout:
    """Layer i is attention when ``i % attn_layer_period == attn_layer_offset`` (else Mamba-1) and
    has a mixture of experts when ``i % expert_layer_period == expert_layer_offset``."""
    d = f.get("hidden_size", kind=int)
    f.differ("attention", "no positional encoding", NO_ROPE)
    f.differ("mamba", "dt_layernorm, b_layernorm, c_layernorm", "archdsl's mamba has no RMSNorm on dt, B and C")
    f.expect("mamba_proj_bias", False, NO_BIAS)
    f.expect("mamba_conv_bias", True, "archdsl's mamba convolution has a bias")
    attn = attention(f)
    mixer = Call.of(
        "mamba",
        state=f.get("mamba_d_state", 16, kind=int),
        expand=f.get("mamba_expand", 2, kind=int),
        conv=f.get("mamba_d_conv", 4, kind=int),
        dt_rank=_dt_rank(f, "mamba_dt_rank", d),
    )
    mlp = swiglu(f)
    experts = f.get("num_experts", 16, kind=int)
    moe = Call.of("moe", experts=experts, top_k=f.get("num_experts_per_tok", 2, kind=int), hidden=mlp.params[0][1])
    attn_period, attn_offset = f.get("attn_layer_period", 8, kind=int), f.get("attn_layer_offset", 4, kind=int)
    moe_period, moe_offset = f.get("expert_layer_period", 2, kind=int), f.get("expert_layer_offset", 1, kind=int)
    blocks = []
    for i in range(f.get("num_hidden_layers", kind=int)):
        sparse = experts > 1 and i % moe_period == moe_offset
        blocks.append((attn if i % attn_period == attn_offset else mixer, moe if sparse else mlp))
    if any(moe in block for block in blocks):
        f.differ("moe router", "top-k softmax weights not renormalised", "archdsl's moe renormalises the top-k weights")
    return Layout(**header(f, tied_default=False), blocks=blocks)


NEMOTRON_PATTERN = {"M": "linear_attention", "*": "full_attention", "-": "mlp", "E": "moe"}


def nemotron_h(f: Fields) -> Layout:
    """One sub-layer per character of ``hybrid_override_pattern`` (or entry of
    ``layers_block_type``): M Mamba-2, * attention, - MLP, E mixture of experts."""
    kinds = _nemotron_kinds(f)
    f.ignore("num_hidden_layers", "mtp_layers_block_type", "mtp_hybrid_override_pattern")
    if f.get("num_nextn_predict_layers", 0, kind=int):
        f.differ("num_nextn_predict_layers", f.data["num_nextn_predict_layers"], "archdsl has no multi-token heads")
    f.expect("use_bias", False, NO_BIAS)
    calls: dict[str, Call] = {}
    if "linear_attention" in kinds:
        mamba2_biases(f, "mamba_proj_bias", "use_conv_bias", "mamba_hidden_act")
        heads, head_dim = f.get("mamba_num_heads", kind=int), f.get("mamba_head_dim", kind=int)
        calls["linear_attention"] = mamba2(
            f,
            inner=heads * head_dim,
            heads=heads,
            head_dim=head_dim,
            groups=f.get("n_groups", 8, kind=int),
            state=f.get("ssm_state_size", 128, kind=int),
            conv=f.get("conv_kernel", 4, kind=int),
            chunk=f.get("chunk_size", 128, kind=int),
        )
        f.ignore("expand")  # the width is mamba_num_heads * mamba_head_dim
    if "full_attention" in kinds:
        f.differ("attention", "no positional encoding", NO_ROPE)
        if f.get("sliding_window", None, kind=int) is not None:
            f.differ("sliding_window", f.data["sliding_window"], "read only for full attention here")
        calls["full_attention"] = attention(f)
    if "mlp" in kinds or "moe" in kinds:
        act = f.get("mlp_hidden_act", "relu2", kind=str)
        if act != "silu":
            f.differ(
                "mlp_hidden_act", act, f"{SWIGLU}; Nemotron-H's MLP is up/down with {act} (two matrices, not three)"
            )
        f.expect("mlp_bias", False, NO_BIAS)
    if "mlp" in kinds:
        calls["mlp"] = Call.of("mlp", hidden=f.get("intermediate_size", kind=int))
    if "moe" in kinds:
        shared = f.get("n_shared_experts", 1, kind=int)
        if shared:
            f.differ("n_shared_experts", shared, "archdsl's moe has routed experts only")
        f.differ("moe router", "sigmoid, grouped top-k", "archdsl's moe routes with a softmax over all experts")
        if f.get("moe_latent_size", None, kind=int) is not None:
            f.differ("moe_latent_size", f.data["moe_latent_size"], "archdsl's experts read d_model directly")
        f.ignore("moe_shared_expert_intermediate_size", "moe_shared_expert_overlap", "n_group", "topk_group")
        f.ignore("norm_topk_prob", "routed_scaling_factor")  # parts of the router named above
        calls["moe"] = Call.of(
            "moe",
            experts=f.get("n_routed_experts", kind=int),
            top_k=f.get("num_experts_per_tok", kind=int),
            hidden=f.get("moe_intermediate_size", kind=int),
        )
    f.expect("hidden_dropout", 0.0, "archdsl has no dropout")
    head = header(f, tied_default=False, eps_key="layer_norm_epsilon", eps_default=1e-5)
    return Layout(**head, blocks=[(calls[k],) for k in kinds])


def _nemotron_kinds(f: Fields) -> list[str]:
    pattern = f.get("hybrid_override_pattern", None, kind=str)
    if pattern is not None:
        unknown = sorted(set(pattern) - set(NEMOTRON_PATTERN))
        if unknown:
            raise f.error(f"hybrid_override_pattern has {unknown[0]!r}; expected only M (Mamba-2), * (attention), "
                          "- (MLP) and E (mixture of experts)")  # fmt: skip
        f.ignore("layers_block_type")
        return [NEMOTRON_PATTERN[c] for c in pattern]
    kinds = [
        {"mamba": "linear_attention", "attention": "full_attention"}.get(k, k)
        for k in _layer_list(f, "layers_block_type")
    ]
    unknown = sorted(set(kinds) - set(NEMOTRON_PATTERN.values()))
    if unknown:
        raise f.error(f"layers_block_type has {unknown[0]!r}; expected linear_attention, full_attention, mlp or moe")
    return kinds


def zamba2(f: Fields) -> Layout:
    """A Mamba-2 backbone; a ``hybrid`` layer runs a shared attention + MLP block (one of
    ``num_mem_blocks``, used in turn) and then its own Mamba-2 layer."""
    d = f.get("hidden_size", kind=int)
    kinds = [{"mamba": "linear_attention"}.get(k, k) for k in _layer_list(f, "layers_block_type")]
    unknown = sorted(set(kinds) - {"linear_attention", "hybrid"})
    if unknown:
        raise f.error(f"layers_block_type has {unknown[0]!r}; expected linear_attention (or mamba) and hybrid")
    f.ignore("num_hidden_layers", "hybrid_layer_ids", "attention_hidden_size", "kv_channels", "num_query_groups")
    mamba2_biases(f, "add_bias_linear", "use_conv_bias")
    heads = f.get("n_mamba_heads", 8, kind=int)
    inner = f.get("mamba_expand", 2, kind=int) * d
    f.ignore("mamba_headdim")  # derived: expand * hidden_size / n_mamba_heads
    ssm = mamba2(
        f,
        inner=inner,
        heads=heads,
        head_dim=inner // heads,
        groups=f.get("mamba_ngroups", 1, kind=int),
        state=f.get("mamba_d_state", 64, kind=int),
        conv=f.get("mamba_d_conv", 4, kind=int),
        chunk=f.get("chunk_size", 256, kind=int),
    )
    blocks, used = [], 0
    if "hybrid" in kinds:
        rank = f.get("adapter_rank", 128, kind=int)
        f.differ("shared block input", "concat(hidden, embeddings)", "archdsl's shared block reads the residual stream")
        f.differ("hybrid layer linear", "one per hybrid layer", "archdsl has no projection after the shared block")
        f.differ("shared MLP adapters", f"rank {rank} LoRA per hybrid layer", "archdsl shares the block as it is")
        if f.get("use_shared_attention_adapter", False, kind=bool):
            f.differ("use_shared_attention_adapter", True, "archdsl shares the block as it is (no LoRA per use)")
        if not f.get("use_mem_rope", False, kind=bool):
            f.differ("use_mem_rope", False, NO_ROPE)
        if f.get("use_long_context", False, kind=bool):
            f.differ("use_long_context", True, "archdsl applies plain RoPE")
        theta = rope_theta(f)
        heads = f.get("num_attention_heads", kind=int)
        attn = Call.of(
            "attn",
            heads=heads,
            kv_heads=f.get("num_key_value_heads", heads, kind=int),
            head_dim=2 * d // heads,  # Zamba2's attention width is 2 * hidden_size (the concatenation)
            rope_theta=theta,
        )
        f.ignore("head_dim", "attention_head_dim")
        f.expect("attention_dropout", 0.0, "archdsl has no dropout")
        f.expect("hidden_act", "silu", SWIGLU + "; Zamba2's shared MLP is a GLU with this activation", default="gelu")
        mlp = Call.of("mlp", hidden=f.get("intermediate_size", 4 * d, kind=int))
        mem = f.get("num_mem_blocks", 1, kind=int)
        shared = [Shared(k, (attn, mlp)) for k in range(mem)]
    for kind in kinds:
        if kind == "hybrid":
            blocks.append((shared[used % mem], ssm))
            used += 1
        else:
            blocks.append((ssm,))
    f.ignore("adapter_rank", "use_shared_attention_adapter", "use_mem_rope", "use_long_context", "num_mem_blocks")
    return Layout(**header(f, tied_default=True, eps_default=1e-5), blocks=blocks)


def falcon_h1(f: Fields) -> Layout:
    """Every layer runs attention and a Mamba-2 mixer side by side on the same normalised input,
    sums them, then a SwiGLU MLP: ``(attn | ssm) mlp``."""
    d = f.get("hidden_size", kind=int)
    attn = attention(f, rope_theta=rope_theta(f))
    f.expect("projectors_bias", False, NO_BIAS)
    mamba2_biases(f, "mamba_proj_bias", "mamba_conv_bias")
    heads, head_dim = f.get("mamba_n_heads", kind=int), f.get("mamba_d_head", kind=int)
    inner = f.get("mamba_d_ssm", None, kind=int) or f.get("mamba_expand", 2, kind=int) * d
    f.ignore("mamba_expand")
    ssm = mamba2(
        f,
        inner=inner,
        heads=heads,
        head_dim=head_dim,
        groups=f.get("mamba_n_groups", 1, kind=int),
        state=f.get("mamba_d_state", 256, kind=int),
        conv=f.get("mamba_d_conv", 4, kind=int),
        chunk=f.get("mamba_chunk_size", 256, kind=int),
    )
    if not f.get("mamba_rms_norm", False, kind=bool):
        f.differ("mamba_rms_norm", False, "archdsl's ssm applies a gated RMSNorm before out_proj")
    elif f.get("mamba_norm_before_gate", True, kind=bool):
        f.differ("mamba_norm_before_gate", True, "archdsl's ssm gates, then normalises (HF Mamba2)")
    f.ignore("mamba_norm_before_gate")
    for key, size in (("mlp_multipliers", 2), ("ssm_multipliers", 5)):
        f.expect(key, [1.0] * size, "archdsl scales nothing (muP multipliers)")
    for key in ("lm_head_multiplier", "embedding_multiplier", "key_multiplier", "attention_in_multiplier",
                "attention_out_multiplier", "ssm_in_multiplier", "ssm_out_multiplier"):  # fmt: skip
        f.expect(key, 1.0, "archdsl scales nothing (muP multipliers)")
    blocks = [(Parallel(((attn,), (ssm,))), swiglu(f))] * f.get("num_hidden_layers", kind=int)
    return Layout(**header(f, tied_default=False, eps_default=1e-5), blocks=blocks)


def _layer_list(f: Fields, key: str) -> list[str]:
    kinds = f.get(key, kind=list)
    if not kinds or not all(isinstance(k, str) for k in kinds):
        raise f.error(f"field '{key}' must be a non-empty list of layer-type names")
    return kinds


def _dt_rank(f: Fields, key: str, d: int) -> int:
    rank = f.get(key, "auto", kind=(int, str))
    if rank == "auto":
        return math.ceil(d / 16)
    if isinstance(rank, str):
        raise f.error(f"field '{key}' is {rank!r}; expected an integer or 'auto'")
    return rank
