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

Step 1 factors the mask, ``exp(g_l - g_s) = exp(g_l - m) exp(m - g_s)`` with m the middle of the
chunk's g, so that it becomes a scaling of X's rows before, and of Y's rows after, one product
with the causal ``C B^T`` that all heads of a group share (no (L x L) work per head); this holds
while every ``|g - m|`` stays within FACTOR_LIMIT, so that both factors are normal float32
numbers, on a CPU (an accelerator would stall to read the range back). Otherwise (strong decays,
or on an accelerator) the masks are formed per head as before, every exponent a difference
``g_l - g_s <= 0`` (or a cumulative sum <= 0) taken before ``exp``, in float32, so nothing
overflows however strong the decay. The big products are batched matmuls;
the largest tensors are (B, chunks, H, L, L), so memory is linear in the sequence length.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from archdsl.layers.builtin.ssm import MAX_MATRIX_CHUNKS, chunk_length  # with the cost formula that depends on them

# Log decays are floored at -60 before exp: exp(-60) = 9e-27 is far below float32 resolution next
# to any term that is not decayed away, while the exact values down to exp(-87) and beyond are
# denormal numbers, on which CPUs run exp and products tens of times slower.
FLOOR = -60.0

# The within-chunk decays factor into exp(g_l - mid) exp(mid - g_s) when every |g - mid| in a chunk
# is at most this (exp(80) = 5.5e34 and exp(-80) = 1.8e-35 are normal float32 numbers); beyond, the
# (L x L) masks are formed per head.
FACTOR_LIMIT = 80.0


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
    if n == 0:
        return stacked
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


def ssd_chunked(x, dt, A, B, C, *, chunk: int = 256, initial_state=None, final_state: bool = True):
    """The SSD scan over a sequence, chunk by chunk (of at most ``chunk`` tokens, see
    :func:`chunk_length`), with matrix products.

    x (b, T, H, P); dt (b, T, H), already positive; A (H,), negative; B, C (b, T, G, N);
    initial_state (b, H, P, N) or None (zeros). Returns y (b, T, H, P) in x's dtype (without
    the D skip) and the final state (b, H, P, N) in float32, or None with ``final_state=False``.
    Products run in x's dtype (bf16 on GPU); the decays, cumulative sums and the chunk-to-chunk
    pass in float32.

    Only the states that are read are formed: without an initial state the first chunk starts
    from zeros (nothing to read), and without ``final_state`` the last chunk's end state is not
    needed; a training forward over a single chunk is step 1 alone.
    """
    b, T, H, P = x.shape
    G, N = B.shape[-2:]
    hg = H // G
    L = chunk_length(T, chunk, H, P, G, N)
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
    mid = g[..., L // 2 : L // 2 + 1]  # (b, n, H, 1)
    # On the meta device, which has no values, the factored form (the one the cost counts); on an
    # accelerator the per-head masks, as reading the range back would stall its queue each call.
    if g.device.type == "meta" or (g.device.type == "cpu" and float((g - mid).detach().abs().amax()) <= FACTOR_LIMIT):
        # exp(g_l - g_s) = exp(g_l - mid) exp(mid - g_s): the decay mask factors into a scaling of
        # rows and one of columns, so all heads of a group share one (L x L) matrix and one product
        e = torch.exp(g - mid).transpose(2, 3)  # (b, n, L, H)
        z = (xdt * torch.exp(mid - g).transpose(2, 3)[..., None].to(dtype)).view(b, n, L, G, hg * P)
        w = torch.einsum("bcgls,bcsgq->bclgq", CB.tril(), z).reshape(b, n, L, H, P)
        y = w * e[..., None].to(dtype)
    else:
        y = _IntraChunk.apply(CB, g, xdt.transpose(2, 3).contiguous(), hg).transpose(2, 3)  # (b, n, L, H, P)

    first = 0 if initial_state is not None else 1  # chunks first .. n-1 read the state entering them
    ends = n if final_state else n - 1  # chunks 0 .. ends-1 pass their end state on
    final = None
    if first < n or final_state:
        # 2. each chunk's state at its end: B^T (X * exp(g_last - g)); heads of a group share B,
        # so they ride along in the columns of one product per group
        gs = g[:, :ends]
        to_end = _decay(gs[..., -1:] - gs).transpose(2, 3)  # (b, ends, L, H)
        x_end = (xdt[:, :ends] * to_end[..., None].to(dtype)).view(b, ends, L, G, hg * P)
        states = torch.einsum("bclgn,bclgq->bcgnq", B[:, :ends], x_end)  # (b, ends, G, N, hg * P)

        # 3. states entering chunks first .. n-1, and the final state (float32)
        states = states.float().view(b, ends, G, N, hg, P).permute(0, 1, 2, 4, 5, 3).reshape(b, ends, H, P * N)
        if initial_state is None:  # the first chunk's end state is the state entering the second
            passed = _pass_states(states[:, 1:], g[:, 1:ends, :, -1], states[:, 0])
        else:
            passed = _pass_states(states, g[:, :ends, :, -1], initial_state.float().reshape(b, H, P * N))
        if final_state:
            final = passed[:, -1].view(b, H, P, N)
        m = n - first
        if m:
            # 4. each position reads the state its chunk started from: (C S) * exp(g)
            start = passed[:, :m].view(b, m, G, hg, P, N).permute(0, 1, 2, 5, 3, 4).reshape(b, m, G, N, hg * P)
            y_in = torch.einsum("bclgn,bcgnq->bclgq", C[:, first:], start.to(dtype)).reshape(b, m, L, H, P)
            y_in = y_in * _decay(g[:, first:]).transpose(2, 3)[..., None].to(dtype)
            y[:, first:] += y_in  # in place: slicing and concatenating cost a copy and, in backward, zero fills

    return y.reshape(b, n * L, H, P)[:, :T], final


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
