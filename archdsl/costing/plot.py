"""Cost against sequence length, for one or several models side by side (matplotlib, Agg).

Three panels share a log-scaled length axis: training FLOPs per token, inference state per
sequence, and attention's share of the forward FLOPs. A dot marks where a model's attention
FLOPs overtake everything else (its share crosses one half): past it, the quadratic term of
attention dominates and a hybrid with fewer attention layers pulls ahead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from archdsl.costing.model import ModelCost, cost
from archdsl.errors import ArchDSLError


def length_grid(seqs: Sequence[int], points: int = 33) -> list[int]:
    """Lengths spaced evenly on a log axis over the range of ``seqs`` (a decade each side of a
    single length), always including the asked lengths."""
    lo, hi = min(seqs), max(seqs)
    if lo == hi:
        lo, hi = max(1, lo // 8), hi * 8
    step = (math.log(hi) - math.log(lo)) / (points - 1)
    grid = {round(math.exp(math.log(lo) + i * step)) for i in range(points)}
    return sorted(grid | set(seqs))


def crossover(costs: Sequence[ModelCost]) -> int | None:
    """The first length at which attention takes half of the forward FLOPs (linear between
    grid points), or None if it never does in the range."""
    previous = None
    for c in costs:
        share = c.attention_share
        if share >= 0.5:
            if previous is None:
                return c.ctx.seq_len
            (s0, a0), (s1, a1) = previous, (c.ctx.seq_len, share)
            return round(s0 + (0.5 - a0) * (s1 - s0) / (a1 - a0))
        previous = (c.ctx.seq_len, share)
    return None


def algorithm_switches(graph: Any) -> dict[int, str]:
    """Lengths at which a layer changes algorithm, so its FLOPs per token step (the formulas
    count what runs, exactly): the ``ssm`` chunk-to-chunk pass is one matrix product for up to
    MAX_MATRIX_CHUNKS states passed on (a forward passes n - 2 of its n chunks' states) and a
    loop past it, so its FLOPs drop by that term at (MAX_MATRIX_CHUNKS + 2) L + 1 tokens, with L
    the chunk a long sequence runs (``chunk_length``: 33,025 tokens for Mamba-2's state 128 and
    head_dim 64 at d_model 64, whose default chunk of 256 runs as chunks of 128)."""
    from archdsl.layers.builtin.ssm import MAX_MATRIX_CHUNKS, chunk_length

    out: dict[int, str] = {}
    for _, attrs in graph.nodes(data=True):
        if attrs.get("kind") == "layer" and attrs.get("type") == "ssm":
            p = attrs["params"]
            heads = p.expand * graph.graph["model"].d_model // p.head_dim
            L = chunk_length(2**62, p.chunk, heads, p.head_dim, p.groups, p.state)
            out[(MAX_MATRIX_CHUNKS + 2) * L + 1] = (
                f"ssm: chunk pass switches from a matrix product to a loop (> {MAX_MATRIX_CHUNKS + 2} chunks)"
            )
    return out


def plot_costs(
    models: Mapping[str, Any] | Sequence[tuple[str, Any]], seqs: Sequence[int], path: str | Path, *, batch: int = 1
) -> Path:
    """Draw the three panels for ``models`` (name -> Spec or graph, or (name, target) pairs) over
    the range of ``seqs`` and save to ``path``: exactly that path, in the format its suffix names
    (PNG when it has none). Returns the path."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, safe on servers and in tests
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    from archdsl.costing.report import seq_label

    pairs = list(models.items()) if isinstance(models, Mapping) else list(models)
    costed = [(name, cost(target, seq_len=min(seqs), batch=batch)) for name, target in pairs]
    grid = length_grid(seqs)
    switches: dict[int, str] = {}
    for _, base in costed:
        switches.update(algorithm_switches(base.graph))
    switches = {n: why for n, why in switches.items() if grid[0] < n <= grid[-1]}
    # both sides of a switch, so that the curve shows a step where the algorithm changes
    grid = sorted(set(grid) | {n for n in switches} | {n - 1 for n in switches})
    fig, (ax_flops, ax_state, ax_share) = plt.subplots(1, 3, figsize=(16, 4.8), constrained_layout=True)
    for name, base in costed:
        series = [base.at(n) for n in grid]
        label = f"{name} ({base.params / 1e6:.1f}M params)"
        (line,) = ax_flops.plot(grid, [c.train_flops for c in series], label=label)
        ax_state.plot(grid, [c.state_bytes for c in series], color=line.get_color(), label=label)
        ax_share.plot(grid, [c.attention_share for c in series], color=line.get_color(), label=label)
        at = crossover(series)
        if at is not None:
            c = base.at(at)
            ax_flops.plot([at], [c.train_flops], "o", color=line.get_color())
            ax_share.plot([at], [c.attention_share], "o", color=line.get_color())
            ax_flops.annotate(f"attn > rest @ {at:,}", (at, c.train_flops), textcoords="offset points",
                              xytext=(-10, 8), fontsize=8, color=line.get_color(), ha="right")  # fmt: skip
    for ax, title, ylabel in (
        (ax_flops, "training FLOPs per token", "FLOPs / token"),
        (ax_state, "inference state per sequence (KV + recurrent)", "bytes"),
        (ax_share, "attention share of forward FLOPs", "share"),
    ):
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: seq_label(int(round(v)))))
        ax.set_xlabel("sequence length / context (tokens)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        for s in seqs:
            ax.axvline(s, color="grey", lw=0.5, ls=":")
    for n, why in sorted(switches.items()):
        ax_flops.axvline(n, color="black", lw=0.8, ls="--")
        ax_flops.annotate(f"{why}\n(FLOPs step down at {n:,} tokens)", (n, 0.02), xycoords=("data", "axes fraction"),
                          xytext=(4, 0), textcoords="offset points", fontsize=7, rotation=90, va="bottom")  # fmt: skip
    ax_flops.set_yscale("log")
    ax_state.set_yscale("log")
    ax_share.set_ylim(0, 1)
    ax_share.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax_flops.legend(fontsize=8)
    path = Path(path)
    try:
        # without a suffix matplotlib would append ".png" and write another file than named
        fig.savefig(path, dpi=120, format=None if path.suffix else "png")
    except (OSError, ValueError) as exc:  # a missing folder, an unknown image format
        raise ArchDSLError(f"cannot write the plot to '{path}': {exc}") from None
    finally:
        plt.close(fig)
    return path
