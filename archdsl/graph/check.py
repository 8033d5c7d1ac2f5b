"""Invariants of a lowered graph, checked before anyone builds or costs it."""

from __future__ import annotations

import networkx as nx

from archdsl.errors import GraphError


def check_graph(graph: nx.DiGraph) -> None:
    """One input (``embed``), one output (``head``), acyclic, widths agree along every edge, and
    every node of a shared group's slot has the same layer type and parameters."""
    if not nx.is_directed_acyclic_graph(graph):
        raise GraphError("the graph has a cycle")
    sources = [n for n, deg in graph.in_degree() if deg == 0]
    sinks = [n for n, deg in graph.out_degree() if deg == 0]
    if sources != ["embed"]:
        raise GraphError(f"the graph must have exactly one input, 'embed'; it has {sources}")
    if sinks != ["head"]:
        raise GraphError(f"the graph must have exactly one output, 'head'; it has {sinks}")
    for u, v in graph.edges:
        out_width, in_width = graph.nodes[u]["width_out"], graph.nodes[v]["width_in"]
        if out_width != in_width:
            raise GraphError(f"width mismatch on {u} -> {v}: {out_width} != {in_width}", graph.nodes[v].get("span"))
    slots: dict[tuple[str, str], dict] = {}
    for node_id, attrs in graph.nodes(data=True):
        if attrs.get("group") is None or attrs.get("slot") is None:
            continue
        key = (attrs["group"], attrs["slot"])
        first = slots.setdefault(key, attrs)
        if (first["kind"], first.get("type"), first.get("params")) != (attrs["kind"], attrs.get("type"), attrs.get("params")):
            raise GraphError(
                f"shared group '{key[0]}' holds different layers in one slot ({node_id})", attrs.get("span")
            )
