"""`moe`: a mixture of SwiGLU experts with top-k routing (Mixtral, Jamba).

A linear router scores the experts, a softmax turns the scores into probabilities, each token goes
to its ``top_k`` most probable experts, and their outputs are summed with the top-k probabilities
renormalised to sum to one. Weights are named and shaped as Hugging Face ``MixtralSparseMoeBlock``
(``gate.weight`` (E, D); ``experts.gate_up_proj`` (E, 2*hidden, D) with the gate half first;
``experts.down_proj`` (E, D, hidden)), so a state dict copies across.

After every forward the module holds ``aux_loss``, the load-balancing loss of that batch
(Switch Transformer, Fedus et al. 2021, eq. 4, as HF Mixtral's ``load_balancing_loss_func``)::

    aux_loss = experts * sum_i f_i * P_i

where ``f_i`` is the number of top-k assignments to expert i divided by the number of tokens
(so the f_i sum to top_k) and ``P_i`` is the router probability of expert i averaged over tokens.
Uniform routing gives top_k. Only ``P_i`` carries a gradient (to the router). A training loop adds
``coef * layer.aux_loss`` to its loss (Mixtral uses coef 0.02, Jamba 0.001).

    >>> from archdsl.spec.model import ModelSettings
    >>> layer = MoE(MoEParams(experts=4, top_k=2), ModelSettings(d_model=64))
    >>> layer(torch.randn(2, 10, 64)).shape, layer.aux_loss.shape
    (torch.Size([2, 10, 64]), torch.Size([]))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archdsl.layers.builtin.moe import MoEParams
from archdsl.nn.linear import Linear
from archdsl.spec.model import ModelSettings


class Experts(nn.Module):
    """The SwiGLU weights of all experts stacked in two tensors (HF ``MixtralExperts`` layout)."""

    def __init__(self, experts: int, d_model: int, hidden: int):
        super().__init__()
        self.gate_up_proj = nn.Parameter(torch.empty(experts, 2 * hidden, d_model))
        self.down_proj = nn.Parameter(torch.empty(experts, d_model, hidden))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.Linear's default, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), expert by expert.
        nn.init.uniform_(self.gate_up_proj, -(self.gate_up_proj.shape[-1] ** -0.5), self.gate_up_proj.shape[-1] ** -0.5)
        nn.init.uniform_(self.down_proj, -(self.down_proj.shape[-1] ** -0.5), self.down_proj.shape[-1] ** -0.5)


class MoE(nn.Module):
    def __init__(self, params: MoEParams, model: ModelSettings):
        super().__init__()
        self.params = params.resolve(model)
        self.n_experts, self.top_k = self.params.experts, self.params.top_k
        self.gate = Linear(model.d_model, self.n_experts, bias=False)  # the router
        self.experts = Experts(self.n_experts, model.d_model, self.params.hidden)
        self.aux_loss: torch.Tensor | None = None  # set by every forward

    def forward(self, x: torch.Tensor, *, reference: bool = False) -> torch.Tensor:
        B, T, D = x.shape
        flat = x.reshape(B * T, D)
        logits = self.gate(flat)  # (N, E)
        # Routing in at least float32, as Mixtral does, so that bf16 ties do not flip experts.
        probs = torch.softmax(logits, dim=-1, dtype=torch.promote_types(logits.dtype, torch.float32))
        top_w, top_i = probs.topk(self.top_k, dim=-1)  # (N, k)
        top_w = top_w / top_w.sum(dim=-1, keepdim=True)
        # Assignments per expert, counted without a host sync (scatter_add, not bincount).
        counts = torch.zeros(self.n_experts, dtype=torch.long, device=x.device)
        counts.scatter_add_(0, top_i.flatten(), torch.ones_like(top_i.flatten()))
        self.aux_loss = self.n_experts * (counts.to(probs.dtype) / flat.shape[0] * probs.mean(dim=0)).sum()
        if reference:
            y = self._experts_reference(flat, top_w, top_i)
        else:
            y = self._experts_grouped(flat, top_w, top_i, counts)
        return y.view(B, T, D)

    def _experts_grouped(self, flat, top_w, top_i, counts) -> torch.Tensor:
        """Sort the N*k (token, expert) assignments by expert and run each expert once on its
        contiguous group of rows: a loop over experts, never over tokens."""
        N, k = top_i.shape
        order = top_i.flatten().argsort(stable=True)  # (N*k,) assignment ids grouped by expert
        rows = flat[order // k]  # (N*k, D) the token of each assignment, gathered
        outs = []
        # One host sync for the group sizes; the loop launches two matmuls per expert hit.
        for e, group in enumerate(rows.split(counts.tolist())):
            if group.shape[0] == 0:
                continue
            gate, up = F.linear(group, self.experts.gate_up_proj[e]).chunk(2, dim=-1)  # (n_e, h) each
            outs.append(F.linear(F.silu(gate) * up, self.experts.down_proj[e]))  # (n_e, D)
        ys = torch.cat(outs)  # (N*k, D) in expert order
        # Undo the sort by a gather with the inverse permutation (deterministic, no atomics),
        # then mix each token's k outputs with its renormalised weights.
        inverse = torch.empty_like(order).scatter_(0, order, torch.arange(order.numel(), device=order.device))
        ys = ys[inverse].view(N, k, -1)  # (N, k, D)
        return (ys * top_w.unsqueeze(-1).to(ys.dtype)).sum(dim=1)

    def _experts_reference(self, flat, top_w, top_i) -> torch.Tensor:
        """Plain twin: token by token, each of its k experts as a matrix-vector SwiGLU."""
        out = []
        for n in range(flat.shape[0]):
            acc = torch.zeros_like(flat[n])
            for j in range(self.top_k):
                e = int(top_i[n, j])
                gate, up = (self.experts.gate_up_proj[e] @ flat[n]).chunk(2)
                acc = acc + top_w[n, j].to(flat.dtype) * (self.experts.down_proj[e] @ (F.silu(gate) * up))
            out.append(acc)
        return torch.stack(out)

    def init_state(self, batch: int, *, max_len: int, device, dtype) -> None:
        return None  # tokens are routed independently: nothing to remember

    def step(self, x: torch.Tensor, state: None) -> tuple[torch.Tensor, None]:
        return self.forward(x[:, None])[:, 0], state  # (B, D) -> (B, D)

    def prefill(self, x: torch.Tensor, state: None) -> tuple[torch.Tensor, None]:
        # no state: the prompt is the sequence forward, which also sets aux_loss for it
        return self.forward(x), state
