"""Text exports of a graph: Graphviz DOT and Mermaid (for READMEs and notebooks)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import networkx as nx


def node_label(graph: nx.DiGraph, node_id: str) -> str:
    """A short human label: the layer call with its non-default parameters, or the node kind."""
    attrs = graph.nodes[node_id]
    kind = attrs["kind"]
    if kind == "layer":
        # the parameters the canonical text writes (those a reader could not infer)
        written = _params_text(attrs["params"], graph.graph["model"])
        label = f"{attrs['type']} {written}" if written else attrs["type"]
    elif kind == "embed":
        label = f"embed {attrs['width_in']}x{attrs['width_out']}"
    elif kind == "head":
        label = "lm_head (tied)" if attrs.get("tied") else f"lm_head {attrs['width_in']}x{attrs['width_out']}"
    elif kind == "fork":
        label = "norm (parallel)"
    elif kind == "merge":
        label = "sum + residual"
    else:
        label = "final norm"
    if attrs.get("group"):
        label += f" [shared {attrs['group']}]"
    return label


@functools.lru_cache(maxsize=1024)
def _params_text(params, model) -> str:
    from archdsl.syntax.printer import params_text

    return params_text(params, model)


def to_dot(graph: nx.DiGraph) -> str:
    """Graphviz DOT text; shared groups are drawn as clusters of the same colour."""
    lines = ["digraph archdsl {", "  rankdir=TB;", '  node [shape=box, style="rounded", fontname="Helvetica"];']
    for node_id in graph.nodes:
        label = node_label(graph, node_id).replace('"', '\\"')
        extra = ', style="rounded,filled", fillcolor="#ffe9b3"' if graph.nodes[node_id].get("group") else ""
        lines.append(f'  "{node_id}" [label="{label}"{extra}];')
    for u, v in graph.edges:
        lines.append(f'  "{u}" -> "{v}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(graph: nx.DiGraph) -> str:
    """Mermaid flowchart text (GitHub renders it in Markdown)."""
    ids = {node_id: f"n{i}" for i, node_id in enumerate(graph.nodes)}
    lines = ["flowchart TD"]
    for node_id, short in ids.items():
        label = node_label(graph, node_id).replace('"', "'")
        lines.append(f'    {short}["{node_id}: {label}"]')
    for u, v in graph.edges:
        lines.append(f"    {ids[u]} --> {ids[v]}")
    return "\n".join(lines) + "\n"
