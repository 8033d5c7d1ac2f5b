"""Mamba-1's selective scan as plain functions: a blocked sequential scan and a loop twin.

Per channel e and state index n, with ``dt`` (b, T, E) positive and ``A`` (E, N) negative::

    h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t        y_t = sum_n C_t[n] h_t[:, n]

Unlike Mamba-2 the decay differs per (e, n), so there is no matrix form: an exact chunked form
would need an (L x L) decay matrix per channel and state index, L times the work of the
recurrence itself. The work is elementwise over (T, E, N), and on a CPU its speed is memory
traffic, so :func:`selective_scan_chunked` runs the recurrence itself, as few passes over
(T, E, N) as it needs, in blocks that stay in cache:

* the state is kept as (N, E) per sequence (E contiguous), so that the read-out ``C_t h_t`` is a
  batched row-vector-by-matrix product, and the decays and inputs are broadcast products;
* the work goes in blocks of S tokens (at most ``SUB``) and g sequences, as many as keep a
  block's (g, S, N, E) tensors within ``BLOCK_ELEMENTS`` (2 MiB each; this VM's AMD EPYC cores
  have 1 MiB of L2 each, yet at d_model 64, 64 x 128 tokens blocks of 1 MiB ran 5% slower and
  of 512 KiB 1.5x slower, the ops' fixed costs outgrowing the cache's gain, while blocks four
  times larger ran three times slower per element): a block's decays
  ``exp2(dt log2(e) A)`` and inputs ``dt x B`` are formed in one product each, its states by one
  in-place multiply-add per token (``h_t = a_t h_{t-1} + u_t``), its read-out by one batched
  product;
* the state entering each chunk of ``chunk`` tokens is kept for backward, nothing else of
  (T, E, N) size: backward goes through the chunks from the end, recomputes a chunk's states
  from the state entering it (only the states entering its blocks, when a chunk holds several),
  runs the adjoint recurrence ``r_t = dy_t C_t + a_{t+1} r_{t+1}`` block by block from the
  chunk's end, recomputing each block's states, and reduces it to the gradients of dt x, dt, A,
  B, C. With ``chunk`` equal to the block length (mamba's default of 16, when a block can hold 16
  tokens) nothing is recomputed twice;
* groups of sequences are independent, and with torch on several threads and at least
  ``POOL_MIN_TOKENS`` tokens they run at the same time on that many Python threads (see
  :func:`_run`): OpenMP inside each op reaches only the block-wide products, not the per-token
  steps, and on a loaded machine its spinning barriers made the whole scan several times
  slower on two threads than on one (fewer tokens run faster with OpenMP on a quiet machine);
* a group's forward and backward, hundreds of small ops each, run as TorchScript functions
  (see :func:`_kernels`), whose interpreter does not hold Python's lock: run as Python, the two
  threads handed the lock back and forth between ops, and the scan ran only 1.2x faster on two
  threads than on one; from TorchScript it runs 1.4-1.7x faster (benchmarks/README.md).

The sequence is padded with steps of dt = 0 (no decay, no input) to whole sub-chunks of
``min(SUB, chunk, T)`` tokens. Decays are exponentials of ``dt A <= 0``, so nothing overflows;
log decays are floored at ``FLOOR`` first: the exact values below it are far below float32
resolution next to any term that is not decayed away, while below ``exp(-87)`` they would be
denormal numbers, which many CPUs multiply tens of times slower.
"""

from __future__ import annotations

import functools
import math
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F
from torch import Tensor

from archdsl.layers.builtin.mamba import SUB  # tokens per sub-chunk (with the cost formula that pads to it)

BLOCK_ELEMENTS = 2**19  # at most this many elements in a block's (b, S, N, E) tensors (2 MiB in float32)
LOG2E = math.log2(math.e)
FLOOR = -60.0  # log decays are floored here before exp (exp(-60) = 9e-27)
# From this many tokens (batch x length) the groups of sequences run on the pool (see _run);
# below it, one after another with OpenMP's threads inside each op. On this project's quiet
# 2-core VM mamba's steps took 1.1-1.5x as long on the pool as with OpenMP's threads at 2,048
# to 4,096 tokens (each core then works on half of each block, in its own cache), and
# 0.8-1.0x as long at 8,192 (benchmarks/README.md, sixth pass).
POOL_MIN_TOKENS = 8192


