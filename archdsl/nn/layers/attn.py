"""`attn`: causal self-attention with RoPE, grouped-query heads, an optional sliding window and
optional QK-norm.

Weights are named and shaped as Hugging Face ``LlamaAttention`` (``q_proj``, ``k_proj``,
``v_proj``, ``o_proj``, no biases) and, with ``qk_norm``, Qwen3's ``q_norm``/``k_norm``, so a
state dict copies across. A sliding window follows Mistral / HF ``sliding_window``: the query at
position i sees keys i-window+1 .. i.

    >>> from archdsl.spec.model import ModelSettings
    >>> layer = Attention(AttnParams(heads=4, kv_heads=2, window=16), ModelSettings(d_model=64))
    >>> layer(torch.randn(2, 40, 64)).shape
    torch.Size([2, 40, 64])
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from archdsl.cost.value import Cost, CostContext
from archdsl.errors import GenerationError
from archdsl.layers.base import InvalidParams, LayerParams, divisors
from archdsl.layers.registry import register_layer
from archdsl.layers.rope import Rotary, apply_rope
from archdsl.layers.state import check_batch
from archdsl.nn.norm import RMSNorm
from archdsl.spec.model import ModelSettings

# Smallest query block of the blocked sliding-window path: tiny windows still run SDPA on blocks
# big enough to keep the kernels busy (a block attends to at most 2 * block keys).
MIN_BLOCK = 64
# FlexAttention (compiled) for sliding windows on CUDA; ARCHDSL_FLEX_ATTENTION=0 turns it off.
USE_FLEX = os.environ.get("ARCHDSL_FLEX_ATTENTION", "1") != "0"


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


@dataclass
class AttnState:
    """KV cache for generation: keys (after RoPE) and values, one slot per cached position."""

    k: torch.Tensor  # (B, kv_heads, slots, head_dim)
    v: torch.Tensor  # (B, kv_heads, slots, head_dim)
    pos: int = 0  # absolute position of the next token
    limit: int | None = None  # positions the cache can hold (None: a window's ring buffer never runs out)


def mean_keys(seq_len: int, window: int | None) -> float:
    """Average number of keys a query sees over positions 0..T-1 of a causal sequence.

    Full causal: (1/T) sum_i (i+1) = (T+1)/2. Window w < T: (1/T) sum_i min(i+1, w)
    = (w(w+1)/2 + (T-w) w) / T (the first w queries see i+1 keys, the rest see w)."""
    if window is None or window >= seq_len:
        return (seq_len + 1) / 2
    return (window * (window + 1) / 2 + (seq_len - window) * window) / seq_len


@register_layer
class Attention(nn.Module):
    name = "attn"
    description = "causal attention: RoPE, grouped-query heads, optional sliding window and QK-norm (HF Llama)"
    Params = AttnParams

    def __init__(self, params: AttnParams, model: ModelSettings):
        super().__init__()
        p = params.resolve(model)
        self.params = p
        self.heads, self.kv_heads, self.head_dim, self.window = p.heads, p.kv_heads, p.head_dim, p.window
        d = model.d_model
        self.q_proj = nn.Linear(d, p.heads * p.head_dim, bias=False)
        self.k_proj = nn.Linear(d, p.kv_heads * p.head_dim, bias=False)
        self.v_proj = nn.Linear(d, p.kv_heads * p.head_dim, bias=False)
        self.o_proj = nn.Linear(p.heads * p.head_dim, d, bias=False)
        if p.qk_norm:
            self.q_norm = RMSNorm(p.head_dim, eps=model.norm_eps)
            self.k_norm = RMSNorm(p.head_dim, eps=model.norm_eps)
        self.rotary = Rotary(p.head_dim, p.rope_theta)

    def _qkv(self, x: torch.Tensor, positions: torch.Tensor):
        """x (B, T, D), positions (T,) -> q (B, T, H, hd), k and v (B, T, KV, hd), RoPE applied."""
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.heads, self.head_dim)
        k = self.k_proj(x).view(B, T, self.kv_heads, self.head_dim)
        v = self.v_proj(x).view(B, T, self.kv_heads, self.head_dim)
        if self.params.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        cos, sin = self.rotary.cos_sin(positions, q.dtype)
        cos, sin = cos[:, None], sin[:, None]  # (T, 1, hd): broadcast over heads
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

    def forward(self, x: torch.Tensor, *, reference: bool = False) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = self._qkv(x, torch.arange(T, device=x.device))
        o = attend_reference(q, k, v, self.window) if reference else attend(q, k, v, self.window)  # (B, T, H, hd)
        return self.o_proj(o.reshape(B, T, self.heads * self.head_dim))

    def init_state(self, batch: int, *, max_len: int, device, dtype) -> AttnState:
        # A window no longer than max_len is a ring buffer that never runs out; otherwise the
        # cache holds max_len positions and generation stops there.
        ring = self.window is not None and self.window <= max_len
        slots = self.window if ring else max_len
        shape = (batch, self.kv_heads, slots, self.head_dim)
        return AttnState(
            k=torch.zeros(shape, device=device, dtype=dtype),
            v=torch.zeros(shape, device=device, dtype=dtype),
            pos=0,
            limit=None if ring else max_len,
        )

    def _check(self, what: str, B: int, T: int, state: AttnState) -> None:
        """GenerationError when ``what`` ("step" or "prefill") of B sequences and T tokens does
        not fit the state."""
        check_batch("attn", what, B, state.k.shape[0])
        if state.limit is not None and state.pos + T > state.limit:
            last = state.pos + T - 1
            raise GenerationError(
                f"attn: position {last} is past max_len={state.limit} that the KV cache was allocated for; "
                "call init_state with a larger max_len"
            )

    def prefill(self, x: torch.Tensor, state: AttnState) -> tuple[torch.Tensor, AttnState]:
        """A whole prompt x (B, T, D) through the fast path, appended to the KV cache."""
        B, T, _ = x.shape
        self._check("prefill", B, T, state)
        pos, slots = state.pos, state.k.shape[2]
        q, k, v = self._qkv(x, torch.arange(pos, pos + T, device=x.device))  # (B, T, ·, hd)
        if pos == 0:
            o = attend(q, k, v, self.window)  # (B, T, H, hd), as forward
        else:
            # Earlier tokens are cached: read them (in position order) before the writes below
            # can overwrite ring slots, and attend to cache + prompt under an offset causal mask.
            n = min(pos, slots)
            order = torch.arange(pos - n, pos, device=x.device) % slots
            k_all = torch.cat((state.k[:, :, order].transpose(1, 2).to(k.dtype), k), dim=1)  # (B, n + T, KV, hd)
            v_all = torch.cat((state.v[:, :, order].transpose(1, 2).to(v.dtype), v), dim=1)
            o = attend_with_past(q, k_all, v_all, n, self.window)
        # Keep the last min(T, slots) keys, each in the slot that step would have put it in.
        m = min(T, slots)
        where = torch.arange(pos + T - m, pos + T, device=x.device) % slots
        state.k[:, :, where] = k[:, T - m :].transpose(1, 2).to(state.k.dtype)
        state.v[:, :, where] = v[:, T - m :].transpose(1, 2).to(state.v.dtype)
        state.pos += T
        return self.o_proj(o.reshape(B, T, self.heads * self.head_dim)), state

    def step(self, x: torch.Tensor, state: AttnState) -> tuple[torch.Tensor, AttnState]:
        B = x.shape[0]
        self._check("step", B, 1, state)
        slots = state.k.shape[2]
        q, k, v = self._qkv(x[:, None], torch.arange(state.pos, state.pos + 1, device=x.device))  # (B, 1, h, hd)
        # RoPE is applied at the absolute position before caching, so the order of the slots in
        # the ring buffer does not matter to attention.
        slot = state.pos % slots
        state.k[:, :, slot] = k[:, 0]
        state.v[:, :, slot] = v[:, 0]
        n = min(state.pos + 1, slots)
        o = F.scaled_dot_product_attention(
            q.transpose(1, 2).to(state.k.dtype),  # (B, H, 1, hd)
            state.k[:, :, :n],
            state.v[:, :, :n],
            enable_gqa=self.heads != self.kv_heads,
        )
        state.pos += 1
        return self.o_proj(o.reshape(B, self.heads * self.head_dim).to(x.dtype)), state

    @classmethod
    def cost(cls, params: AttnParams, model: ModelSettings, ctx: CostContext) -> Cost:
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


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int | None) -> torch.Tensor:
    """Causal attention through SDPA. q (B, T, H, hd), k and v (B, T, KV, hd) -> (B, T, H, hd)."""
    T = q.shape[1]
    gqa = q.shape[2] != k.shape[2]
    if window is None or window >= T:  # a window as long as the sequence is full causal attention
        o = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True, enable_gqa=gqa
        )  # (B, H, T, hd)
        return o.transpose(1, 2)
    if _flex_usable(q):
        try:
            o = flex_sliding(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), window, compiled=True)
            return o.transpose(1, 2)
        except Exception as exc:  # an optional accelerator: fall back to SDPA rather than fail
            _disable_flex(exc)
    return sliding_blocked(q, k, v, window, max(window, MIN_BLOCK))


def attend_with_past(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, past: int, window: int | None):
    """Causal attention of T new queries over ``past`` cached keys followed by their own T keys
    (a prefill after earlier tokens). q (B, T, H, hd), k and v (B, past + T, KV, hd) -> (B, T, H, hd).
    One masked SDPA over all the keys: simple, and only taken when the cache is not empty."""
    T, G = q.shape[1], q.shape[2] // k.shape[2]
    mask = _band(T, k.shape[1], past, window if window is not None else k.shape[1], q.device)
    o = F.scaled_dot_product_attention(
        q.transpose(1, 2), _expand_kv(k, G).transpose(1, 2), _expand_kv(v, G).transpose(1, 2), attn_mask=mask
    )  # (B, H, T, hd)
    return o.transpose(1, 2)


def _band(n_q: int, n_k: int, offset: int, window: int, device) -> torch.Tensor:
    """Boolean (n_q, n_k) mask: query i (absolute offset + i) sees key j when 0 <= offset+i-j < window."""
    dist = offset + torch.arange(n_q, device=device)[:, None] - torch.arange(n_k, device=device)[None, :]
    return (dist >= 0) & (dist < window)


def _expand_kv(t: torch.Tensor, groups: int) -> torch.Tensor:
    """(..., KV, hd) -> (..., KV*groups, hd), each kv head repeated for its group of query heads
    (HF ``repeat_kv``): masked SDPA kernels on CUDA do not take grouped-query heads."""
    if groups == 1:
        return t
    *lead, kv, hd = t.shape
    return t.unsqueeze(-2).expand(*lead, kv, groups, hd).reshape(*lead, kv * groups, hd)


def sliding_blocked(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int, block: int) -> torch.Tensor:
    """Sliding-window attention in query blocks of ``block >= window`` positions: block b only
    needs the keys of blocks b-1 and b, so memory grows with T * 2 * block, not T^2.
    q (B, T, H, hd), k and v (B, T, KV, hd) -> (B, T, H, hd)."""
    B, T, H, hd = q.shape
    G = H // k.shape[2]
    # The first block has no previous block: its own keys under a banded causal mask.
    n0 = min(block, T)
    q0 = q[:, :n0].transpose(1, 2)  # (B, H, n0, hd)
    if window >= n0:
        o0 = F.scaled_dot_product_attention(
            q0, k[:, :n0].transpose(1, 2), v[:, :n0].transpose(1, 2), is_causal=True, enable_gqa=G > 1
        )
    else:
        o0 = F.scaled_dot_product_attention(
            q0,
            _expand_kv(k[:, :n0], G).transpose(1, 2),
            _expand_kv(v[:, :n0], G).transpose(1, 2),
            attn_mask=_band(n0, n0, 0, window, q.device),
        )
    o0 = o0.transpose(1, 2)  # (B, n0, H, hd)
    if T <= block:
        return o0
    nb = -(-T // block)  # blocks in all, the last one padded
    pad = nb * block - T
    rest = nb - 1
    # Queries of blocks 1..nb-1, folded into the batch: (B*rest, H, block, hd).
    qb = F.pad(q[:, block:], (0, 0, 0, 0, 0, pad)).reshape(B * rest, block, H, hd).transpose(1, 2)

    def pairs(t: torch.Tensor) -> torch.Tensor:
        # Keys of blocks b-1 and b side by side for b = 1..nb-1: (B*rest, H, 2*block, hd), one copy.
        t = F.pad(t, (0, 0, 0, 0, 0, pad)).view(B, nb, block, -1, 1, hd)
        t = t.expand(B, nb, block, t.shape[3], G, hd)
        both = torch.cat((t[:, :-1], t[:, 1:]), dim=2)  # (B, rest, 2*block, KV, G, hd)
        return both.view(B * rest, 2 * block, H, hd).transpose(1, 2)

    # Query i of block b is at b*block + i, key j of its pair at (b-1)*block + j.
    mask = _band(block, 2 * block, block, window, q.device)
    ob = F.scaled_dot_product_attention(qb, pairs(k), pairs(v), attn_mask=mask)  # (B*rest, H, block, hd)
    ob = ob.transpose(1, 2).reshape(B, rest * block, H, hd)[:, : T - block]
    return torch.cat((o0, ob), dim=1)


def attend_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int | None) -> torch.Tensor:
    """Plain twin of :func:`attend`: one query at a time, explicit softmax over the keys it may
    see. q (B, T, H, hd), k and v (B, T, KV, hd) -> (B, T, H, hd)."""
    B, T, H, hd = q.shape
    G = H // k.shape[2]
    k = k.repeat_interleave(G, dim=2)  # query head h reads kv head h // G, as HF repeat_kv
    v = v.repeat_interleave(G, dim=2)
    out = []
    for i in range(T):
        lo = 0 if window is None else max(0, i - window + 1)
        keys = k[:, lo : i + 1].permute(0, 2, 3, 1)  # (B, H, hd, n)
        values = v[:, lo : i + 1].transpose(1, 2)  # (B, H, n, hd)
        scores = torch.matmul(q[:, i, :, None, :], keys) * hd**-0.5  # (B, H, 1, n)
        # softmax in at least float32, as HF's eager attention does for half precision
        weights = torch.softmax(scores, dim=-1, dtype=torch.promote_types(scores.dtype, torch.float32)).to(q.dtype)
        out.append(torch.matmul(weights, values)[:, :, 0])  # (B, H, hd)
    return torch.stack(out, dim=1)


# ---- FlexAttention for sliding windows (CUDA only, optional) -------------------------------------

_flex_compiled = None


def _flex_usable(q: torch.Tensor) -> bool:
    hd = q.shape[-1]
    return (
        USE_FLEX
        and q.is_cuda
        and not torch.compiler.is_compiling()  # inside a user's torch.compile the blocked path traces cleanly
        and q.shape[1] >= 128
        and hd >= 16
        and hd & (hd - 1) == 0
    )


def _disable_flex(exc: Exception) -> None:
    global USE_FLEX
    USE_FLEX = False
    warnings.warn(f"archdsl attn: FlexAttention failed ({exc!r}); using blocked SDPA for sliding windows", stacklevel=3)


@lru_cache(maxsize=32)
def _window_block_mask(T: int, window: int, device: str):
    from torch.nn.attention.flex_attention import create_block_mask

    def band(b, h, q_idx, kv_idx):
        return (q_idx >= kv_idx) & (q_idx - kv_idx < window)

    # Build the block mask tile by tile on the device (_compile) rather than as a T x T tensor.
    return create_block_mask(band, None, None, T, T, device=device, _compile=device != "cpu")


def flex_sliding(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int, *, compiled: bool) -> torch.Tensor:
    """Sliding-window attention with FlexAttention, skipping blocks outside the band.
    q (B, H, T, hd), k and v (B, KV, T, hd) -> (B, H, T, hd)."""
    global _flex_compiled
    from torch.nn.attention.flex_attention import flex_attention

    fn = flex_attention
    if compiled:
        if _flex_compiled is None:
            _flex_compiled = torch.compile(flex_attention, dynamic=None)
        fn = _flex_compiled
    mask = _window_block_mask(q.shape[2], window, str(q.device))
    return fn(q, k, v, block_mask=mask, enable_gqa=q.shape[1] != k.shape[1])
