"""Mamba-2's state-space duality (SSD) as plain functions: a chunked fast path and a loop twin.

Per head h, with a scalar decay ``a_t = exp(dt_t * A_h)`` (A_h < 0), the recurrence is::

    h_t = a_t h_{t-1} + dt_t x_t B_t^T        y_t = h_t C_t          (h_t: head_dim x state)

B and C are shared by the ``heads // groups`` heads of a group (head h reads group h // (H / G)).

The chunked algorithm (Dao & Gu 2024, "Transformers are SSMs", section 6 and the minimal SSD
listing) splits the sequence into chunks of ``L`` tokens and computes, with ``g`` the cumulative
sum of ``dt * A`` from each chunk's start:

1. within a chunk, the quadratic ("attention-like") form ``Y = (C B^T * M) X`` with the decay
   mask ``M[l, s] = exp(g_l - g_s)`` for s <= l, else 0;
2. each chunk's contribution to the state at its end, ``B^T (X * exp(g_last - g))``;
3. the states at chunk starts, from 2. and the total decay of each chunk: a (chunks x chunks)
   lower-triangular decay matrix times the stacked states (no Python loop over chunks);
4. each chunk's reading of the state it starts from, ``(C S) * exp(g)``.

Every exponent is a difference ``g_l - g_s <= 0`` (or a cumulative sum <= 0) taken before ``exp``,
in float32, so nothing overflows however strong the decay. The big products are batched matmuls;
the largest tensors are (B, chunks, H, L, L), so memory is linear in the sequence length.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from archdsl.layers.builtin.ssm import MAX_MATRIX_CHUNKS  # with the cost formula that depends on it

# Log decays are floored at -60 before exp: exp(-60) = 9e-27 is far below float32 resolution next
# to any term that is not decayed away, while the exact values down to exp(-87) and beyond are
# denormal numbers, on which CPUs run exp and products tens of times slower.
FLOOR = -60.0


def _decay(x: torch.Tensor) -> torch.Tensor:
    """``exp(x)`` for a log decay x <= 0, floored at ``exp(FLOOR)`` (see FLOOR)."""
    return x.clamp(min=FLOOR).exp()


def _causal_decay(g: torch.Tensor) -> torch.Tensor:
    """``exp(g_l - g_s)`` for s <= l and 0 above the diagonal; g (..., L) -> (..., L, L)."""
    L = g.shape[-1]
    causal = torch.ones(L, L, dtype=g.dtype, device=g.device).tril()
    # clamp before exp: above the diagonal the difference is positive and could overflow; the
    # mask multiplies afterwards (exp of -inf is several times slower than of a finite number)
    seg = g[..., :, None] - g[..., None, :]
    if torch.is_grad_enabled() and g.requires_grad:
        return seg.clamp(FLOOR, 0.0).exp() * causal
    return seg.clamp_(FLOOR, 0.0).exp_().mul_(causal)  # the big one, in place


class _IntraChunk(torch.autograd.Function):
    """``Y = scores X`` with ``scores[h] = CB[group of h] * exp(g_l - g_s)`` (causal), per chunk
    and head: step 1 of the algorithm, with a hand-written backward.

    The (L x L) tensors per head are the largest of the algorithm: H L elements per token, more
    than the layer's activations. Autograd through the subtraction, mask, exp, product and matmul
    would keep two of them and walk over them about twelve times; this keeps none (the decay and
    scores are recomputed in backward from g and C B^T) and works in place. Backward: with
    ``t = (dY X^T) * decay``, ``dCB = sum over the heads of a group of t``, ``dX = scores^T dY``
    and, as ``d decay[l, s] / d g_l = decay = -d decay[l, s] / d g_s``,
    ``dg = rowsum(t CB) - colsum(t CB)``.
    """

    @staticmethod
    def _scores(CB, g, hg):
        b, n, G, L, _ = CB.shape
        decay = _causal_decay(g)  # (b, n, H, L, L), float32
        scores = decay.view(b, n, G, hg, L, L).mul_(CB.unsqueeze(3))
        return decay, scores.view(b, n, G * hg, L, L)

    @staticmethod
    def forward(ctx, CB, g, X, hg: int):
        # CB (b, n, G, L, L); g (b, n, H, L) float32; X (b, n, H, L, P)
        _, scores = _IntraChunk._scores(CB, g, hg)
        ctx.save_for_backward(CB, g, X)
        ctx.hg = hg
        return scores.to(X.dtype) @ X  # (b, n, H, L, P)

    @staticmethod
    def backward(ctx, dY):
        CB, g, X = ctx.saved_tensors
        b, n, G, L, _ = CB.shape
        dCB = dg = dX = None
        if ctx.needs_input_grad[2]:
            decay = _causal_decay(g)
            scores = (decay.view(b, n, G, ctx.hg, L, L) * CB.unsqueeze(3)).view(b, n, G * ctx.hg, L, L)
            dX = scores.to(X.dtype).transpose(-1, -2) @ dY
            del scores
        else:
            decay = _causal_decay(g)
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            t = decay.view(b, n, G, ctx.hg, L, L)
            t.mul_((dY @ X.transpose(-1, -2)).view(b, n, G, ctx.hg, L, L))  # dscores * decay
            if ctx.needs_input_grad[0]:
                dCB = t.sum(3).to(CB.dtype)
            if ctx.needs_input_grad[1]:
                t.mul_(CB.unsqueeze(3))
                dg = (t.sum(-1) - t.sum(-2)).view(b, n, G * ctx.hg, L)
        return dCB, dg, dX, None


def _pass_states(chunk_states: torch.Tensor, chunk_decay: torch.Tensor, initial: torch.Tensor) -> torch.Tensor:
    """States at the start of every chunk, and after the last one.

    chunk_states (B, n, H, Q): what each chunk adds to the state by its end (Q = flattened state);
    chunk_decay (B, n, H): the log of each chunk's total decay (<= 0); initial (B, H, Q).
    Returns (B, n + 1, H, Q): entry c is the state entering chunk c, entry n the final state.
    """
    n = chunk_states.shape[1]
    stacked = torch.cat([initial[:, None], chunk_states], 1)  # (B, n + 1, H, Q)
    if n <= MAX_MATRIX_CHUNKS:
        # entry c sums stacked[z] for z <= c, decayed through chunks z .. c-1
        cum = F.pad(chunk_decay.cumsum(1), (0, 0, 1, 0)).transpose(1, 2)  # (B, H, n + 1)
        weights = _causal_decay(cum)  # (B, H, n + 1, n + 1)
        return (weights @ stacked.transpose(1, 2)).transpose(1, 2)  # (B, n + 1, H, Q)
    decay = _decay(chunk_decay)[..., None]  # (B, n, H, 1)
    states = [stacked[:, 0]]
    for c in range(n):
        states.append(states[-1] * decay[:, c] + stacked[:, c + 1])
    return torch.stack(states, 1)


def ssd_chunked(x, dt, A, B, C, *, chunk: int = 256, initial_state=None):
    """The SSD scan over a sequence, chunk by chunk, with matrix products.

    x (b, T, H, P); dt (b, T, H), already positive; A (H,), negative; B, C (b, T, G, N);
    initial_state (b, H, P, N) or None. Returns y (b, T, H, P) in x's dtype (without the D skip)
    and the final state (b, H, P, N) in float32. Products run in x's dtype (bf16 on GPU); the
    decays, cumulative sums and the chunk-to-chunk pass in float32.
    """
    b, T, H, P = x.shape
    G, N = B.shape[-2:]
    hg = H // G
    L = min(chunk, T)
    pad = (-T) % L
    n = (T + pad) // L
    dtype = x.dtype

    g = (dt.float() * A.float()).transpose(1, 2)  # (b, H, T), log decay per step, <= 0
    xdt = (x.float() * dt[..., None].float()).to(dtype)  # (b, T, H, P); no-ops in float32
    if pad:
        # padded steps have dt = 0: no decay, no input, no output that is kept
        g = F.pad(g, (0, pad))
        xdt, B, C = (F.pad(t, (0, 0, 0, 0, 0, pad)) for t in (xdt, B, C))
    g = g.reshape(b, H, n, L).transpose(1, 2).cumsum(-1)  # (b, n, H, L), cumulative within a chunk
    xdt = xdt.reshape(b, n, L, H, P)
    B = B.reshape(b, n, L, G, N).to(dtype)
    C = C.reshape(b, n, L, G, N).to(dtype)

    # 1. within chunks: (C B^T * decay) X, per head
    CB = torch.einsum("bclgn,bcsgn->bcgls", C, B)  # (b, n, G, L, L)
    y = _IntraChunk.apply(CB, g, xdt.transpose(2, 3).contiguous(), hg)  # (b, n, H, L, P)

    # 2. each chunk's state at its end: B^T (X * exp(g_last - g)); heads of a group share B,
    # so they ride along in the columns of one product per group
    to_end = _decay(g[..., -1:] - g).transpose(2, 3)  # (b, n, L, H)
    x_end = (xdt * to_end[..., None].to(dtype)).view(b, n, L, G, hg * P)
    states = torch.einsum("bclgn,bclgq->bcgnq", B, x_end)  # (b, n, G, N, hg * P)

    # 3. states entering each chunk (float32)
    states = states.float().view(b, n, G, N, hg, P).permute(0, 1, 2, 4, 5, 3).reshape(b, n, H, P * N)
    if initial_state is None:
        initial = states.new_zeros(b, H, P * N)
    else:
        initial = initial_state.float().reshape(b, H, P * N)
    passed = _pass_states(states, g[..., -1], initial)  # (b, n + 1, H, P * N)
    final = passed[:, n].view(b, H, P, N)
    start = passed[:, :n].view(b, n, G, hg, P, N).permute(0, 1, 2, 5, 3, 4).reshape(b, n, G, N, hg * P)

    # 4. each position reads the state its chunk started from: (C S) * exp(g)
    y_in = torch.einsum("bclgn,bcgnq->bclgq", C, start.to(dtype)).reshape(b, n, L, H, P)
    y_in = y_in * _decay(g).transpose(2, 3)[..., None].to(dtype)

    y = (y.transpose(2, 3) + y_in).reshape(b, n * L, H, P)[:, :T]
    return y, final


def ssd_reference(x, dt, A, B, C, *, initial_state=None):
    """The same recurrence one token at a time (float32): the plain twin of :func:`ssd_chunked`."""
    b, T, H, P = x.shape
    G, N = B.shape[-2:]
    Bh = B.float().repeat_interleave(H // G, dim=2)  # (b, T, H, N)
    Ch = C.float().repeat_interleave(H // G, dim=2)
    x, dt = x.float(), dt.float()
    h = x.new_zeros(b, H, P, N) if initial_state is None else initial_state.float()
    ys = []
    for t in range(T):
        a = torch.exp(dt[:, t] * A.float())  # (b, H)
        h = h * a[..., None, None] + (dt[:, t, :, None] * x[:, t])[..., None] * Bh[:, t, :, None, :]
        ys.append(torch.einsum("bhpn,bhn->bhp", h, Ch[:, t]))
    return torch.stack(ys, 1), h
