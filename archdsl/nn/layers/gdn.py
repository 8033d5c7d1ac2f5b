"""``gdn``: Gated DeltaNet (Yang, Kautz, Hatamizadeh 2024), the linear attention of Qwen3-Next.

Per head the state ``S`` (head_dim x v_head_dim) follows the gated delta rule::

    S_t = alpha_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T        o_t = S_t^T q_t / sqrt(head_dim)

with q, k L2-normalised, ``alpha_t = exp(g_t)``, ``g_t = -exp(A_log) * softplus(a_t + dt_bias)`` and
``beta_t = sigmoid(b_t)``. The layer around it follows fla's ``GatedDeltaNet`` and Qwen3-Next's
``Qwen3NextGatedDeltaNet``: one input projection to q, k, v, the output gate z and the per-head
a, b; a short causal depthwise conv with SiLU on q, k, v; an RMSNorm per head multiplied by
silu(z); an output projection. The projection rows are laid out ``[q | k | v | z | b | a]``
(Qwen3-Next interleaves them per key head, so moving its weights needs a permutation).

The fast path is the chunked WY (UT transform) algorithm of the paper (section 3.3): matrix
products within chunks and a pass of the state across chunks; ``reference=True`` runs
:meth:`GatedDeltaNet.step` token by token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from archdsl.layers.builtin.gdn import GDNParams
from archdsl.nn.layers.causal_conv import causal_conv_silu, conv_from, conv_step
from archdsl.nn.layers.gate import silu_gate
from archdsl.nn.layers.init import dt_bias_init
from archdsl.nn.layers.state import check_batch
from archdsl.nn.linear import Linear
from archdsl.nn.norm import RMSNorm
from archdsl.spec.model import ModelSettings


@dataclass
class GDNState:
    conv: torch.Tensor  # (B, 2*H*K + H*V, conv - 1): the last inputs of the conv
    ssm: torch.Tensor  # (B, H, K, V): the delta-rule state of each head


def _acc_dtype(x: torch.Tensor) -> torch.dtype:
    """float32 for half types, the input's own type when wider (float64 tests stay exact)."""
    return torch.promote_types(x.dtype, torch.float32)


