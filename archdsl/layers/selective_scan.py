"""Mamba-1's selective scan as plain functions: a chunked parallel scan and a loop twin.

Per channel e and state index n, with ``dt`` (b, T, E) positive and ``A`` (E, N) negative::

    h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t        y_t = sum_n C_t[n] h_t[:, n]

Unlike Mamba-2 the decay differs per (e, n), so there is no matrix form; the work is elementwise
over (T, E, N). :func:`selective_scan_chunked` runs it without a Python loop over time:

* a first-order linear recurrence ``h_t = a_t h_{t-1} + u_t`` is an associative scan over pairs
  ``(a, u)``, combined as ``(a2, u2) o (a1, u1) = (a2 a1, a2 u1 + u2)``; within sub-chunks of
  ``SUB`` tokens it runs as a Hillis-Steele (doubling) scan, log2(SUB) steps, all sub-chunks at
  once; the sub-chunks' end states follow the same recurrence (another doubling scan), and each
  sub-chunk then adds ``(product of its a up to t) * (state entering it)``;
* a Python loop runs over chunks of ``chunk`` tokens (64 by default: 32 iterations at 2,048
  tokens), passing the state from one to the next, so that the (chunk, E, N) working tensors
  stay in cache and (T, E, N) is never allocated;
* backward loops over the chunks from the end, recomputes each chunk's states from the saved
  state entering it, and runs the adjoint recurrence ``r_t = dh_t + a_{t+1} r_{t+1}`` with the
  same scan reversed. Memory: the inputs and one (E, N) state per chunk, linear in T.

Decays are products of numbers in (0, 1], never exponentials of differences, so nothing
overflows; products below 1e-30 are set to zero (they are far below float32 resolution next to
any term that is not decayed away, and denormal numbers would make CPUs tens of times slower).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

TINY = 1e-30  # decay products below this are zero (see the module docstring)
FLOOR = -60.0  # log decays are floored here before exp (exp(-60) = 9e-27 < TINY)
SUB = 16  # tokens per sub-chunk of the doubling scan inside a chunk


def _doubling_scan_(a: torch.Tensor, u: torch.Tensor, dim: int, reverse: bool = False) -> None:
    """In place along ``dim``: u becomes the scan from the start (or the end) of that dim with a
    zero state outside it, a the cumulative product of a from that side."""
    length = a.shape[dim]
    k = 1
    while k < length:
        head, tail = (slice(k, None), slice(None, -k)) if not reverse else (slice(None, -k), slice(k, None))
        dst = (slice(None),) * dim + (head,)
        src = (slice(None),) * dim + (tail,)
        u[dst] += a[dst] * u[src]  # the product is formed before the add: reads old values
        a[dst] = F.threshold_(a[dst] * a[src], TINY, 0.0)
        k *= 2


def _chunked_scan(a: torch.Tensor, u: torch.Tensor, L: int, h0: torch.Tensor | None, reverse: bool = False):
    """Scan ``h_t = a_t h_{t-1} + u_t`` (or, reversed, ``h_t = a_t h_{t+1} + u_t``) over dim 1 of
    a, u (b, n L, E, N), consumed in place. Returns h (b, n L, E, N)."""
    b, T, E, N = u.shape
    n = T // L
    a, u = a.view(b, n, L, E, N), u.view(b, n, L, E, N)
    _doubling_scan_(a, u, 2, reverse)  # within chunks: u local scan, a cumulative decay
    edge = 0 if reverse else -1
    chunk_a, chunk_u = a[:, :, edge].clone(), u[:, :, edge].clone()  # (b, n, E, N)
    if h0 is not None:
        first = -1 if reverse else 0
        chunk_u[:, first] += chunk_a[:, first] * h0
    _doubling_scan_(chunk_a, chunk_u, 1, reverse)  # states leaving each chunk
    # state entering each chunk: the one left by its neighbour (h0, or zero, at the edge)
    entering = torch.zeros_like(chunk_u[:, :1]) if h0 is None else h0[:, None]
    if reverse:
        entering = torch.cat([chunk_u[:, 1:], entering], 1)
    else:
        entering = torch.cat([entering, chunk_u[:, :-1]], 1)
    u.addcmul_(a, entering[:, :, None])
    return u.view(b, T, E, N)


def _block_inputs(dtx, dt, A, B):
    """Decays a and inputs u (b, l, E, N) of one chunk; consumed in place by the scan."""
    a = torch.exp((dt[..., None] * A).clamp_(min=FLOOR))
    return a, dtx[..., None] * B[:, :, None, :]


class _SelectiveScan(torch.autograd.Function):
    """y and the final state of the selective scan, chunk by chunk; backward recomputes each
    chunk's states from the state entering it, so only those (n, E, N) are kept, not (T, E, N)."""

    @staticmethod
    def forward(ctx, dtx, dt, A, B, C, h0, chunk: int, sub: int):
        # dtx, dt (b, T, E); A (E, N); B, C (b, T, N); h0 (b, E, N); T a multiple of sub; float32
        T = dt.shape[1]
        y = torch.empty_like(dtx)
        h, starts = h0, []
        for s in range(0, T, chunk):
            e = min(s + chunk, T)
            starts.append(h)
            a, u = _block_inputs(dtx[:, s:e], dt[:, s:e], A, B[:, s:e])
            states = _chunked_scan(a, u, sub, h)  # (b, l, E, N)
            y[:, s:e] = torch.einsum("bten,btn->bte", states, C[:, s:e])
            h = states[:, -1].clone()
        ctx.save_for_backward(dtx, dt, A, B, C, torch.stack(starts, 1))
        ctx.chunk, ctx.sub = chunk, sub
        return y, h

    @staticmethod
    def backward(ctx, dy, dfinal):
        dtx, dt, A, B, C, starts = ctx.saved_tensors
        T, chunk = dt.shape[1], ctx.chunk
        ddtx, ddt, dB, dC = (torch.empty_like(t) for t in (dtx, dt, B, C))
        dA = torch.zeros_like(A)
        carry = dfinal  # dL/d(state leaving the chunk), from the chunks after it
        for i, s in reversed(list(enumerate(range(0, T, chunk)))):
            e = min(s + chunk, T)
            h_in = starts[:, i]
            a, u = _block_inputs(dtx[:, s:e], dt[:, s:e], A, B[:, s:e])
            a_saved = a.clone()
            h = _chunked_scan(a, u, ctx.sub, h_in)  # recomputed states (b, l, E, N)
            a = a_saved
            # the adjoint r_t = dh_t + a_{t+1} r_{t+1}, with dh_t = dy_t C_t and the carry at the end
            dh = dy[:, s:e, :, None] * C[:, s:e, None, :]
            dh[:, -1] += carry
            a_next = torch.cat([a[:, 1:], torch.zeros_like(a[:, :1])], 1)
            r = _chunked_scan(a_next, dh, ctx.sub, None, reverse=True)  # dL/du_t
            dC[:, s:e] = torch.einsum("bte,bten->btn", dy[:, s:e], h)
            dla = r * a  # dL/d(dt A) = r_t h_{t-1} a_t: da_t = r_t h_{t-1}, and da/d(log a) = a
            dla[:, 1:] *= h[:, :-1]
            dla[:, 0] *= h_in
            ddt[:, s:e] = torch.einsum("bten,en->bte", dla, A)
            dA += torch.einsum("bten,bte->en", dla, dt[:, s:e])
            ddtx[:, s:e] = torch.einsum("bten,btn->bte", r, B[:, s:e])
            dB[:, s:e] = torch.einsum("bten,bte->btn", r, dtx[:, s:e])
            carry = r[:, 0] * a[:, 0]  # dL/d(state entering this chunk)
        return ddtx, ddt, dA, dB, dC, carry, None, None


