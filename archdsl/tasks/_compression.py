"""MAD's compression, as a causal language-modelling task.

A random sequence of ``seq_len - 1`` tokens ends with a compression token; then the model
reproduces the sequence, token after token (it reads the tokens it should have written). MAD
trains compression with an encoder-decoder bottleneck (the decoder sees only the compression
token's vector); archdsl keeps one causal model for every task, so here the bottleneck is what a
recurrent layer must carry across the compression token, while attention may look back (it
solves the task easily; that is the known answer for attention).
"""

from __future__ import annotations

import torch
from pydantic import Field

from archdsl.tasks._base import Batch, SyntheticSettings, Task, register_task, shift


class CompressionSettings(SyntheticSettings):
    vocab: int = Field(16, ge=2, le=1_000_000, description="vocabulary (the last token compresses)")
    seq_len: int = Field(32, ge=2, le=1_000_000, description="tokens to compress, compression token included")
    train_examples: int | None = Field(12_800, ge=1, description="size of the training set; none: fresh draws")


@register_task
class Compression(Task):
    name = "mad/compression"
    description = "MAD compression: reproduce a random sequence after a compression token"
    Settings = CompressionSettings

    @property
    def seq_len(self) -> int:
        return 2 * (self.settings.seq_len - 1)

    def generate(self, n: int, generator: torch.Generator, *, test: bool = False) -> Batch:
        s = self.settings
        content = torch.randint(s.vocab - 1, (n, s.seq_len - 1), generator=generator)
        compress = torch.full((n, 1), s.vocab - 1)
        tokens = torch.cat([content, compress, content], 1)
        answers = torch.zeros_like(tokens, dtype=torch.bool)
        answers[:, s.seq_len :] = True
        return shift(tokens, answers)
