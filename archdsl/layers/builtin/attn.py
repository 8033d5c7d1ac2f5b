"""`attn`: the torch-free half of the layer, its parameters and analytic cost.

The module is :class:`archdsl.nn.layers.attn.Attention` (imported by build only).
"""

from __future__ import annotations

from pydantic import Field

from archdsl.costing.value import Cost, CostContext
from archdsl.layers.base import InvalidParams, LayerContract, LayerParams, divisors
from archdsl.layers.registry import register_layer
from archdsl.spec.model import ModelSettings


class AttnParams(LayerParams):
    heads: int | None = Field(None, description="query heads (count); default d_model // 64, at least 1")
    kv_heads: int | None = Field(
        None, description="key/value heads (count, grouped-query attention); divides heads; default heads"
    )
    head_dim: int | None = Field(None, description="channels per head; default d_model // heads; even (RoPE)")
    window: int | None = Field(
        None, description="sliding window (tokens): query i sees keys i-window+1..i; none: full causal"
    )
    rope_theta: float = Field(10000.0, description="RoPE base theta (rotary wavelengths up to 2*pi*theta tokens)")
    qk_norm: bool = Field(False, description="RMSNorm over head_dim on queries and keys before RoPE (Qwen3)")

    def resolve(self, model: ModelSettings) -> AttnParams:
        d = model.d_model
        heads = self.heads if self.heads is not None else max(1, d // 64)
        if heads < 1:
            raise InvalidParams("heads", f"heads={heads} must be at least 1")
        head_dim = self.head_dim
        if head_dim is None:
            if d % heads:
                what = f"heads={heads}" if self.heads is not None else f"the default heads=d_model//64={heads}"
                raise InvalidParams(
                    "heads", f"{what} does not divide d_model={d}; allowed: {divisors(d)} (or set head_dim)"
                )
            head_dim = d // heads
        if head_dim < 2 or head_dim % 2:
            raise InvalidParams(
                "head_dim", f"head_dim={head_dim} must be even (rotary embeddings pair channels); allowed: 2, 4, 6, ..."
            )
        kv_heads = self.kv_heads if self.kv_heads is not None else heads
        if kv_heads < 1 or heads % kv_heads:
            raise InvalidParams(
                "kv_heads", f"kv_heads={kv_heads} does not divide heads={heads}; allowed: {divisors(heads)}"
            )
        if self.window is not None and self.window < 1:
            raise InvalidParams(
                "window", f"window={self.window} must be at least 1 token; omit it for full causal attention"
            )
        # below 1 the rotary frequencies 1/theta^(2i/d) grow instead of fall, and for tiny values
        # they overflow to inf (NaN logits); above 1e12 every wavelength but the first is constant
        if not 1.0 <= self.rope_theta <= 1e12:
            raise InvalidParams(
                "rope_theta", f"rope_theta={self.rope_theta} must be in 1 .. 1e12; the usual values are 10000.0 to 1e6"
            )
        return self.model_copy(update={"heads": heads, "kv_heads": kv_heads, "head_dim": head_dim})


def cost(params: AttnParams, model: ModelSettings, ctx: CostContext) -> Cost:
    p = params.resolve(model)
    d, H, KV, hd = model.d_model, p.heads, p.kv_heads, p.head_dim
    T, C = ctx.seq_len, ctx.context_len
    # Counting the Linear layers: q and o are d x H*hd, k and v are d x KV*hd; q_norm and
    # k_norm add a weight of hd each.
    linear = d * H * hd + 2 * d * KV * hd + H * hd * d
    n_params = linear + (2 * hd if p.qk_norm else 0)
    # 2 FLOPs per weight per token (one multiply-add), Kaplan et al. 2020, Table 1.
    matmul = 2.0 * linear
    # Scores q.k and the weighted sum of values cost 2*H*hd FLOPs each per (query, key) pair
    # (Kaplan et al. 2020 count 2*n_ctx*d_attn per token for non-causal attention); causal
    # masking makes a query see mean_keys(T, window) keys on average. RoPE, QK-norm and softmax
    # are elementwise and not counted, as Kaplan et al. leave out nonlinearities and norms.
    attn = 4.0 * H * hd * mean_keys(T, p.window)
    # Saved for backward per token (Korthikanti et al. 2022 style, with a fused attention
    # kernel that keeps no T x T matrix): the input x (d), RoPE's cos and sin (2*hd), q after
    # RoPE (H*hd), k and v (2*KV*hd), the attention output fed to o_proj (H*hd), plus with
    # QK-norm each norm's input, its 1/rms and its normalised output ((2*hd + 1)*(H + KV)); and
    # the softmax log-sum-exp, one float32 per head. (The blocked sliding-window path that
    # runs where FlexAttention does not, on CPU, keeps more: its masks and per-block copies.)
    per_token = d + 2 * hd + 2 * H * hd + 2 * KV * hd + ((2 * hd + 1) * (H + KV) if p.qk_norm else 0)
    activation = T * (per_token * ctx.act_bytes + 4 * H)
    # KV cache: keys and values for the positions a new token can see.
    cached = C if p.window is None else min(C, p.window)
    state = 2 * KV * hd * cached * ctx.state_bytes
    # One new token: the projections plus attention over the cached keys.
    decode = matmul + 4.0 * H * hd * cached
    return Cost(
        params=n_params,
        matmul_flops=matmul,
        attn_flops=attn,
        scan_flops=0.0,
        activation_bytes=float(activation),
        state_bytes=float(state),
        decode_flops=decode,
    )


def mean_keys(seq_len: int, window: int | None) -> float:
    """Average number of keys a query sees over positions 0..T-1 of a causal sequence.

    Full causal: (1/T) sum_i (i+1) = (T+1)/2. Window w < T: (1/T) sum_i min(i+1, w)
    = (w(w+1)/2 + (T-w) w) / T (the first w queries see i+1 keys, the rest see w)."""
    if window is None or window >= seq_len:
        return (seq_len + 1) / 2
    return (window * (window + 1) / 2 + (seq_len - window) * window) / seq_len


LAYER = register_layer(
    LayerContract(
        name="attn",
        description="causal attention: RoPE, grouped-query heads, optional sliding window and QK-norm (HF Llama)",
        Params=AttnParams,
        cost=cost,
        module="archdsl.nn.layers.attn:Attention",
    )
)
