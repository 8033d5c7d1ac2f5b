"""Byte-level language modelling on a file the user names (``text:PATH``).

The file's bytes are the tokens (vocabulary 256). The last ``held_out`` fraction is the test
set, cut into consecutive windows; training windows start anywhere in the rest. Metrics: the
mean cross-entropy per byte (``loss``, nats) and bits per byte (``bpb`` = loss / ln 2).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar

import torch
from pydantic import Field

from archdsl.tasks._base import Batch, Task, TaskError, TaskSettings, register_task

MAX_BYTES = 2**31  # a larger corpus belongs in a real data pipeline


class TextSettings(TaskSettings):
    path: str = Field(..., description="the text file (text:PATH)")
    seq_len: int = Field(256, ge=2, le=1_000_000, description="bytes per training window")
    held_out: float = Field(0.1, gt=0.0, lt=1.0, description="fraction at the end of the file used as test set")
    test_examples: int = Field(64, ge=1, le=1_000_000, description="at most this many consecutive held-out windows")


@register_task
class Text(Task):
    name = "text"
    description = "byte-level language modelling on a file: text:PATH (the last 10% is the test set)"
    Settings = TextSettings
    metrics: ClassVar[dict[str, str]] = {"loss": "minimize", "bpb": "minimize"}
    main_metric = "bpb"

    def __init__(self, settings: TextSettings):
        super().__init__(settings)
        path = Path(settings.path)
        try:
            with path.open("rb") as file:
                data = file.read(MAX_BYTES + 1)
        except OSError as exc:
            raise TaskError(f"task text:{path}: cannot read '{path}': {exc.strerror or exc}") from None
        if len(data) > MAX_BYTES:
            raise TaskError(f"task text:{path}: the file is larger than {MAX_BYTES // 2**30} GiB")
        window = settings.seq_len + 1
        split = len(data) - int(len(data) * settings.held_out)
        if split < window + 1 or len(data) - split < window:
            need = math.ceil(window / settings.held_out) + window
            raise TaskError(
                f"task text:{path}: {len(data):,} bytes are too few for seq_len={settings.seq_len} "
                f"(need about {need:,}: a training and a held-out window); lower seq_len=..."
            )
        self.data = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        self.split = split

    @property
    def vocab_size(self) -> int:
        return 256

    def _windows(self, starts: torch.Tensor) -> Batch:
        rows = self.data[starts[:, None] + torch.arange(self.settings.seq_len + 1)].long()
        return Batch(rows[:, :-1], rows[:, 1:], torch.ones(len(starts), self.settings.seq_len, dtype=torch.bool))

    def generate(self, n: int, generator: torch.Generator, *, test: bool = False) -> Batch:
        window = self.settings.seq_len + 1
        if test:
            count = min(n, (len(self.data) - self.split) // window)
            return self._windows(self.split + window * torch.arange(count))
        return self._windows(torch.randint(self.split - window + 1, (n,), generator=generator))

    def test_set(self) -> Batch:
        if self._test is None:
            self._test = self.generate(self.settings.test_examples, torch.Generator(), test=True)
        return self._test

    def train_batches(self, batch: int, seed: int):
        generator = torch.Generator().manual_seed(seed)
        while True:  # windows are drawn anew every step: the training set is the file
            yield self.generate(batch, generator)

    def evaluate(self, logits: torch.Tensor, batch: Batch) -> dict[str, float]:
        sums = super().evaluate(logits, batch)
        return {"loss": sums["loss"], "count": sums["count"]}

    def finish(self, sums: dict[str, float]) -> dict[str, float]:
        loss = sums["loss"] / max(sums["count"], 1.0)
        return {"loss": loss, "bpb": loss / math.log(2)}
