"""Families of decoder layers ``mixer`` + ``feed-forward``, the mixer named by ``layer_types``
where the config has one: Llama, Mistral, Qwen3, Qwen3-Next, LFM2."""

from __future__ import annotations

from archdsl.interop.common import attention, header, rope_theta, swiglu
from archdsl.interop.layout import Call, Layout
from archdsl.interop.reader import Fields


def llama(f: Fields) -> Layout:
    """Llama and Mistral: every layer ``attn mlp``; Mistral's ``sliding_window`` windows them all."""
    window = f.get("sliding_window", None, kind=int)
    attn = attention(f, rope_theta=rope_theta(f), window=window)
    f.ignore("pretraining_tp")  # how the projections were split over devices in pre-training
    mlp = swiglu(f)
    return Layout(**header(f, tied_default=False), blocks=[(attn, mlp)] * f.get("num_hidden_layers", kind=int))


def qwen3(f: Fields) -> Layout:
    """Qwen3: QK-norm attention, full or sliding by ``layer_types``, each followed by a SwiGLU."""
    n = f.get("num_hidden_layers", kind=int)
    window = f.get("sliding_window", None, kind=int) if f.get("use_sliding_window", False, kind=bool) else None
    f.ignore("sliding_window", "max_window_layers")
    default = ["sliding_attention" if window and i >= f.get("max_window_layers", 28, kind=int) else "full_attention"
               for i in range(n)]  # fmt: skip
    kinds = _layer_types(f, n, {"full_attention", "sliding_attention"}, default)
    attn = attention(f, rope_theta=rope_theta(f), qk_norm=True)
    mixers = {"full_attention": attn}
    if "sliding_attention" in kinds:
        size = window or f.get("sliding_window", kind=int)
        mixers["sliding_attention"] = Call(attn.type, attn.params + (("window", size),))
    mlp = swiglu(f)
    return Layout(**header(f, tied_default=False), blocks=[(mixers[k], mlp) for k in kinds])


def qwen3_next(f: Fields) -> Layout:
    """Qwen3-Next: Gated DeltaNet (``linear_attention``) or gated attention (``full_attention``),
    each followed by a mixture of experts (a SwiGLU on ``mlp_only_layers`` and off the
    ``decoder_sparse_step``)."""
    n = f.get("num_hidden_layers", kind=int)
    default = ["full_attention" if (i + 1) % 4 == 0 else "linear_attention" for i in range(n)]
    kinds = _layer_types(f, n, {"full_attention", "linear_attention"}, default)
    mixers = {}
    if "full_attention" in kinds:
        f.differ("attention output gate", "sigmoid(gate) * attention", "archdsl's attn has no output gate")
        mixers["full_attention"] = attention(f, rope_theta=rope_theta(f), qk_norm=True)
    if "linear_attention" in kinds:
        k_heads, v_heads = f.get("linear_num_key_heads", kind=int), f.get("linear_num_value_heads", kind=int)
        k_dim, v_dim = f.get("linear_key_head_dim", kind=int), f.get("linear_value_head_dim", kind=int)
        if k_heads != v_heads:
            f.differ(
                "linear_num_value_heads",
                v_heads,
                f"archdsl's gdn has as many value heads as key heads ({k_heads}); written with the same value width",
            )
        mixers["linear_attention"] = Call.of(
            "gdn",
            heads=k_heads,
            head_dim=k_dim,
            expand_v=v_heads * v_dim / (k_heads * k_dim),
            conv=f.get("linear_conv_kernel_dim", 4, kind=int),
        )
    mlp = swiglu(f)
    experts = f.get("num_experts", 0, kind=int)
    dense = set(f.get("mlp_only_layers", [], kind=list))
    step = f.get("decoder_sparse_step", 1, kind=int)
    sparse = [i not in dense and experts > 0 and (i + 1) % step == 0 for i in range(n)]
    if any(sparse):
        shared = f.get("shared_expert_intermediate_size", 0, kind=int)
        if shared:
            f.differ("shared_expert_intermediate_size", shared, "archdsl's moe has routed experts only")
        f.expect("norm_topk_prob", True, "archdsl's moe renormalises the top-k weights")
        moe = Call.of(
            "moe",
            experts=experts,
            top_k=f.get("num_experts_per_tok", kind=int),
            hidden=f.get("moe_intermediate_size", kind=int),
        )
    f.ignore("shared_expert_intermediate_size", "norm_topk_prob", "num_experts_per_tok", "moe_intermediate_size")
    blocks = [(mixers[k], moe if s else mlp) for k, s in zip(kinds, sparse)]
    return Layout(**header(f, tied_default=False), blocks=blocks)


def lfm2(f: Fields) -> Layout:
    """LFM2: gated short convolutions (``conv``) and QK-norm attention, each followed by a SwiGLU
    whose width LFM2 derives from ``intermediate_size`` (``block_auto_adjust_ff_dim``)."""
    n = f.get("num_hidden_layers", kind=int)
    full = f.get("full_attn_idxs", list(range(n)), kind=list)
    kinds = _layer_types(
        f, n, {"full_attention", "conv"}, ["full_attention" if i in full else "conv" for i in range(n)]
    )
    f.ignore("full_attn_idxs")
    f.expect("conv_bias", False, "archdsl's conv has no bias")
    attn = attention(f, rope_theta=rope_theta(f, default=1000000.0), qk_norm=True)
    mixers = {"full_attention": attn, "conv": Call.of("conv", kernel=f.get("conv_L_cache", 3, kind=int))}
    hidden = f.get("intermediate_size", kind=int)
    if f.get("block_auto_adjust_ff_dim", False, kind=bool):
        hidden = int(2 * hidden / 3)
        multiplier = f.get("block_ffn_dim_multiplier", None, kind=float)
        if multiplier is not None:
            step = f.get("block_multiple_of", 256, kind=int)
            hidden = step * ((int(multiplier * hidden) + step - 1) // step)
    f.ignore("block_ffn_dim_multiplier", "block_multiple_of", "block_dim", "block_ff_dim")
    f.ignore("block_auto_adjust_ff_dim", "intermediate_size")
    f.expect("hidden_act", "silu", "archdsl's mlp is SwiGLU (silu)")
    mlp = Call.of("mlp", hidden=hidden)
    head = header(f, tied_default=True, eps_key="norm_eps", eps_default=1e-5)
    return Layout(**head, blocks=[(mixers[k], mlp) for k in kinds])


def _layer_types(f: Fields, n: int, allowed: set[str], default: list[str]) -> list[str]:
    kinds = f.get("layer_types", default, kind=list)
    if len(kinds) != n:
        raise f.error(f"layer_types has {len(kinds)} entries but num_hidden_layers is {n}; expected one per layer")
    for i, kind in enumerate(kinds):
        if kind not in allowed:
            raise f.error(f"layer_types[{i}] is {kind!r}; expected one of {', '.join(sorted(allowed))}")
    return kinds
