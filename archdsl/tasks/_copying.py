"""MAD's selective copying (mad-lab ``generate_copying_instance(selective=True)``).

``to_copy`` tokens are scattered, in order, among blank tokens; after a copy token the model must
write them out in order, one per position, while it reads only blanks. Tokens 0..vocab-3 are
content, vocab-2 the blank, vocab-1 the copy token.
"""

from __future__ import annotations

import torch
from pydantic import Field, model_validator

from archdsl.tasks._base import Batch, SyntheticSettings, Task, register_task


class SelectiveCopyingSettings(SyntheticSettings):
    vocab: int = Field(16, ge=3, le=1_000_000, description="vocabulary (two of them: blank and copy)")
    seq_len: int = Field(256, ge=4, le=1_000_000, description="tokens per sequence")
    to_copy: int = Field(16, ge=1, description="tokens to copy")
    train_examples: int | None = Field(12_800, ge=1, description="size of the training set; none: fresh draws")

    @model_validator(mode="after")
    def _room(self):
        if self.seq_len <= 2 * self.to_copy + 1:
            raise ValueError(f"seq_len must exceed 2 * to_copy + 1 = {2 * self.to_copy + 1}")
        return self


@register_task
class SelectiveCopying(Task):
    name = "mad/selective_copying"
    description = "MAD selective copying: write out the tokens scattered among blanks, in order"
    Settings = SelectiveCopyingSettings

    def generate(self, n: int, generator: torch.Generator, *, test: bool = False) -> Batch:
        s, g = self.settings, generator
        blank, copy_token = s.vocab - 2, s.vocab - 1
        region = s.seq_len - s.to_copy - 1  # where the tokens to copy hide among blanks
        content = torch.randint(s.vocab - 2, (n, s.to_copy), generator=g)
        where = torch.rand(n, region, generator=g).argsort(1)[:, : s.to_copy].sort(1).values
        inputs = torch.full((n, s.seq_len), blank)
        inputs.scatter_(1, where, content)
        inputs[:, region] = copy_token
        targets = torch.zeros(n, s.seq_len, dtype=torch.long)
        targets[:, region + 1 :] = content  # read a blank, write the next token to copy
        mask = torch.zeros(n, s.seq_len, dtype=torch.bool)
        mask[:, region + 1 :] = True
        return Batch(inputs, targets, mask)
