"""The table of ``archdsl show``: one row per sub-layer with its parameters, counted from the
analytic cost model (nothing is built, so a 100,000-layer program shows in seconds)."""

from __future__ import annotations

import networkx as nx
from rich.table import Table

import archdsl
from archdsl.graph.export import node_label


def sublayer_label(graph: nx.DiGraph, node_id: str) -> str:
    """``attn window=512`` for a layer; ``(attn | conv mlp)`` for a parallel block, naming
    every layer of every branch."""
    if graph.nodes[node_id]["kind"] != "fork":
        return node_label(graph, node_id).split(" [")[0]
    branches = []
    for first in graph.successors(node_id):
        names, node = [], first
        while graph.nodes[node]["kind"] == "layer":
            names.append(node_label(graph, node).split(" [")[0])
            (node,) = graph.successors(node)
        branches.append(" ".join(names))
    return "(" + " | ".join(branches) + ")"


def sublayer_params(graph: nx.DiGraph, nodes, node_id: str) -> int:
    """Weights of one sub-layer (its pre-norm included; a parallel block's branches too)."""
    if graph.nodes[node_id]["kind"] != "fork":
        return nodes[node_id].params
    total, frontier = nodes[node_id].params, list(graph.successors(node_id))
    while frontier:
        node = frontier.pop()
        if graph.nodes[node]["kind"] == "layer":
            total += nodes[node].params
            frontier.extend(graph.successors(node))
    return total


COLUMNS = (("#", "right"), ("sub-layer", "left"), ("shared", "left"), ("parameters", "right"))
# Past this many rows rich's table takes minutes to lay out (20,000 rows: 20 s); plain aligned
# text shows the same columns at once.
RICH_ROWS = 2_000


def layer_rows(graph: nx.DiGraph) -> tuple[list[tuple[str, str, str, str]], list[tuple[str, str, str, str]]]:
    """The rows of the table (one per sub-layer) and its footer (vocabulary parts, totals)."""
    spec_model = graph.graph["model"]
    cost = archdsl.cost(graph, seq_len=1)
    nodes = cost.nodes
    rows = []
    seen: set[tuple[str, str]] = set()
    for node_id, attrs in graph.nodes(data=True):
        if attrs["kind"] not in ("layer", "fork") or not attrs.get("residual", True):
            continue
        group = attrs.get("group")
        slot = (group, str(attrs.get("slot")))
        # a later use of shared weights carries none in the cost model: say whose they are
        fresh = group is None or slot not in seen
        seen.add(slot)
        params = f"{sublayer_params(graph, nodes, node_id):,}" if fresh else "(same weights)"
        rows.append((str(attrs["index"]), sublayer_label(graph, node_id), group or "", params))
    vocab_parts = nodes["embed"].params + nodes["head"].params
    tied = " (tied)" if spec_model.tie_embeddings else ""
    footer = [
        ("", f"embedding + final norm + LM head{tied}", "", f"{vocab_parts + nodes['norm'].params:,}"),
        ("", "total", "", f"{cost.params:,}"),
        ("", "non-embedding", "", f"{cost.params - vocab_parts:,}"),
    ]
    return rows, footer


def layer_table(graph: nx.DiGraph, title: str) -> Table | str:
    """Sub-layers with their parameter counts, the vocabulary parts, the totals: a rich table,
    or plain aligned text past RICH_ROWS rows."""
    rows, footer = layer_rows(graph)
    if len(rows) > RICH_ROWS:
        return _plain(title, rows, footer)
    table = Table(title=title)
    for column, justify in COLUMNS:
        table.add_column(column, justify=justify)
    for row in rows:
        table.add_row(*row)
    table.add_section()
    for row in footer:
        table.add_row(*row)
    return table


def _plain(title: str, rows: list, footer: list) -> str:
    header = tuple(name for name, _ in COLUMNS)
    widths = [max(len(r[i]) for r in [header, *rows, *footer]) for i in range(len(COLUMNS))]

    def line(row) -> str:
        cells = [c.rjust(w) if j == "right" else c.ljust(w) for c, w, (_, j) in zip(row, widths, COLUMNS, strict=True)]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([title, line(header), rule, *map(line, rows), rule, *map(line, footer)]) + "\n"