def l2norm(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``x / sqrt(sum(x^2) + eps)`` over the last dim (fla's and Qwen3-Next's form)."""
    return x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + eps)


class _UnitLowerInverse(torch.autograd.Function):
    """``(I + A)^-1`` for A strictly lower triangular (..., C, C): the "UT transform" of the WY form.

    One triangular solve against the identity (C right-hand sides), after which ``u`` and ``w``
    are plain matrix products; solving for them directly took K + V right-hand sides and another
    such solve in backward, and batched solves of this size run at a few GFLOP/s on a CPU.
    Backward is two products: with ``X = (I + A)^-1``, ``dX = -X dA X``, so
    ``grad A = -(X^T grad X X^T)`` on the strictly lower part (the rest of A is not a variable).
    """

    @staticmethod
    def forward(ctx, A):
        eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device).expand_as(A)
        inverse = torch.linalg.solve_triangular(A, eye, upper=False, unitriangular=True)  # reads A below the diagonal
        ctx.save_for_backward(inverse)
        return inverse

    @staticmethod
    def backward(ctx, grad):
        (inverse,) = ctx.saved_tensors
        it = inverse.transpose(-1, -2)
        return -(it @ grad @ it).tril(-1)


def chunk_gated_delta_rule(q, k, v, g, beta, *, scale: float, chunk: int = 64, initial_state=None, final_state=True):
    """The gated delta rule over a sequence, chunk by chunk (WY representation).

    q, k (B, T, H, K) L2-normalised; v (B, T, H, V); g (log decay, <= 0) and beta (B, T, H);
    initial_state (B, H, K, V) or None (zeros). Returns o (B, T, H, V) in v's dtype and the final
    state (float32 or wider, as the work inside), or None with ``final_state=False``.

    Within a chunk, with gamma_t the cumulative sum of g from the chunk start, the updates
    written to the state are ``Delta = U - W S_0`` where ``U = T diag(beta) V``,
    ``W = T diag(beta exp(gamma)) K``, ``T = (I + A)^-1`` and
    ``A[t, s] = beta_t exp(gamma_t - gamma_s) k_t.k_s`` for s < t. Every exponent is a difference
    gamma_t - gamma_s <= 0 taken before ``exp`` (differences above the diagonal, which are masked
    out, are clamped to 0 first), so nothing overflows however strong the decay. A chunk that
    starts from a zero state (the first, without ``initial_state``) skips the products with it.
    """
    B, T, H, K = k.shape
    V = v.shape[-1]
    out_dtype, acc = v.dtype, _acc_dtype(v)
    q, k, v = (t.transpose(1, 2).to(acc) for t in (q, k, v))  # (B, H, T, ·)
    g, beta = (t.transpose(1, 2).to(acc) for t in (g, beta))  # (B, H, T)
    q = q * scale
    C = min(chunk, T)
    pad = (-T) % C
    if pad:  # (F.pad copies even when it pads nothing)
        # padded steps have g = 0 and beta = 0: they leave the state exactly as it was
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
        g, beta = (F.pad(t, (0, pad)) for t in (g, beta))
    n = (T + pad) // C
    q, k, v = (t.reshape(B, H, n, C, -1) for t in (q, k, v))  # (B, H, n, C, ·)
    g, beta = (t.reshape(B, H, n, C) for t in (g, beta))

    gamma = g.cumsum(-1)  # (B, H, n, C)
    decay = (gamma[..., :, None] - gamma[..., None, :]).clamp(max=0.0).exp()  # (B, H, n, C, C), masked below

    k_beta = k * beta[..., None]
    inverse = _UnitLowerInverse.apply(((k_beta @ k.transpose(-1, -2)) * decay).tril(-1))  # (I + A)^-1
    u = inverse @ (v * beta[..., None])  # (B, H, n, C, V)
    w = inverse @ (k_beta * gamma.exp()[..., None])  # (B, H, n, C, K)

    scores = ((q @ k.transpose(-1, -2)) * decay).tril()  # (B, H, n, C, C), diagonal included
    q_in = q * gamma.exp()[..., None]  # reads the state left by the previous chunk
    k_out = k * (gamma[..., -1:] - gamma).exp()[..., None]  # decayed to the chunk end
    chunk_decay = gamma[..., -1].exp()[..., None, None]  # (B, H, n, 1, 1)

    S = None if initial_state is None else initial_state.to(acc)
    outs = []
    for i in range(n):
        if S is None:  # a zero state: nothing to read or to subtract
            delta = u[:, :, i]
            outs.append(scores[:, :, i] @ delta)
        else:
            delta = u[:, :, i] - w[:, :, i] @ S  # (B, H, C, V)
            outs.append(q_in[:, :, i] @ S + scores[:, :, i] @ delta)
        if i < n - 1 or final_state:
            S = (
                k_out[:, :, i].transpose(-1, -2) @ delta
                if S is None
                else S * chunk_decay[:, :, i] + k_out[:, :, i].transpose(-1, -2) @ delta
            )
    o = torch.stack(outs, 2).reshape(B, H, n * C, V)[:, :, :T]
    if final_state and S is None:
        S = q.new_zeros(B, H, K, V)
    return o.transpose(1, 2).to(out_dtype), (S if final_state else None)


def recurrent_gated_delta_rule(q, k, v, g, beta, *, scale: float, initial_state=None):
    """The same rule as :func:`chunk_gated_delta_rule`, one token at a time (the plain twin)."""
    B, T, H, K = k.shape
    acc = _acc_dtype(v)
    q, k, v, g, beta = (t.to(acc) for t in (q, k, v, g, beta))
    S = q.new_zeros(B, H, K, v.shape[-1]) if initial_state is None else initial_state.to(acc)
    outs = []
    for t in range(T):
        S = S * g[:, t].exp()[..., None, None]
        kt = k[:, t]  # (B, H, K)
        delta = beta[:, t, :, None] * (v[:, t] - torch.einsum("bhk,bhkv->bhv", kt, S))  # (B, H, V)
        S = S + kt[..., :, None] * delta[..., None, :]
        outs.append(torch.einsum("bhk,bhkv->bhv", q[:, t] * scale, S))
    return torch.stack(outs, 1), S


class GatedDeltaNet(nn.Module):
    def __init__(self, params: GDNParams, model: ModelSettings):
        super().__init__()
        p = params.resolve(model)
        self.p = p
        H, K, V, D = p.heads, p.head_dim, p.v_head_dim, model.d_model
        self.heads, self.k_dim, self.v_dim = H, K, V
        self.conv_dim = 2 * H * K + H * V
        self.in_proj = Linear(D, self.conv_dim + H * V + 2 * H, bias=False)  # q k v | z | b a
        self.conv1d = nn.Conv1d(self.conv_dim, self.conv_dim, p.conv, groups=self.conv_dim, bias=False)
        # decay as in Mamba-2 / fla: A in [1, 16], dt in [1e-3, 1e-1] log-uniformly, dt_bias = softplus^-1(dt)
        self.A_log = nn.Parameter(torch.empty(H).uniform_(1.0, 16.0).log())
        self.dt_bias = nn.Parameter(dt_bias_init(H))
        # norm then gate, per head (fla's FusedRMSNormGated, Qwen3NextRMSNormGated); archdsl's
        # GatedRMSNorm gates before normalising (Mamba-2), which is not this model
        self.norm = RMSNorm(V, eps=model.norm_eps)
        self.out_proj = Linear(H * V, D, bias=False)

    def _split(self, proj: torch.Tensor):
        H, V = self.heads, self.v_dim
        return proj.split([self.conv_dim, H * V, H, H], dim=-1)  # qkv, z, b, a

    def _qkv_gates(self, qkv, b, a):
        """Post-conv q, k, v (..., conv_dim) and raw b, a (..., H) -> heads, g and beta."""
        H, K, V = self.heads, self.k_dim, self.v_dim
        q, k, v = qkv.split([H * K, H * K, H * V], dim=-1)
        acc = _acc_dtype(qkv)
        q = l2norm(q.unflatten(-1, (H, K)).to(acc))  # (..., H, K)
        k = l2norm(k.unflatten(-1, (H, K)).to(acc))
        v = v.unflatten(-1, (H, V))  # (..., H, V)
        g = -self.A_log.to(acc).exp() * F.softplus(a.to(acc) + self.dt_bias.to(acc))  # (..., H)
        return q, k, v, g, torch.sigmoid(b.to(acc))

    def _out(self, o, z):
        o = self.norm(o) * silu_gate(z).unflatten(-1, (self.heads, self.v_dim))  # (..., H, V)
        return self.out_proj(o.flatten(-2))

    def forward(self, x: torch.Tensor, *, reference: bool = False) -> torch.Tensor:
        B, T, _ = x.shape
        if reference:
            state = self.init_state(B, max_len=T, device=x.device, dtype=x.dtype)
            return torch.stack([self.step(x[:, t], state)[0] for t in range(T)], 1)
        qkv, z, b, a = self._split(self.in_proj(x))
        qkv = causal_conv_silu(qkv, self.conv1d.weight)  # (B, T, conv_dim)
        q, k, v, g, beta = self._qkv_gates(qkv, b, a)
        o, _ = chunk_gated_delta_rule(q, k, v, g, beta, scale=self.k_dim**-0.5, chunk=self.p.chunk, final_state=False)
        return self._out(o.to(x.dtype), z)

    def init_state(self, batch: int, *, max_len: int, device=None, dtype=None) -> GDNState:
        return GDNState(
            conv=torch.zeros(batch, self.conv_dim, self.p.conv - 1, device=device, dtype=dtype),
            ssm=torch.zeros(batch, self.heads, self.k_dim, self.v_dim, device=device, dtype=dtype),
        )

    def prefill(self, x: torch.Tensor, state: GDNState) -> tuple[torch.Tensor, GDNState]:
        """A whole prompt x (B, T, D) through the chunked rule, from and into ``state``."""
        check_batch("gdn", "prefill", x.shape[0], state.ssm.shape[0])
        qkv, z, b, a = self._split(self.in_proj(x))
        qkv, conv = conv_from(qkv, self.conv1d.weight, None, state.conv)
        qkv = F.silu(qkv)  # (B, T, conv_dim)
        q, k, v, g, beta = self._qkv_gates(qkv, b, a)
        o, S = chunk_gated_delta_rule(
            q, k, v, g, beta, scale=self.k_dim**-0.5, chunk=self.p.chunk, initial_state=state.ssm
        )
        state.conv = conv.to(state.conv.dtype)
        state.ssm = S.to(state.ssm.dtype)
        return self._out(o.to(x.dtype), z), state

    def step(self, x: torch.Tensor, state: GDNState) -> tuple[torch.Tensor, GDNState]:
        check_batch("gdn", "step", x.shape[0], state.ssm.shape[0])
        qkv, z, b, a = self._split(self.in_proj(x))  # (B, ·)
        qkv, conv = conv_step(qkv, self.conv1d.weight, None, state.conv)  # (B, conv_dim)
        qkv = F.silu(qkv.to(x.dtype))
        q, k, v, g, beta = self._qkv_gates(qkv, b, a)
        o, S = recurrent_gated_delta_rule(
            q[:, None],
            k[:, None],
            v[:, None],
            g[:, None],
            beta[:, None],
            scale=self.k_dim**-0.5,
            initial_state=state.ssm,
        )
        # new tensors rather than in-place writes, so the reference path stays differentiable
        state.conv = conv
        state.ssm = S.to(state.ssm.dtype)
        return self._out(o[:, 0].to(x.dtype), z), state
