"""Multi-query associative recall (Zoology, Arora et al. 2023, ``zoology/data/multiquery_ar.py``).

Each sequence starts with ``pairs`` key-value pairs (keys from the lower half of the vocabulary,
values from the upper half, no key or value twice), then the query region: each key appears once
more, at a gap drawn from a power law (``p(g) ~ a * g**(a-1)``, a = 0.01: most queries come
early, a few far away), and the model must answer with its value right there. The other
positions of the query region hold random tokens. Loss and accuracy count the answers only.

Zoology's paper settings are ``vocab=8192`` with ``(seq_len, pairs)`` = (64, 4), (128, 8),
(256, 16); the defaults here are CPU-sized.
"""

from __future__ import annotations

import torch
from pydantic import Field, model_validator

from archdsl.tasks._base import Batch, SyntheticSettings, Task, register_task


class MQARSettings(SyntheticSettings):
    vocab: int = Field(256, ge=8, le=1_000_000, description="vocabulary: keys in the lower half, values in the upper")
    seq_len: int = Field(64, ge=8, le=1_000_000, description="tokens per sequence (even)")
    pairs: int = Field(8, ge=1, description="key-value pairs per sequence (all queried)")
    power_a: float = Field(0.01, gt=0.0, le=1.0, description="power law of the query gaps (1: uniform)")
    random_non_queries: bool = Field(True, description="fill the query region between queries with random tokens")
    test_examples: int = Field(1000, ge=1, le=1_000_000, description="size of the fixed test set")

    @model_validator(mode="after")
    def _fits(self) -> MQARSettings:
        if self.seq_len % 2:
            raise ValueError(f"seq_len must be even, got {self.seq_len}")
        if self.vocab <= self.seq_len:
            raise ValueError(f"vocab ({self.vocab}) must exceed seq_len ({self.seq_len}), as in Zoology")
        if 4 * self.pairs > self.seq_len:
            raise ValueError(f"pairs={self.pairs} needs seq_len >= {4 * self.pairs} (pairs, then their queries)")
        if self.pairs > self.vocab // 2 - 1:
            raise ValueError(f"pairs={self.pairs} needs vocab >= {2 * self.pairs + 2} (distinct keys)")
        return self


def distinct(n: int, k: int, choices: int, generator: torch.Generator) -> torch.Tensor:
    """(n, k) integers in 0..choices-1, distinct within each row, uniformly drawn."""
    return torch.rand(n, choices, generator=generator).argsort(dim=1)[:, :k]


@register_task
class MQAR(Task):
    name = "mqar"
    description = "multi-query associative recall (Zoology): answer each query with its key's value"
    Settings = MQARSettings

    def generate(self, n: int, generator: torch.Generator, *, test: bool = False) -> Batch:
        s = self.settings
        half, context = s.vocab // 2, 2 * s.pairs
        keys = distinct(n, s.pairs, half - 1, generator) + 1  # 0 is Zoology's filler; never a key
        values = distinct(n, s.pairs, s.vocab - half, generator) + half
        # query gaps: `pairs` distinct slots of the query region, drawn without replacement with
        # power-law weights (Gumbel top-k draws exactly that)
        space = (s.seq_len - context) // 2
        gap = torch.arange(1, space + 1, dtype=torch.float64)
        log_p = (torch.log(torch.tensor(s.power_a, dtype=torch.float64)) + (s.power_a - 1) * torch.log(gap)).float()
        gumbel = -torch.log(-torch.log(torch.rand(n, space, generator=generator).clamp_min(1e-20)))
        slots = (log_p + gumbel).topk(s.pairs, dim=1).indices
        where = context + 2 * slots  # (n, pairs) positions of the queries

        if s.random_non_queries:
            inputs = torch.randint(s.vocab, (n, s.seq_len), generator=generator)
        else:
            inputs = torch.zeros(n, s.seq_len, dtype=torch.long)
        inputs[:, 0:context:2] = keys
        inputs[:, 1:context:2] = values
        inputs.scatter_(1, where, keys)
        targets = torch.zeros(n, s.seq_len, dtype=torch.long)
        targets.scatter_(1, where, values)  # the answer is predicted at the query itself
        mask = torch.zeros(n, s.seq_len, dtype=torch.bool)
        mask.scatter_(1, where, True)
        return Batch(inputs, targets, mask)
