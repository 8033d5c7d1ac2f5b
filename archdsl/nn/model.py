"""The model every spec builds into: embedding -> residual sub-layers -> final norm -> LM head."""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch
from torch import nn

from archdsl.errors import GenerationError
from archdsl.nn.linear import Linear
from archdsl.nn.norm import RMSNorm


class ArchModel(nn.Module):
    """A causal language model. ``model(ids)`` with ids (B, T) returns logits (B, T, vocab).

    ``layers`` may hold the same module at several indices (``shared(...)``): torch counts and
    trains those parameters once. Generation keeps one state per index, since a shared layer at
    two depths sees two different sequences of inputs.
    """

    def __init__(self, settings, sublayers: list[nn.Module]):
        super().__init__()
        self.settings = settings
        self.embed = nn.Embedding(settings.vocab, settings.d_model)
        self.layers = nn.ModuleList(sublayers)
        self.norm = RMSNorm(settings.d_model, settings.norm_eps)
        self.lm_head = Linear(settings.d_model, settings.vocab, bias=False)
        # Llama's initialiser for the two vocabulary matrices; layers initialise themselves.
        nn.init.normal_(self.embed.weight, std=0.02)
        if settings.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        else:
            nn.init.normal_(self.lm_head.weight, std=0.02)

    def forward(self, ids: torch.Tensor, *, reference: bool = False) -> torch.Tensor:
        self._check_ids(ids, "the model")
        x = self.embed(ids)  # (B, T, D)
        total_aux: torch.Tensor | float = 0.0
        for layer, aux_modules in zip(self.layers, self._aux_modules()):
            x = layer(x, reference=reference)
            # read after every sub-layer: a shared MoE used at two depths overwrites its
            # aux_loss on the second call, and both calls' losses belong to the model's
            for module in aux_modules:
                total_aux = total_aux + module.aux_loss
        self._last_aux_loss = total_aux
        return self.lm_head(self.norm(x))  # (B, T, vocab)

    def _check_ids(self, ids: Any, who: str) -> None:
        """Token ids must be an integer tensor (batch, length >= 1) with values in 0..vocab-1: an
        id past the vocabulary is otherwise an IndexError on CPU and a device assert on GPU."""
        if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.shape[1] < 1 or ids.is_floating_point():
            got = f"{tuple(ids.shape)} of {ids.dtype}" if isinstance(ids, torch.Tensor) else type(ids).__name__
            raise GenerationError(f"{who} takes integer token ids of shape (batch, length >= 1), got {got}")
        if ids.dtype not in (torch.int64, torch.int32):  # what the embedding takes
            raise GenerationError(f"{who} takes token ids as torch.long (or int32), got a tensor of {ids.dtype}")
        if ids.numel() == 0 or ids.device.type == "meta" or torch.compiler.is_compiling():
            return  # nothing to look at (meta: shapes only); a compiled graph must not branch on data
        low, high = (int(v) for v in torch.aminmax(ids))
        vocab = self.settings.vocab
        if low < 0 or high >= vocab:
            raise GenerationError(f"token ids must be in 0..{vocab - 1} (vocab={vocab}), got {low}..{high}")

    def _aux_modules(self) -> list[list[nn.Module]]:
        """Per sub-layer, the modules that leave an auxiliary loss (MoE load balancing)."""
        if getattr(self, "_aux_cache", None) is None:
            self._aux_cache = [[m for m in layer.modules() if hasattr(m, "aux_loss")] for layer in self.layers]
        return self._aux_cache

    def aux_loss(self) -> torch.Tensor | float:
        """Sum of the auxiliary losses (MoE load balancing) of the last forward pass, one term per
        use of each layer; add ``coef * model.aux_loss()`` to the training loss."""
        return getattr(self, "_last_aux_loss", 0.0)

    # --- generation --------------------------------------------------------------------------

    def init_state(self, batch: int, max_len: int) -> list[Any]:
        """One state per sub-layer index, sized for ``max_len`` tokens (prompt + new)."""
        p = next(self.parameters())
        return [layer.init_state(batch, max_len=max_len, device=p.device, dtype=p.dtype) for layer in self.layers]

    def prefill(self, ids: torch.Tensor, state: list[Any]) -> torch.Tensor:
        """Logits (B, T, vocab) of a whole prompt, filling ``state`` on the way. Sub-layers whose
        layers have a ``prefill`` run their fast path; the others step through the prompt."""
        x = self.embed(ids)  # (B, T, D)
        for i, layer in enumerate(self.layers):
            if layer.can_prefill():
                x, state[i] = layer.prefill(x, state[i])
            else:
                steps = []
                for t in range(x.shape[1]):
                    y, state[i] = layer.step(x[:, t], state[i])
                    steps.append(y)
                x = torch.stack(steps, dim=1)
        return self.lm_head(self.norm(x))

    def step(self, token: torch.Tensor, state: list[Any]) -> torch.Tensor:
        """Logits (B, vocab) for one token per sequence (B,), advancing ``state`` in place."""
        x = self.embed(token)  # (B, D)
        for i, layer in enumerate(self.layers):
            x, state[i] = layer.step(x, state[i])
        return self.lm_head(self.norm(x))

    @torch.no_grad()
    def generate(
        self,
        ids: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Continue ``ids`` (B, T) by ``max_new_tokens`` tokens; temperature 0 is greedy."""
        vocab = self.settings.vocab
        self._check_ids(ids, "generate")
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, numbers.Integral) or max_new_tokens < 0:
            raise GenerationError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, (int, float))
            or not math.isfinite(temperature)
            or temperature < 0
        ):
            raise GenerationError(f"temperature must be a finite number >= 0, got {temperature!r}")
        if top_k is not None and (
            isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or not 1 <= top_k <= vocab
        ):
            raise GenerationError(f"top_k must be an integer in 1..{vocab}, got {top_k!r}")
        max_new_tokens = int(max_new_tokens)
        batch, length = ids.shape
        self._check_generation_fits(batch, length, max_new_tokens)
        state = self.init_state(batch, length + max_new_tokens)
        logits = self.prefill(ids, state)[:, -1]
        out = [ids]
        for _ in range(max_new_tokens):
            token = _sample(logits, temperature, top_k, generator)
            out.append(token[:, None])
            logits = self.step(token, state)
        return torch.cat(out, dim=1)

    def _check_generation_fits(self, batch: int, length: int, max_new_tokens: int) -> None:
        """Refuse before allocating: the state for prompt + new tokens (KV caches grow with it)
        and the prompt's logits, counted analytically as ``build`` counts weights."""
        graph = getattr(self, "graph", None)
        if graph is None:
            return
        from archdsl.costing.model import MAX_ARGUMENT, cost
        from archdsl.errors import LimitError
        from archdsl.nn.memory import check_fits

        what = f"generating {max_new_tokens:,} tokens after a prompt of {batch} x {length}"
        if length + max_new_tokens > MAX_ARGUMENT:
            raise LimitError(f"{what} is past the limit of {MAX_ARGUMENT:,} positions (2^32)")
        p = next(self.parameters())
        state = cost(graph, seq_len=1, context=length + max_new_tokens, state_bytes=p.element_size()).state_bytes
        logits = length * self.settings.vocab * 4
        check_fits(batch * (state + logits), what, device=p.device)


def _sample(logits: torch.Tensor, temperature: float, top_k: int | None, generator) -> torch.Tensor:
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits.float() / temperature
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)[:, 0]
