"""``archdsl cost --measure``: time the built model on this machine beside the analytic FLOPs.

This is the one place of the cost stage that builds a module. It is a sanity check of the
order of magnitude (achieved FLOP/s, and the training step against three forwards), not a
benchmark: one warm-up, then the best of a few runs (the least disturbed by other work on a
shared machine, as ``timeit`` advises).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from archdsl.costing.model import cost


@dataclass(frozen=True)
class Measurement:
    seq_len: int
    batch: int
    device: str
    forward_s: float  # one forward pass without gradients
    train_s: float  # forward + loss + backward + AdamW step
    forward_flops: float  # analytic, for the batch
    train_flops: float

    @property
    def forward_flops_per_s(self) -> float:
        return self.forward_flops / self.forward_s

    @property
    def train_flops_per_s(self) -> float:
        return self.train_flops / self.train_s

    @property
    def train_over_forward(self) -> float:
        """Measured training step time over forward time; the analytic model says 3."""
        return self.train_s / self.forward_s

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq_len": self.seq_len,
            "batch": self.batch,
            "device": self.device,
            "forward_s": self.forward_s,
            "train_s": self.train_s,
            "forward_flops": self.forward_flops,
            "train_flops": self.train_flops,
            "forward_gflops_per_s": self.forward_flops_per_s / 1e9,
            "train_gflops_per_s": self.train_flops_per_s / 1e9,
            "train_over_forward": self.train_over_forward,
        }

    def __str__(self) -> str:
        return (
            f"measured on {self.device}, batch {self.batch} x {self.seq_len} tokens: "
            f"forward {1e3 * self.forward_s:.1f} ms ({self.forward_flops / 1e9:.3g} GFLOP analytic, "
            f"{self.forward_flops_per_s / 1e9:.1f} GFLOP/s); "
            f"training step {1e3 * self.train_s:.1f} ms ({self.train_flops / 1e9:.3g} GFLOP, "
            f"{self.train_flops_per_s / 1e9:.1f} GFLOP/s); "
            f"step / forward = {self.train_over_forward:.2f} (analytic 3.00)"
        )


def _best_time(fn, repeats: int, sync) -> float:
    fn()  # warm-up: allocator, kernels, lazy initialisation
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(spec: Any, *, seq_len: int, batch: int = 1, repeats: int = 5, device: str | None = None) -> Measurement:
    """Build ``spec``, then time a forward and a training step of ``batch`` random sequences."""
    import torch

    import archdsl

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    analytic = cost(spec, seq_len=seq_len, batch=batch)
    model = archdsl.build(spec).to(device=device, dtype=dtype)
    vocab = analytic.vocab
    ids = torch.randint(0, vocab, (batch, seq_len), device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def forward() -> None:
        with torch.no_grad():
            model(ids)

    def train_step() -> None:
        # all T positions, so the step does the work the analytic cost counts (targets are
        # the ids shifted by one; the loss value itself does not matter here)
        logits = model(ids)  # (B, T, vocab)
        target = torch.roll(ids, -1, dims=1)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab).float(), target.reshape(-1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    tokens = batch * seq_len
    return Measurement(
        seq_len=seq_len,
        batch=batch,
        device=device,
        forward_s=_best_time(forward, repeats, sync),
        train_s=_best_time(train_step, repeats, sync),
        forward_flops=analytic.forward_flops * tokens,
        train_flops=analytic.train_flops * tokens,
    )