def selective_scan_chunked(x, dt, A, B, C, *, chunk: int = 64, initial_state=None):
    """The selective scan over a sequence, chunk by chunk, in float32 (``chunk`` is rounded down
    to whole sub-chunks).

    x, dt (b, T, E), dt positive; A (E, N), negative; B, C (b, T, N); initial_state (b, E, N) or
    None. Returns y (b, T, E) in x's dtype (without the D skip) and the final state (b, E, N).
    """
    b, T, E = x.shape
    L = min(SUB, chunk, T)
    chunk = max(L, chunk // L * L)
    pad = (-T) % L
    dt32 = dt.float()
    dtx = x.float() * dt32
    B, C = B.float(), C.float()
    if pad:  # padded steps have dt = 0: no decay, no input; their outputs are dropped
        dtx, dt32 = F.pad(dtx, (0, 0, 0, pad)), F.pad(dt32, (0, 0, 0, pad))
        B, C = F.pad(B, (0, 0, 0, pad)), F.pad(C, (0, 0, 0, pad))
    h0 = x.new_zeros(b, E, A.shape[-1], dtype=torch.float32) if initial_state is None else initial_state.float()
    y, final = _SelectiveScan.apply(dtx, dt32, A.float(), B, C, h0, chunk, L)
    return y[:, :T].to(x.dtype), final


def selective_scan_reference(x, dt, A, B, C, *, initial_state=None):
    """The same recurrence one token at a time (float32): the plain twin."""
    b, T, E = x.shape
    x, dt, A, B, C = x.float(), dt.float(), A.float(), B.float(), C.float()
    h = x.new_zeros(b, E, A.shape[-1]) if initial_state is None else initial_state.float()
    ys = []
    for t in range(T):
        h = torch.exp(dt[:, t, :, None] * A) * h + (dt[:, t] * x[:, t])[..., None] * B[:, t, None, :]
        ys.append(torch.einsum("ben,bn->be", h, C[:, t]))
    return torch.stack(ys, 1), h
