"""MAD's memorization (mad-lab ``generate_memorization_instance``): facts in the weights.

A fixed mapping from keys to values (drawn once from ``facts_seed``, the same for training and
test) must be learnt: each sequence is ``key, insert`` pairs, and at every insert token the model
writes the key's value. Nothing in the sequence tells the value; only the weights can.
Keys are the lower half of vocab-1 tokens, values the upper half, vocab-1 the insert token.
"""

from __future__ import annotations

import torch
from pydantic import Field, model_validator

from archdsl.tasks._base import Batch, SyntheticSettings, Task, register_task


class MemorizationSettings(SyntheticSettings):
    vocab: int = Field(256, ge=4, le=1_000_000, description="vocabulary (keys, values and the insert token)")
    seq_len: int = Field(32, ge=2, le=1_000_000, description="tokens per sequence (even)")
    train_examples: int | None = Field(256, ge=1, description="size of the training set; none: fresh draws")
    facts_seed: int = Field(12_345, ge=0, description="seed of the key -> value mapping (MAD's default seed)")

    @model_validator(mode="after")
    def _even(self):
        if self.seq_len % 2:
            raise ValueError(f"seq_len must be even, got {self.seq_len}")
        return self


@register_task
class Memorization(Task):
    name = "mad/memorization"
    description = "MAD memorization: the value of each key from a fixed mapping learnt in the weights"
    Settings = MemorizationSettings

    def __init__(self, settings: MemorizationSettings):
        super().__init__(settings)
        keys, values = self._split()
        g = torch.Generator().manual_seed(settings.facts_seed)
        self.facts = torch.randperm(values, generator=g)[:keys] + keys  # key -> value, a value at most once

    def _split(self) -> tuple[int, int]:
        usable = self.settings.vocab - 1
        return usable // 2, usable - usable // 2

    def generate(self, n: int, generator: torch.Generator, *, test: bool = False) -> Batch:
        s = self.settings
        keys, _ = self._split()
        key = torch.randint(keys, (n, s.seq_len // 2), generator=generator)
        inputs = torch.stack([key, torch.full_like(key, s.vocab - 1)], 2).flatten(1)
        targets = torch.zeros_like(inputs)
        targets[:, 1::2] = self.facts[key]  # written at the insert token
        mask = torch.zeros_like(inputs, dtype=torch.bool)
        mask[:, 1::2] = True
        return Batch(inputs, targets, mask)
