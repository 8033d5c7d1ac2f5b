"""Pieces every family shares: the model header, RoPE, attention, SwiGLU, Mamba-2 mixers."""

from __future__ import annotations

from archdsl.interop.layout import Call
from archdsl.interop.reader import Fields

SWIGLU = "archdsl's mlp and moe experts are SwiGLU (silu)"
NO_BIAS = "archdsl's projections have no bias"


def header(f: Fields, *, tied_default: bool, eps_key: str = "rms_norm_eps", eps_default: float = 1e-6) -> dict:
    """d_model, vocab, tie_embeddings and norm_eps of the model header."""
    return {
        "d_model": f.get("hidden_size", kind=int),
        "vocab": f.get("vocab_size", kind=int),
        "tie_embeddings": f.get("tie_word_embeddings", tied_default, kind=bool),
        "norm_eps": float(f.get(eps_key, eps_default, kind=float)),
    }


def rope_theta(f: Fields, default: float = 10000.0) -> float:
    """The RoPE base; a scaled, partial or other kind of RoPE is a difference. transformers 5
    writes ``rope_parameters``; older config files ``rope_theta`` and ``rope_scaling``."""
    rope = f.get("rope_parameters", {}, kind=dict)
    kind = rope.get("rope_type", "default")
    if kind != "default":
        f.differ("rope_parameters.rope_type", kind, "archdsl applies plain RoPE")
    partial = rope.get("partial_rotary_factor", f.get("partial_rotary_factor", 1.0, kind=float))
    if partial != 1.0:
        f.differ("partial_rotary_factor", partial, "archdsl's attn rotates every channel of a head")
    scaling = f.get("rope_scaling", None, kind=dict)
    if scaling and scaling.get("rope_type", scaling.get("type", "default")) != "default":
        f.differ("rope_scaling", scaling, "archdsl applies plain RoPE")
    return float(rope.get("rope_theta", f.get("rope_theta", default, kind=float)))


def attention(f: Fields, *, heads_key="num_attention_heads", kv_key="num_key_value_heads", **extra) -> Call:
    """``attn`` with the heads, KV heads and head width of a Llama-style config."""
    d = f.get("hidden_size", kind=int)
    heads = f.get(heads_key, kind=int)
    kv = f.get(kv_key, heads, kind=int)
    head_dim = f.get("head_dim", d // heads, kind=int)
    f.expect("attention_bias", False, NO_BIAS)
    f.expect("attention_dropout", 0.0, "archdsl has no dropout")
    return Call.of("attn", heads=heads, kv_heads=kv, head_dim=head_dim, **extra)


def swiglu(f: Fields, hidden_key: str = "intermediate_size", act_key: str = "hidden_act") -> Call:
    f.expect(act_key, "silu", SWIGLU)
    f.expect("mlp_bias", False, NO_BIAS)
    return Call.of("mlp", hidden=f.get(hidden_key, kind=int))


def mamba2(f: Fields, *, inner: int, heads: int, head_dim: int, groups: int, state: int, conv: int, chunk: int) -> Call:
    """``ssm``: archdsl's width is ``expand * d_model`` with a whole ``expand`` and its heads
    follow from ``head_dim``; an inner width that is not a multiple of d_model is a difference
    (the nearest whole expand is written when the caller accepts differences)."""
    d = f.get("hidden_size", kind=int)
    if heads * head_dim != inner:
        raise f.error(f"the Mamba-2 mixer has {heads} heads x {head_dim} channels = {heads * head_dim}, not {inner}")
    expand = inner // d
    if inner % d or expand < 1:
        expand = max(1, round(inner / d))
        f.differ(
            "Mamba-2 inner width",
            inner,
            f"archdsl's ssm is expand * d_model wide with a whole expand; written as expand={expand} "
            f"({expand * d} channels, {expand * d // head_dim} heads)",
        )
        if (expand * d) % head_dim or (expand * d // head_dim) % groups:
            raise f.error(
                f"the Mamba-2 mixer ({inner} channels, head_dim {head_dim}, {groups} groups) cannot be written "
                f"at a width that is a multiple of hidden_size={d}"
            )
    return Call.of("ssm", state=state, expand=expand, head_dim=head_dim, groups=groups, conv=conv, chunk=chunk)


def mamba2_biases(f: Fields, proj_key: str, conv_key: str, act_key: str | None = None) -> None:
    f.expect(proj_key, False, NO_BIAS + " in the ssm's in_proj and out_proj")
    f.expect(conv_key, True, "archdsl's ssm convolution has a bias")
    if act_key is not None:
        f.expect(act_key, "silu", "archdsl's ssm uses silu")
    f.expect("time_step_limit", [0.0, float("inf")], "archdsl's ssm does not clamp dt")
