"""The SSD's chunked form with per-head (L x L) decay masks: the form for strong decays and for
accelerators (see :mod:`archdsl.nn.layers.ssd`, which picks the form and documents the algorithm).

Every exponent is a difference ``g_l - g_s <= 0`` (or a cumulative sum <= 0) taken before
``exp``, in float32, so nothing overflows however strong the decay. The largest tensors are
(B, chunks, H, L, L), so memory is linear in the sequence length.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from archdsl.layers.builtin.ssm import MAX_MATRIX_CHUNKS

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


def pass_end_states(states: torch.Tensor, last: torch.Tensor, initial_state: torch.Tensor | None) -> torch.Tensor:
    """:func:`_pass_states` from the chunks' end states: states (b, ends, H, Q) and their chunks'
    total log decays ``last`` (b, ends, H), from ``initial_state`` (b, H, P, N) or, without one,
    from zeros, where the first chunk's end state is the state entering the second (so the
    entries are the states entering chunks 1 .. ends, not 0 .. ends). Both forms of the SSD use it."""
    if initial_state is None:
        return _pass_states(states[:, 1:], last[:, 1:], states[:, 0])
    b, _, H, Q = states.shape
    return _pass_states(states, last, initial_state.float().reshape(b, H, Q))


def ssd_masked(xdt, g, B, C, *, initial_state=None, final_state: bool = True):
    """The chunked SSD with the decay masks formed per head.

    xdt (b, n, L, H, P): x dt over whole chunks; g (b, n, H, L): cumulative log decays within
    each chunk (float32); B, C (b, n, L, G, N). Returns y (b, n, L, H, P) and the final state
    (b, H, P, N) in float32, or None without ``final_state``.
    """
    b, n, L, H, P = xdt.shape
    G, N = B.shape[-2:]
    hg = H // G
    dtype = xdt.dtype

    # 1. within chunks: (C B^T * decay) X, per head
    CB = torch.einsum("bclgn,bcsgn->bcgls", C, B)  # (b, n, G, L, L)
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
        passed = pass_end_states(states, g[:, :ends, :, -1], initial_state)
        if final_state:
            final = passed[:, -1].view(b, H, P, N)
        m = n - first
        if m:
            # 4. each position reads the state its chunk started from: (C S) * exp(g)
            start = passed[:, :m].view(b, m, G, hg, P, N).permute(0, 1, 2, 5, 3, 4).reshape(b, m, G, N, hg * P)
            y_in = torch.einsum("bclgn,bcgnq->bclgq", C[:, first:], start.to(dtype)).reshape(b, m, L, H, P)
            y_in = y_in * _decay(g[:, first:]).transpose(2, 3)[..., None].to(dtype)
            if torch.compiler.is_compiling():
                # torch.compile refuses an in-place write into a view of a custom Function's output
                # (y is _IntraChunk's); out of place, which the compiler fuses anyway
                y = torch.cat([y[:, :first], y[:, first:] + y_in], 1)
            else:
                y[:, first:] += y_in  # in place: slicing and concatenating cost a copy and, in backward, zero fills
    return y, final
