"""The cost of a graph node: a small value that adds (after tinygrad's ``Estimates``).

Every field is per token or per sequence as its name says, so costs of nodes sum to the cost
of the model. FLOPs count a multiply-add as two operations, as ``torch.utils.flop_counter`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class CostContext:
    """The situation a cost is asked for."""

    seq_len: int = 2048  # tokens per training / prefill sequence
    batch: int = 1  # sequences per step (activation memory scales with it)
    context: int | None = None  # inference context length for state and decode; None: seq_len
    act_bytes: int = 2  # bytes per activation element (bf16)
    state_bytes: int = 2  # bytes per element of the inference state (KV cache, SSM state)

    @property
    def context_len(self) -> int:
        return self.seq_len if self.context is None else self.context


@dataclass(frozen=True)
class Cost:
    """Analytic cost of one node, or of many added together."""

    params: int = 0  # weights (a shared group is counted once by the aggregator)
    embedding_params: int = 0  # of ``params``, those in the embedding and LM head
    matmul_flops: float = 0.0  # forward, per token: dense matrix products (2 per multiply-add)
    attn_flops: float = 0.0  # forward, per token: attention scores and weighted values
    scan_flops: float = 0.0  # forward, per token: state-space scans, convolutions, gates
    activation_bytes: float = 0.0  # training: activations kept for backward, per sequence
    state_bytes: float = 0.0  # inference state per sequence at the context length
    decode_flops: float = 0.0  # FLOPs to generate one token at the context length

    @property
    def forward_flops(self) -> float:
        """Forward FLOPs per token at the sequence length."""
        return self.matmul_flops + self.attn_flops + self.scan_flops

    @property
    def train_flops(self) -> float:
        """Training FLOPs per token: forward plus a backward of twice the forward."""
        return 3.0 * self.forward_flops

    def __add__(self, other: Cost) -> Cost:
        if not isinstance(other, Cost):
            return NotImplemented
        # fields(Cost), not fields(self): a subclass with more fields (the aggregator's
        # ModelCost) adds as the plain Cost it is
        return Cost(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(Cost)})

    def __radd__(self, other: object) -> Cost:
        # lets ``sum(costs)`` start from 0
        if other == 0:
            return self
        return NotImplemented

    def scale(self, factor: float) -> Cost:
        return Cost(**{f.name: type(getattr(self, f.name))(getattr(self, f.name) * factor) for f in fields(Cost)})
