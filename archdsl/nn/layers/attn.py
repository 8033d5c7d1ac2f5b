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
from torch import nn

from archdsl.errors import GenerationError
from archdsl.layers.builtin.attn import AttnParams
from archdsl.nn.layers.rope import Rotary, apply_rope
from archdsl.nn.layers.state import check_batch
from archdsl.nn.linear import Linear
from archdsl.nn.norm import RMSNorm
from archdsl.spec.model import ModelSettings

# Smallest query block of the blocked sliding-window path: tiny windows still run SDPA on blocks
# big enough to keep the kernels busy (a block attends to at most 2 * block keys).
MIN_BLOCK = 64
# FlexAttention (compiled) for sliding windows on CUDA; ARCHDSL_FLEX_ATTENTION=0 turns it off.
USE_FLEX = os.environ.get("ARCHDSL_FLEX_ATTENTION", "1") != "0"


@dataclass
class AttnState:
    """KV cache for generation: keys (after RoPE) and values, one slot per cached position."""

    k: torch.Tensor  # (B, kv_heads, slots, head_dim)
    v: torch.Tensor  # (B, kv_heads, slots, head_dim)
    pos: int = 0  # absolute position of the next token
    limit: int | None = None  # positions the cache can hold (None: a window's ring buffer never runs out)


class Attention(nn.Module):
    def __init__(self, params: AttnParams, model: ModelSettings):
        super().__init__()
        p = params.resolve(model)
        self.params = p
        self.heads, self.kv_heads, self.head_dim, self.window = p.heads, p.kv_heads, p.head_dim, p.window
        d = model.d_model
        self.q_proj = Linear(d, p.heads * p.head_dim, bias=False)
        self.k_proj = Linear(d, p.kv_heads * p.head_dim, bias=False)
        self.v_proj = Linear(d, p.kv_heads * p.head_dim, bias=False)
        self.o_proj = Linear(p.heads * p.head_dim, d, bias=False)
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
