"""Invariants of a lowered graph, checked before anyone builds or costs it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from archdsl.errors import GraphError

if TYPE_CHECKING:
    import networkx as nx


def check_graph(graph: nx.DiGraph) -> None:
    """One input (``embed``), one output (``head``), acyclic, widths agree along every edge, and
    every node of a shared group's slot has the same layer type and parameters."""
    # the adjacency dicts themselves (``graph.pred`` / ``graph.succ`` are views over them): the
    # degree views cost a call per node, a third of checking a 1,000-layer graph
    check_adjacency(dict(graph.nodes(data=True)), graph._succ, graph._pred)


def check_adjacency(attrs: dict[str, dict], succ: dict[str, dict], pred: dict[str, dict]) -> None:
    """:func:`check_graph` on the graph's parts: node attributes in execution order, and the
    successors and predecessors of every node (dicts keyed by node id, as networkx keeps them)."""
    order = {node: i for i, node in enumerate(attrs)}
    sources = [n for n in attrs if not pred[n]]
    sinks = [n for n in attrs if not succ[n]]
    if sources != ["embed"]:
        raise GraphError(f"the graph must have exactly one input, 'embed'; it has {sources}")
    if sinks != ["head"]:
        raise GraphError(f"the graph must have exactly one output, 'head'; it has {sinks}")
    for u, v in ((u, v) for u, targets in succ.items() for v in targets):
        # Lowering adds nodes in execution order, so every edge must point forward in that
        # order; that proves the graph acyclic in one pass.
        if order[u] >= order[v]:
            raise GraphError(f"the graph has an edge backwards in execution order, {u} -> {v}")
        out_width, in_width = attrs[u]["width_out"], attrs[v]["width_in"]
        if out_width != in_width:
            raise GraphError(f"width mismatch on {u} -> {v}: {out_width} != {in_width}", attrs[v].get("span"))
    slots: dict[tuple[str, str], tuple[str, dict]] = {}
    for node_id, node in attrs.items():
        if node.get("group") is None or node.get("slot") is None:
            continue
        first_id, first = slots.setdefault((node["group"], node["slot"]), (node_id, node))
        if (first["kind"], first.get("type"), first.get("params")) != (
            node["kind"],
            node.get("type"),
            node.get("params"),
        ):
            raise GraphError(
                f"shared group '{node['group']}' holds different layers in one slot ({first_id} and {node_id})",
                node.get("span"),
            )
