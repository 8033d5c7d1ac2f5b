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

Two forms compute it. On a CPU, for a head none of whose chunks decays by more than exp(-2
FACTOR_LIMIT), every decay factors through the middle m of its chunk's range, ``exp(g_l - g_s) =
exp(g_l - m) exp(m - g_s)`` (:func:`_ssd_factored`): all heads of a group share one causal ``C B^T``
and one product, and the tokens' channels are scaled twice in all, where the steps above scale them
five times. Otherwise (strong decays, where a factor would leave float32's range, or an
accelerator, which would stall to read the range back) the masks are formed per head
(:mod:`archdsl.nn.layers.ssd_masked`); with one group, only for the heads that need them
(for all of a layer's heads under ``torch.compile``, see :func:`ssd_chunked`).
The big products are batched matmuls in x's dtype (bf16 on GPU); decays, cumulative sums and
the states passed between chunks are float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from archdsl.layers.builtin.ssm import chunk_length  # with the cost formula that depends on it
from archdsl.nn.layers.ssd_masked import pass_end_states, ssd_masked

# Within a chunk, decays are factored through its middle m when every |g - m| is at most this:
# exp(80) = 5.5e34 and exp(-80) = 1.8e-35 are normal float32 numbers, and a sum of products
# that large still has a margin of exp(8) below float32's largest.
FACTOR_LIMIT = 80.0


def ssd_chunked(x, dt, A, B, C, *, chunk: int = 256, initial_state=None, final_state: bool = True):
    """The SSD scan over a sequence, chunk by chunk (of at most ``chunk`` tokens, see
    :func:`chunk_length`), with matrix products.

    x (b, T, H, P); dt (b, T, H), already positive; A (H,), negative; B, C (b, T, G, N);
    initial_state (b, H, P, N) or None (zeros). Returns y (b, T, H, P) in x's dtype (without
    the D skip) and the final state (b, H, P, N) in float32, or None with ``final_state=False``.

    Only the states that are read are formed: without an initial state the first chunk starts
    from zeros (nothing to read), and without ``final_state`` the last chunk's end state is not
    needed; a training forward over a single chunk is step 1 alone.
    """
    b, T, H, P = x.shape
    G, N = B.shape[-2:]
    log_decay = dt.float() * A.float()  # (b, T, H), <= 0
    L = chunk_length(T, chunk, H, P, G, N)
    pad = (-T) % L
    n = (T + pad) // L
    if pad:
        # padded steps have dt = 0: no decay, no input, no output that is kept
        log_decay, dt = F.pad(log_decay, (0, 0, 0, pad)), F.pad(dt, (0, 0, 0, pad))
        x, B, C = (F.pad(t, (0, 0, 0, 0, 0, pad)) for t in (x, B, C))
    g = log_decay.view(b, n, L, H).cumsum(2)  # (b, n, L, H), cumulative within a chunk
    B, C = B.reshape(b, n, L, G, N).to(x.dtype), C.reshape(b, n, L, G, N).to(x.dtype)
    fits = _factors_fit(g)
    if fits.all():
        y, final = _ssd_factored(x, dt, g, B, C, initial_state, final_state)
    elif G == 1 and fits.any() and not torch.compiler.is_compiling():
        # not under torch.compile: torch 2.13's inductor made CPU code of the split that
        # corrupted the heap (two runs in three of one script; test_ssm compiles the masked form)
        y, final = _ssd_split(x, dt, g, B, C, initial_state, final_state, fits)
    else:
        y, final = _ssd_masked(x, dt, g, B, C, initial_state, final_state)
    return y.reshape(b, n * L, H, P)[:, :T], final


def _factors_fit(g: torch.Tensor) -> torch.Tensor:
    """Which heads the factored form may run, from g (b, n, L, H), the cumulative log decays within
    each chunk: a bool per head. On a CPU, the heads none of whose chunks decays by more than
    exp(-2 FACTOR_LIMIT) in all, so that every factor and each chunk's middle stay within float32's
    normal range; on the meta device, which has no values, all (the form the cost counts); on an
    accelerator none, as reading the decays back would stall its queue on every call. (Strong
    decays could run the factored form on shorter chunks instead: at d_model 256, chunks of 64 ran
    25% slower than the masks with chunks of 128.)"""
    H = g.shape[-1]
    if g.device.type != "cpu":
        return torch.full((H,), g.device.type == "meta", device="cpu")  # also under a meta default device
    return (-g[:, :, -1].detach()).amax((0, 1)) <= 2 * FACTOR_LIMIT


def _ssd_masked(x, dt, g, B, C, initial_state, final_state):
    """:func:`ssd_masked` on the arguments of :func:`_ssd_factored`."""
    b, n, L, H = g.shape
    xdt = (x.float() * dt[..., None].float()).to(x.dtype).view(b, n, L, H, -1)
    # Head-major g, copied to be contiguous; not under torch.compile, whose CPU code for this
    # graph (torch 2.13's inductor, vectorised) got dt's gradient wrong from the copy, by up to
    # 100 times its size, where from the strided view it is right (test_ssm's compiled test)
    g = g.transpose(2, 3)
    if not torch.compiler.is_compiling():
        g = g.contiguous()
    return ssd_masked(xdt, g, B, C, initial_state=initial_state, final_state=final_state)


def _ssd_split(x, dt, g, B, C, initial_state, final_state, fits):
    """One group of heads of which only some decay too strongly to factor (``fits`` per head):
    the factored form on the heads that fit and the per-head masks on the others, so that a layer
    with one fast-decaying head (Mamba-2 gives head h the decay rate A = -h at initialisation)
    does not form masks for all. Arguments as :func:`_ssd_factored`, B and C with one group."""
    factored, masked = fits.nonzero()[:, 0], (~fits).nonzero()[:, 0]
    back = torch.cat([factored, masked]).argsort()  # from [factored | masked] to the heads' order

    parts = []
    for form, which in ((_ssd_factored, factored), (_ssd_masked, masked)):
        x_h, dt_h, g_h = x.index_select(2, which), dt.index_select(2, which), g.index_select(3, which)
        h0 = None if initial_state is None else initial_state.index_select(1, which)
        parts.append(form(x_h, dt_h, g_h, B, C, h0, final_state))
    y = torch.cat([part[0] for part in parts], 3).index_select(3, back)  # (b, n, L, H, P)
    final = torch.cat([part[1] for part in parts], 1).index_select(1, back) if final_state else None
    return y, final


def _ssd_factored(x, dt, g, B, C, initial_state, final_state):
    """The chunked SSD with every within-chunk decay factored (see the module docstring), for
    chunks whose log decays span at most 2 FACTOR_LIMIT. x (b, n L, H, P) and dt (b, n L, H)
    padded to whole chunks; g (b, n, L, H): cumulative log decays within each chunk, token-major;
    B, C (b, n, L, G, N). Returns y (b, n, L, H, P) and the final state (or None).

    With m the middle of a chunk's range of g (m >= -FACTOR_LIMIT, as the chunk decays by at
    most 2 FACTOR_LIMIT), every decay within the chunk is a product of two factors,
    ``exp(g_l - g_s) = exp(g_l - m) exp(m - g_s)``, and so is the read-out of the state S the
    chunk starts from, ``exp(g_l) C S = exp(g_l - m) C (exp(m) S)``. So X is scaled once, by
    ``dt exp(m - g)``, into Z; Z feeds the causal product with C B^T and, as it is, the end
    state's product Z^T B, which a scaling per head by ``exp(g_last - m)`` brings to its true
    size (passed on with the factors in it, a state could need weights below float32's range);
    the states pass between chunks as in the masked form; C reads ``exp(m) S`` into the
    within-chunk product in place; and one scaling by ``exp(g - m)`` finishes every output. The
    tokens' channels are scaled twice, where decaying each term on its own takes five passes.
    """
    b, n, L, H = g.shape
    P = x.shape[-1]
    G, N = B.shape[-2:]
    hg = H // G
    dtype = x.dtype
    mid = (g[:, :, :1] + g[:, :, -1:]) / 2  # (b, n, 1, H)
    z = x.view(b, n, L, H, P) * (dt.view(b, n, L, H).float() * torch.exp(mid - g)).to(dtype)[..., None]
    z = z.view(b, n, L, G, hg * P)

    # Products as matmuls of (b, n, G, ...) views, group-major: with one group these are the
    # token-major tensors themselves, and Z^T and S^T are read transposed, not copied
    Bg, Cg, zg = B.transpose(2, 3), C.transpose(2, 3), z.transpose(2, 3)  # (b, n, G, L, ·)

    # 1. within chunks: the causal C B^T that a group's heads share, times Z
    CB = Cg @ Bg.transpose(-1, -2)  # (b, n, G, L, L)
    y = CB.tril() @ zg  # (b, n, G, L, hg P)

    first = 0 if initial_state is not None else 1  # chunks first .. n-1 read the state entering them
    ends = n if final_state else n - 1  # chunks 0 .. ends-1 pass their end state on
    final = None
    if first < n or final_state:
        # 2. each chunk's end state: Z^T B per group, laid out (head, P, N) per chunk as the pass
        # wants it, times exp(g_last - m) per head (at least exp(-FACTOR_LIMIT))
        states = (zg[:, :ends].transpose(-1, -2) @ Bg[:, :ends]).float()  # (b, ends, G, hg P, N)
        last = g[:, :, -1]  # (b, n, H): each chunk's total log decay
        states = states.view(b, ends, H, P * N) * torch.exp(last[:, :ends] - mid[:, :ends, 0])[..., None]
        # 3. the states entering chunks first .. n-1, and the final state (float32)
        passed = pass_end_states(states, last[:, :ends], initial_state)
        if final_state:
            final = passed[:, -1].view(b, H, P, N)
        m = n - first
        if m:
            # 4. C reads each chunk's start state times exp(m) (a normal float32 number, see above),
            # added in place to the within-chunk product before the last scaling
            start = passed[:, :m] * torch.exp(mid[:, first:, 0])[..., None]  # (b, m, H, P N)
            start = start.to(dtype).reshape(b, m, G, hg * P, N)
            y[:, first:] += Cg[:, first:] @ start.transpose(-1, -2)
    y = y.transpose(2, 3).reshape(b, n, L, H, P) * torch.exp(g - mid).to(dtype)[..., None]
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