def _blocks(sub: int, b: int, NE: int) -> tuple[int, int]:
    """(sequences, tokens) per block: the most tokens (a divisor of ``sub``), then the most
    sequences, whose (sequences, tokens, N, E) tensors stay within BLOCK_ELEMENTS (at least 1 x 1),
    but no more than leave a group of sequences for each of torch's threads."""
    S = max([s for s in range(1, sub + 1) if sub % s == 0 and s * NE <= BLOCK_ELEMENTS] or [1])
    return max(1, min(-(-b // torch.get_num_threads()), BLOCK_ELEMENTS // (S * NE))), S


_POOL: dict[tuple[int, int], ThreadPoolExecutor] = {}  # by process and number of threads
_SINGLE = threading.local()  # whether a pool thread has set its torch threads to 1


def _run(fn, ks, pool: bool) -> list:
    """``[fn(k) for k in ks]``, with ``pool`` the groups of sequences at the same time on as many
    Python threads as torch has threads: intra-op parallelism does not reach a scan's many small
    steps, and under load its spinning barriers made the scan several times slower on two threads.

    The pool's threads run torch ops single-threaded (``torch.set_num_threads(1)`` in each sets
    that thread's OpenMP and MKL counts), so the two kinds of parallelism never nest; the
    process-wide default the call also stores is set back afterwards. A group's TorchScript
    kernel releases the GIL for its whole run (the plain functions only inside each op); grad
    mode, which is per thread, is the caller's.
    """
    ks = list(ks)
    threads = torch.get_num_threads()
    workers = min(threads, len(ks))
    if workers <= 1 or not pool:
        return [fn(k) for k in ks]
    grad = torch.is_grad_enabled()

    def task(k):
        if not getattr(_SINGLE, "set", False):
            torch.set_num_threads(1)
            _SINGLE.set = True
        with torch.set_grad_enabled(grad):
            return fn(k)

    key = (os.getpid(), threads)  # a forked child has none of its parent's threads: a pool of its own
    if key not in _POOL:
        _POOL[key] = ThreadPoolExecutor(threads, thread_name_prefix="archdsl-scan")
    try:
        return list(_POOL[key].map(task, ks))
    finally:
        torch.set_num_threads(threads)


def _decays(dt: Tensor, A2: Tensor, out: Tensor, floor: float = FLOOR * LOG2E) -> Tensor:
    """``exp(dt A)`` of a block, dt (g, S, E), A2 = A^T log2(e) (N, E) -> (g, S, N, E). (The floor
    is an argument as TorchScript reads no global floats.)"""
    return torch.mul(dt[:, :, None, :], A2, out=out).clamp_(min=floor).exp2_()


def _inputs(B: Tensor, dtx: Tensor, out: Tensor) -> Tensor:
    """``u_t = dt_t x_t B_t`` of a block, B (g, S, N), dtx (g, S, E) -> (g, S, N, E)."""
    return torch.mul(B[:, :, :, None], dtx[:, :, None, :], out=out)


def _states_(a: Tensor, u: Tensor, h: Tensor) -> Tensor:
    """In place: u (g, S, N, E) becomes the states h_t = a_t h_{t-1} + u_t from h (g, N, E).
    Returns a copy of the last state."""
    for s in range(a.shape[1]):
        h = u.select(1, s).addcmul_(a.select(1, s), h)
    return h.clone()


def _forward(
    dtx: Tensor, dt: Tensor, A2: Tensor, B: Tensor, C: Tensor, h: Tensor, chunk: int, S: int, y: Tensor
) -> tuple[Tensor, Tensor]:
    """One group of sequences: y (g, T, E) written in place; returns the final state and the
    states entering each chunk (g, n, N, E)."""
    g, T, E, N = dt.shape[0], dt.shape[1], dt.shape[2], A2.shape[0]
    a, u = dtx.new_empty([g, S, N, E]), dtx.new_empty([g, S, N, E])
    starts: list[Tensor] = []
    for i in range(0, T, S):
        j = i + S
        if i % chunk == 0:
            starts.append(h)
        h = _states_(_decays(dt[:, i:j], A2, a), _inputs(B[:, i:j], dtx[:, i:j], u), h)
        y[:, i:j] = torch.bmm(C[:, i:j].reshape([g * S, 1, N]), u.view([g * S, N, E])).view([g, S, E])
    return h, torch.stack(starts, 1)


def _backward(
    dtx: Tensor,
    dt: Tensor,
    A2: Tensor,
    At: Tensor,
    B: Tensor,
    C: Tensor,
    starts: Tensor,
    dy: Tensor,
    carry: Tensor,
    chunk: int,
    S: int,
    ddtx: Tensor,
    ddt: Tensor,
    dA: Tensor,
    dB: Tensor,
    dC: Tensor,
) -> Tensor:
    """One group of sequences: the gradients (ddtx, ddt, dA summed over the group's sequences and
    tokens but not yet over (g, S), dB, dC) written in place; returns dL/d(initial state)."""
    g, T, E, N = dt.shape[0], dt.shape[1], dt.shape[2], A2.shape[0]
    a, h, r = dtx.new_empty([g, S, N, E]), dtx.new_empty([g, S, N, E]), dtx.new_empty([g, S, N, E])
    for c in range((T - 1) // chunk * chunk, -1, -chunk):  # the chunks from the last
        blocks = list(range(c, min(c + chunk, T), S))
        # the state entering each block of the chunk, from the one entering the chunk
        entering = [starts[:, c // chunk]]
        for i in blocks[:-1]:
            j = i + S
            entering.append(_states_(_decays(dt[:, i:j], A2, a), _inputs(B[:, i:j], dtx[:, i:j], h), entering[-1]))
        for k in range(len(blocks) - 1, -1, -1):  # the blocks from the last
            i, h_in = blocks[k], entering[k]
            j = i + S
            _states_(_decays(dt[:, i:j], A2, a), _inputs(B[:, i:j], dtx[:, i:j], h), h_in)  # the block's states
            # dC_t = sum_e dy_t h_t (r as scratch: products into preallocated buffers, then sums,
            # as fresh temporaries of this size cost more than the products)
            torch.sum(torch.mul(h, dy[:, i:j, None, :], out=r), -1, out=dC[:, i:j])
            # the adjoint, from the block's end: r_t = dy_t C_t + a_{t+1} r_{t+1}
            torch.mul(C[:, i:j, :, None], dy[:, i:j, None, :], out=r)
            r.select(1, S - 1).add_(carry)
            for s in range(S - 2, -1, -1):
                r.select(1, s).addcmul_(a.select(1, s + 1), r.select(1, s + 1))
            carry = a.select(1, 0) * r.select(1, 0)  # dL/d(state entering the block)
            # r is dL/du_t, with u_t = dtx_t B_t
            ddtx[:, i:j] = torch.bmm(B[:, i:j].reshape([g * S, 1, N]), r.view([g * S, N, E])).view([g, S, E])
            # dL/d(log a_t) = r_t a_t h_{t-1}, into a; log a_t = dt_t A
            a.mul_(r)
            a[:, 1:].mul_(h[:, :-1])
            a.select(1, 0).mul_(h_in)
            torch.sum(torch.mul(r, dtx[:, i:j, None, :], out=h), -1, out=dB[:, i:j])  # h as scratch
            dA.addcmul_(a, dt[:, i:j, None, :])
            torch.sum(torch.mul(a, At, out=r), 2, out=ddt[:, i:j])
    return carry


@functools.cache
def _scripted() -> tuple | None:
    """:func:`_forward` and :func:`_backward` compiled by TorchScript, or None where this torch
    cannot (TorchScript is deprecated, and may leave torch)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.script(_forward), torch.jit.script(_backward)
    except Exception:  # noqa: BLE001 - any failure to compile leaves the plain functions
        return None


def _kernels() -> tuple:
    """The (forward, backward) of one group of sequences: TorchScript's where it compiles them, as
    its interpreter runs a group's hundreds of small ops without Python's lock (see :func:`_run`);
    the plain functions under ``torch.compile``, which traces them, or without TorchScript."""
    if torch.compiler.is_compiling():
        return _forward, _backward
    return _scripted() or (_forward, _backward)


class _SelectiveScan(torch.autograd.Function):
    """y and the final state of the selective scan, in groups of sequences; backward recomputes
    each chunk's states from the state entering it, so only those (n, N, E) per sequence are
    kept, not (T, N, E)."""

    @staticmethod
    def forward(ctx, dtx, dt, A, B, C, h0, chunk: int, sub: int):
        # dtx, dt (b, T, E); A (E, N); B, C (b, T, N); h0 (b, N, E); T a multiple of sub; float32
        b, T, E = dt.shape
        N = A.shape[1]
        G, S = _blocks(sub, b, N * E)
        A2 = (A.t() * LOG2E).contiguous()  # (N, E)
        y = dtx.new_empty(b, T, E)
        forward_group = _kernels()[0]

        def group(k):
            part = slice(k, k + G)
            return forward_group(dtx[part], dt[part], A2, B[part], C[part], h0[part], chunk, S, y[part])

        pool = b * T >= POOL_MIN_TOKENS  # backward decides as forward did
        final, starts = zip(*_run(group, range(0, b, G), pool))
        ctx.save_for_backward(dtx, dt, A, B, C, torch.cat(starts))
        ctx.chunk, ctx.G, ctx.S, ctx.pool = chunk, G, S, pool
        return y, torch.cat(final)

    @staticmethod
    def backward(ctx, dy, dfinal):
        dtx, dt, A, B, C, starts = ctx.saved_tensors
        b, _, E = dt.shape
        N, G, S = A.shape[1], ctx.G, ctx.S
        At = A.t().contiguous()  # (N, E)
        A2 = At * LOG2E
        dy = dy.contiguous()
        ddtx, ddt, dB, dC = (torch.empty_like(t) for t in (dtx, dt, B, C))
        backward_group = _kernels()[1]

        def group(k):
            part = slice(k, k + G)
            dA = dtx.new_zeros(min(G, b - k), S, N, E)  # each group its own (groups may run at once)
            args = (dtx[part], dt[part], A2, At, B[part], C[part], starts[part], dy[part], dfinal[part])
            grads = (ddtx[part], ddt[part], dA, dB[part], dC[part])
            return backward_group(*args, ctx.chunk, S, *grads), dA.sum((0, 1))

        dh0, dA = zip(*_run(group, range(0, b, G), ctx.pool))
        return ddtx, ddt, torch.stack(dA).sum(0).t(), dB, dC, torch.cat(dh0), None, None


def selective_scan_chunked(x, dt, A, B, C, *, chunk: int = 64, initial_state=None):
    """The selective scan over a sequence, in float32, keeping for backward the state entering
    each chunk of ``chunk`` tokens (rounded down to whole sub-chunks).

    x, dt (b, T, E), dt positive; A (E, N), negative; B, C (b, T, N); initial_state (b, E, N) or
    None. Returns y (b, T, E) in x's dtype (without the D skip) and the final state (b, E, N).
    """
    b, T, E = x.shape
    N = A.shape[-1]
    sub = min(SUB, chunk, T)
    chunk = max(sub, chunk // sub * sub)
    pad = (-T) % sub
    dt32 = dt.float()
    dtx = x.float() * dt32
    B, C = B.float(), C.float()
    if pad:  # padded steps have dt = 0: no decay, no input; their outputs are dropped
        dtx, dt32 = F.pad(dtx, (0, 0, 0, pad)), F.pad(dt32, (0, 0, 0, pad))
        B, C = F.pad(B, (0, 0, 0, pad)), F.pad(C, (0, 0, 0, pad))
    if initial_state is None:
        h0 = x.new_zeros(b, N, E, dtype=torch.float32)
    else:
        h0 = initial_state.float().transpose(1, 2).contiguous()
    y, final = _SelectiveScan.apply(dtx.contiguous(), dt32.contiguous(), A.float(), B, C, h0, chunk, sub)
    return y[:, :T].to(x.dtype), final.transpose(1, 2)


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
