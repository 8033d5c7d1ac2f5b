"""``ssm``: the Mamba-2 mixer (Dao & Gu 2024), Hugging Face's ``Mamba2Mixer`` parameter for parameter.

One input projection gives the gate z, the conv input (x, B, C) and one dt per head; a causal
depthwise conv with bias and SiLU runs over x, B and C; the SSD scan (see
:mod:`archdsl.nn.layers.ssd`) with a scalar decay ``exp(dt * A)`` per head; a skip ``D * x``; a
gated RMSNorm ``norm(y * silu(z))``; an output projection. The projection rows are laid out
``[z | x | B | C | dt]`` as in HF and mamba_ssm, so their weights load with ``load_state_dict``.

``forward`` runs the chunked SSD algorithm; ``reference=True`` the loop over time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from archdsl.layers.builtin.ssm import SSMParams
from archdsl.nn.layers.causal_conv import causal_conv_silu, causal_conv_silu_from, conv_step
from archdsl.nn.layers.init import dt_bias_init
from archdsl.nn.layers.ssd import ssd_chunked, ssd_reference
from archdsl.nn.layers.state import check_batch
from archdsl.nn.linear import Linear
from archdsl.nn.norm import GatedRMSNorm
from archdsl.spec.model import ModelSettings


@dataclass
class SSMState:
    conv: torch.Tensor  # (B, conv_dim, conv - 1): the last inputs of the conv
    ssm: torch.Tensor  # (B, H, P, N): the state of each head


class SSM(nn.Module):
    def __init__(self, params: SSMParams, model: ModelSettings):
        super().__init__()
        p = params.resolve(model)
        self.p = p
        D = model.d_model
        self.inner = p.expand * D
        self.heads = self.inner // p.head_dim
        self.conv_dim = self.inner + 2 * p.groups * p.state
        self.in_proj = Linear(D, self.inner + self.conv_dim + self.heads, bias=False)  # z | x B C | dt
        self.conv1d = nn.Conv1d(self.conv_dim, self.conv_dim, p.conv, groups=self.conv_dim, padding=p.conv - 1)
        H = self.heads
        # HF's init_mamba2_weights: dt log-uniform in [1e-3, 1e-1] (floor 1e-4) stored as
        # softplus^-1(dt); A = 1 .. H (S4D-real); D = 1; HF also zeroes the conv bias
        self.dt_bias = nn.Parameter(dt_bias_init(H))
        self.A_log = nn.Parameter(torch.log(torch.arange(1, H + 1, dtype=torch.float32)))
        self.D = nn.Parameter(torch.ones(H))
        self.norm = GatedRMSNorm(self.inner, eps=model.norm_eps, groups=p.groups)
        self.out_proj = Linear(self.inner, D, bias=False)
        nn.init.zeros_(self.conv1d.bias)

    def _split(self, proj: torch.Tensor):
        return proj.split([self.inner, self.conv_dim, self.heads], dim=-1)  # z, xBC, dt

    def _ssm_inputs(self, xBC: torch.Tensor, dt: torch.Tensor):
        """Post-conv (..., conv_dim) and raw dt (..., H) -> x (..., H, P), B, C (..., G, N), dt, A."""
        p = self.p
        x, B, C = xBC.split([self.inner, p.groups * p.state, p.groups * p.state], dim=-1)
        dt = F.softplus(dt + self.dt_bias.to(dt.dtype))  # HF's time_step_limit (0, inf) is no clamp
        A = -torch.exp(self.A_log.float())
        return (
            x.unflatten(-1, (self.heads, p.head_dim)),
            B.unflatten(-1, (p.groups, p.state)),
            C.unflatten(-1, (p.groups, p.state)),
            dt,
            A,
        )

    def _out(self, y: torch.Tensor, x: torch.Tensor, z: torch.Tensor, dtype) -> torch.Tensor:
        y = y + x * self.D.to(x.dtype)[:, None]  # (..., H, P)
        return self.out_proj(self.norm(y.flatten(-2), z).to(dtype))

    def forward(self, x: torch.Tensor, *, reference: bool = False) -> torch.Tensor:
        T = x.shape[1]
        z, xBC, dt = self._split(self.in_proj(x))
        if reference:
            xBC = F.silu(self.conv1d(xBC.transpose(1, 2))[..., :T]).transpose(1, 2)  # (B, T, conv_dim)
            xs, B, C, dt, A = self._ssm_inputs(xBC, dt)
            y, _ = ssd_reference(xs, dt, A, B, C)
        else:
            xs, B, C, dt, A = self._ssm_inputs(causal_conv_silu(xBC, self.conv1d.weight, self.conv1d.bias), dt)
            y, _ = ssd_chunked(xs, dt, A, B, C, chunk=self.p.chunk, final_state=False)  # (B, T, H, P)
        return self._out(y.to(xs.dtype), xs, z, x.dtype)

    def init_state(self, batch: int, *, max_len: int, device=None, dtype=None) -> SSMState:
        p = self.p
        return SSMState(
            conv=torch.zeros(batch, self.conv_dim, p.conv - 1, device=device, dtype=dtype),
            ssm=torch.zeros(batch, self.heads, p.head_dim, p.state, device=device, dtype=dtype),
        )

    def prefill(self, x: torch.Tensor, state: SSMState) -> tuple[torch.Tensor, SSMState]:
        """A whole prompt x (B, T, D) through the chunked SSD, from and into ``state``."""
        check_batch("ssm", "prefill", x.shape[0], state.ssm.shape[0])
        z, xBC, dt = self._split(self.in_proj(x))
        xBC, conv = causal_conv_silu_from(xBC, self.conv1d.weight, self.conv1d.bias, state.conv)  # (B, T, conv_dim)
        xs, B, C, dt, A = self._ssm_inputs(xBC, dt)
        y, final = ssd_chunked(xs, dt, A, B, C, chunk=self.p.chunk, initial_state=state.ssm)  # (B, T, H, P)
        state.conv = conv.to(state.conv.dtype)
        state.ssm = final.to(state.ssm.dtype)
        return self._out(y.to(xs.dtype), xs, z, x.dtype), state

    def step(self, x: torch.Tensor, state: SSMState) -> tuple[torch.Tensor, SSMState]:
        check_batch("ssm", "step", x.shape[0], state.ssm.shape[0])
        z, xBC, dt = self._split(self.in_proj(x))  # (B, ·)
        pre, conv = conv_step(xBC, self.conv1d.weight, self.conv1d.bias, state.conv)  # (B, conv_dim)
        xBC = F.silu(pre).to(x.dtype)
        xs, B, C, dt, A = self._ssm_inputs(xBC, dt)
        hg = self.heads // self.p.groups
        B, C = B.float().repeat_interleave(hg, 1), C.float().repeat_interleave(hg, 1)  # (B, H, N)
        dt = dt.float()
        h = state.ssm.float() * torch.exp(dt * A)[..., None, None]
        h = h + (dt[..., None] * xs.float())[..., None] * B[:, :, None, :]  # (B, H, P, N)
        y = torch.einsum("bhpn,bhn->bhp", h, C)
        # new tensors rather than in-place writes, so a loop of steps stays differentiable
        state.conv = conv
        state.ssm = h.to(state.ssm.dtype)
        return self._out(y.to(xs.dtype), xs, z, x.dtype), state
