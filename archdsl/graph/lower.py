"""Lower: Spec -> networkx.DiGraph, the single source of truth for ``build`` and ``cost``.

Node ids run in execution order::

    embed -> L0 -> L1 -> ... -> norm -> head

``L{i}`` of kind ``layer`` is one pre-norm residual sub-layer ``x + f(norm(x))``. A parallel
sub-layer ``(a | b)`` is explicit: a ``fork`` node ``L{i}`` holding the one pre-norm, branch
nodes ``L{i}.b{j}.{k}`` (kind ``layer``, ``residual=False``), and a ``merge`` node ``L{i}.sum``
that sums the branches and adds the residual. Nodes of a ``shared(...)`` group carry the group
name and a ``slot``; nodes with the same ``(group, slot)`` are one set of weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from archdsl.errors import GraphError
from archdsl.graph.check import check_adjacency, check_graph
from archdsl.spec import limits
from archdsl.spec.model import LayerNode, Node, ParallelNode, RepeatNode, SeqNode, SharedNode, Spec, iter_sublayers

if TYPE_CHECKING:
    import networkx as nx


def lower(spec: Spec) -> nx.DiGraph:
    nodes, edges = lowered_parts(spec)
    graph = _digraph(nodes, edges, model=spec.model, spec=spec)
    check_graph(graph)
    return graph


def check_lowering(spec: Spec) -> list[tuple[str, dict]]:
    """Lower ``spec`` and check the result as :func:`lower` does, without making the networkx
    graph (importing networkx is most of what ``archdsl check`` would otherwise wait for);
    returns the nodes (id, attributes) in execution order."""
    nodes, edges = lowered_parts(spec)
    succ: dict[str, dict] = {node_id: {} for node_id, _ in nodes}
    pred: dict[str, dict] = {node_id: {} for node_id, _ in nodes}
    for u, v in edges:
        succ[u][v] = pred[v][u] = {}
    check_adjacency(dict(nodes), succ, pred)
    return nodes


def lowered_parts(spec: Spec) -> tuple[list[tuple[str, dict]], list[tuple[str, str]]]:
    """The nodes (id, attributes) in execution order and the edges of the graph of ``spec``."""
    d, vocab = spec.model.d_model, spec.model.vocab
    lowerer = _Lowerer(d)
    lowerer.nodes.append(("embed", {"kind": "embed", "width_in": vocab, "width_out": d, "span": None, "group": None}))
    lowerer.last = "embed"
    lowerer.seq(spec.body, group=None, slot_prefix="")
    lowerer.append("norm", kind="norm", span=None, group=None)
    lowerer.nodes.append(
        (
            "head",
            {
                "kind": "head",
                "width_in": d,
                "width_out": vocab,
                "span": None,
                "group": None,
                "tied": spec.model.tie_embeddings,
            },
        )
    )
    lowerer.edges.append(("norm", "head"))
    return lowerer.nodes, lowerer.edges


def _digraph(nodes: list[tuple[str, dict]], edges: list[tuple[str, str]], **graph_attrs) -> nx.DiGraph:
    """A DiGraph of fresh nodes (unique ids, in order) and edges between them, filled directly
    into networkx's adjacency dicts (``_node``, ``_succ``, ``_pred``, the documented layout of a
    DiGraph). ``add_nodes_from`` takes an exception path for every ``(id, attrs)`` pair and was
    about half of lowering a 1,000-layer spec; the result is the same graph."""
    import networkx as nx

    graph = nx.DiGraph(**graph_attrs)
    node, succ, pred = graph._node, graph._succ, graph._pred
    for node_id, attrs in nodes:
        node[node_id] = attrs
        succ[node_id] = {}
        pred[node_id] = {}
    for u, v in edges:
        data: dict = {}
        succ[u][v] = data
        pred[v][u] = data
    nx._clear_cache(graph)
    return graph


class _Lowerer:
    """Walks the spec tree appending sub-layers in execution order; ``last`` is the open end."""

    def __init__(self, d_model: int):
        self.d = d_model
        self.index = 0
        self.nodes: list[tuple[str, dict]] = []
        self.edges: list[tuple[str, str]] = []
        self.last = ""

    def append(self, node_id: str, **attrs) -> None:
        if self.index >= limits.MAX_SUBLAYERS:
            raise GraphError(f"more than {limits.MAX_SUBLAYERS:,} sub-layers", attrs.get("span"))
        attrs["width_in"] = attrs["width_out"] = self.d
        self.nodes.append((node_id, attrs))
        self.edges.append((self.last, node_id))
        self.last = node_id

    def seq(self, seq: SeqNode, group: str | None, slot_prefix: str) -> None:
        for position, item in enumerate(seq.items):
            self.item(item, group, f"{slot_prefix}{position}")

    def item(self, node: Node, group: str | None, slot: str) -> None:
        if isinstance(node, LayerNode):
            self.append(
                f"L{self.index}",
                kind="layer",
                type=node.type,
                params=node.params,
                span=node.span,
                group=group,
                slot=slot if group else None,
                residual=True,
                index=self.index,
            )
            self.index += 1
        elif isinstance(node, SeqNode):
            self.seq(node, group, f"{slot}.")
        elif isinstance(node, RepeatNode):
            # copies of a repeat are distinct weights, also inside a shared group
            for copy in range(node.count):
                self.seq(node.body, group, f"{slot}x{copy}.")
        elif isinstance(node, SharedNode):
            if group is not None:
                raise GraphError("shared(...) cannot be nested inside another shared(...)", node.span)
            self.seq(node.body, node.group, "")
        elif isinstance(node, ParallelNode):
            self.parallel(node, group, slot)
        else:  # pragma: no cover - the spec models admit no other node
            raise TypeError(type(node).__name__)

    def parallel(self, node: ParallelNode, group: str | None, slot: str) -> None:
        fork = f"L{self.index}"
        self.append(fork, kind="fork", span=node.span, group=group, slot=slot if group else None, index=self.index)
        ends = []
        for j, branch in enumerate(node.branches):
            previous = fork
            for k, layer in enumerate(_flat_branch(branch)):
                node_id = f"{fork}.b{j}.{k}"
                self.nodes.append(
                    (
                        node_id,
                        {
                            "kind": "layer",
                            "type": layer.type,
                            "params": layer.params,
                            "span": layer.span,
                            "group": group,
                            "slot": f"{slot}/b{j}.{k}" if group else None,
                            "residual": False,
                            "index": self.index,
                            "width_in": self.d,
                            "width_out": self.d,
                        },
                    )
                )
                self.edges.append((previous, node_id))
                previous = node_id
            ends.append(previous)
        merge = f"{fork}.sum"
        self.nodes.append(
            (
                merge,
                {
                    "kind": "merge",
                    "span": node.span,
                    "group": group,
                    "index": self.index,
                    "width_in": self.d,
                    "width_out": self.d,
                },
            )
        )
        self.edges.extend((end, merge) for end in ends)
        self.last = merge
        self.index += 1


def _flat_branch(branch: SeqNode) -> list[LayerNode]:
    """The layers of one parallel branch in order (repeats unrolled); a branch holds layer calls
    and repeats of them only, at any depth."""
    layers: list[LayerNode] = []
    for node in iter_sublayers(branch):
        if not isinstance(node, LayerNode):
            raise GraphError("a parallel branch may hold only layer calls and repeats of them", node.span)
        layers.append(node)
    if not layers:
        raise GraphError("a parallel branch is empty", branch.span)
    return layers
