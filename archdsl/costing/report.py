"""Cost reports: rich tables for people, one JSON object for programs.

    >>> costs = [archdsl.cost(spec, seq_len=s) for s in (2048, 8192)]     # doctest: +SKIP
    >>> console.print(*cost_tables("llama.arch", costs))                   # doctest: +SKIP

Every ``ModelCost`` of one report shares a model; they differ by sequence length, and the
context of each is its sequence length (state and decode FLOPs are shown "at" that length).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table

from archdsl.costing.budget import KEYS, BudgetCheck, format_bytes, format_count, format_length
from archdsl.costing.model import ModelCost

SCHEMA = "archdsl.cost/1"


def seq_label(n: int) -> str:
    """2048 -> '2k', 1048576 -> '1M', 3000 -> '3000' (the binary units of ``--seq``)."""
    return format_length(n)


def _headline(name: str, c: ModelCost) -> str:
    return (
        f"{name}: {c.n_layers} layers, {format_count(c.params)} params "
        f"({format_count(c.non_embedding_params)} non-embedding), d_model {c.d_model}, vocab {c.vocab}; "
        f"training memory {format_bytes(c.training_memory(2))} (bf16 weights + grads + AdamW), "
        f"batch {c.ctx.batch}"
    )


def type_table(name: str, costs: Sequence[ModelCost]) -> Table:
    """Rows per layer type and a total; training FLOPs per token and inference state per
    sequence at each length (forward FLOPs are a third of training FLOPs)."""
    first = costs[0]
    table = Table(
        title=_headline(name, first),
        title_justify="left",
        caption="train: training FLOPs per token (3x forward); state: inference state per sequence at that context",
        caption_justify="left",
        show_footer=True,
    )
    counts = first.count_by_type()
    per_seq = [c.by_type() for c in costs]
    kinds = list(per_seq[0])
    table.add_column("type", footer="total")
    table.add_column("count", justify="right", footer=str(first.n_layers))  # total: layer calls
    table.add_column("params", justify="right", footer=format_count(first.params))
    for c in costs:
        table.add_column(f"train\n@{seq_label(c.ctx.seq_len)}", justify="right", footer=format_count(c.train_flops))
    for c in costs:
        table.add_column(f"state\n@{seq_label(c.ctx.context_len)}", justify="right", footer=format_bytes(c.state_bytes))
    for kind in kinds:
        row = [kind, str(counts.get(kind, 0)), format_count(per_seq[0][kind].params)]
        row += [format_count(t[kind].train_flops) for t in per_seq]
        row += [format_bytes(t[kind].state_bytes) if t[kind].state_bytes else "-" for t in per_seq]
        table.add_row(*row)
    return table


def seq_table(costs: Sequence[ModelCost]) -> Table:
    """Model totals at each length: FLOPs, attention's share, activations, KV and state, decode."""
    batch = costs[0].ctx.batch
    table = Table(title_justify="left")
    for header in (
        "seq",
        "fwd FLOP/tok",
        "train FLOP/tok",
        "attn share",
        f"act mem\n(batch {batch})",
        "KV cache\n/seq",
        "recurrent\nstate /seq",
        "decode\nFLOP/tok",
    ):
        table.add_column(header, justify="right")
    for c in costs:
        table.add_row(
            seq_label(c.ctx.seq_len),
            format_count(c.forward_flops),
            format_count(c.train_flops),
            f"{100 * c.attention_share:.1f}%",
            format_bytes(c.activation_memory),
            format_bytes(c.kv_bytes),
            format_bytes(c.recurrent_state_bytes),
            format_count(c.decode_flops),
        )
    return table


def budget_table(check: BudgetCheck) -> Table:
    table = Table(title=f"budget: {'ok' if check.ok else 'OVER'}", title_justify="left")
    for header in ("limit", "measured", "ratio", ""):
        table.add_column(header, justify="right" if header in ("measured", "ratio") else "left")
    broken = {id(v.limit) for v in check.violations}
    for limit, value in check.values:
        shown = format_bytes(value) if KEYS[limit.key].unit == "bytes" else format_count(value)
        ratio = f"{value / limit.value:.3g}x" if limit.value else "-"
        table.add_row(limit.label, shown, ratio, "[red]over[/red]" if id(limit) in broken else "[green]ok[/green]")
    return table


def cost_tables(name: str, costs: Sequence[ModelCost], check: BudgetCheck | None = None) -> list[Table]:
    tables = [type_table(name, costs), seq_table(costs)]
    if check is not None:
        tables.append(budget_table(check))
    return tables


# ---- JSON ----------------------------------------------------------------------------------


def _at(c: ModelCost) -> dict[str, Any]:
    types = {}
    for kind, t in c.by_type().items():
        types[kind] = {
            "forward_flops_per_token": t.forward_flops,
            "train_flops_per_token": t.train_flops,
            "activation_bytes_per_seq": t.activation_bytes,
            "state_bytes_per_seq": t.state_bytes,
            "decode_flops_per_token": t.decode_flops,
        }
    return {
        "seq_len": c.ctx.seq_len,
        "context": c.ctx.context_len,
        "forward_flops_per_token": c.forward_flops,
        "train_flops_per_token": c.train_flops,
        "matmul_flops_per_token": c.matmul_flops,
        "attn_flops_per_token": c.attn_flops,
        "scan_flops_per_token": c.scan_flops,
        "attention_share": c.attention_share,
        "activation_bytes": c.activation_memory,
        "state_bytes_per_seq": c.state_bytes,
        "kv_bytes_per_seq": c.kv_bytes,
        "recurrent_state_bytes_per_seq": c.recurrent_state_bytes,
        "decode_flops_per_token": c.decode_flops,
        "types": types,
    }


def model_json(name: str, costs: Sequence[ModelCost], check: BudgetCheck | None = None) -> dict[str, Any]:
    """One model's figures; keys are stable (add, never rename)."""
    first = costs[0]
    counts = first.count_by_type()
    out: dict[str, Any] = {
        "name": name,
        "d_model": first.d_model,
        "vocab": first.vocab,
        "layers": first.n_layers,
        "params": first.params,
        "non_embedding_params": first.non_embedding_params,
        "embedding_params": first.embedding_params,
        "weight_bytes_bf16": first.weight_memory(2),
        "training_memory_bytes": first.training_memory(2),
        "types": {k: {"count": counts.get(k, 0), "params": t.params} for k, t in first.by_type().items()},
        "at": [_at(c) for c in costs],
    }
    if check is not None:
        out["budget"] = budget_json(check)
    return out


def budget_json(check: BudgetCheck) -> dict[str, Any]:
    broken = {id(v.limit) for v in check.violations}
    return {
        "text": check.budget.text,
        "ok": check.ok,
        "limits": [
            {
                "limit": limit.text,
                "label": limit.label,
                "key": limit.key,
                "at": limit.at,
                "op": limit.op,
                "bound": limit.value,
                "value": value,
                "ratio": value / limit.value if limit.value else None,
                "ok": id(limit) not in broken,
            }
            for limit, value in check.values
        ],
    }


def report_json(models: list[dict[str, Any]], seqs: Sequence[int], batch: int) -> dict[str, Any]:
    return {"schema": SCHEMA, "seq": list(seqs), "batch": batch, "models": models}
