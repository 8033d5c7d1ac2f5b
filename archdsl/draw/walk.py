"""Spec -> the structure a picture shows: columns (one per residual sub-layer) and spans
(repeats and uses of shared weights over a run of columns).

A column holds one lane for a plain sub-layer, or one lane per branch for a parallel one
``(a | b)``; a lane holds the layers applied one after another. Every block carries the id that
:func:`archdsl.to_graph` gives its node (``L3``, or ``L3.b1.0`` for the first layer of branch 1
of sub-layer 3), so that a picture can be checked against the graph.

    >>> import archdsl
    >>> s = walk(archdsl.parse("2x(ssm attn) (attn | ssm)"))
    >>> [c.lanes[0][0].node_id for c in s.columns], [(sp.kind, sp.start, sp.end) for sp in s.spans]
    (['L0', 'L1', 'L2', 'L3', 'L4.b0.0'], [('repeat', 0, 4)])
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from archdsl.spec.model import (
    LayerNode,
    ModelSettings,
    Node,
    ParallelNode,
    RepeatNode,
    SeqNode,
    SharedNode,
    Spec,
    iter_sublayers,
)


@dataclass(frozen=True)
class Block:
    """One layer call: a residual sub-layer, or one layer of a parallel branch."""

    node_id: str
    index: int  # the residual sub-layer it belongs to (the graph's ``index``)
    type: str
    params: str  # the parameters the canonical text writes (what differs from the defaults)
    group: str | None  # shared weight group, if any
    branch: int | None  # None for a plain sub-layer; j for branch j of a parallel one
    source: Any = field(default=None, compare=False, repr=False)  # the layer call's Span in the text


@dataclass
class Column:
    index: int
    lanes: list[list[Block]]
    group: str | None

    @property
    def parallel(self) -> bool:
        return len(self.lanes) > 1 or self.lanes[0][0].branch is not None


@dataclass
class Span:
    """A run of columns ``[start, end)``: a repeat (``count`` copies starting at ``copies``) or
    one use of a shared group. ``level`` orders nested repeat brackets: 0 has no repeat inside."""

    kind: str  # "repeat" or "shared"
    uid: int
    start: int
    end: int
    count: int = 1
    group: str | None = None
    level: int = 0
    copies: list[int] = field(default_factory=list)
    source: Any = field(default=None, compare=False, repr=False)  # the repeat's Span in the text


@dataclass
class Structure:
    columns: list[Column]
    spans: list[Span]
    model: ModelSettings

    def break_costs(self) -> list[int]:
        """How much structure a row break after each column cuts through: 0 between top-level
        items; each enclosing repeat adds 2, or 1 where the break falls between two of its
        copies; a shared use (short, and read as one unit) adds 3. Entry ``i`` is the cost of a
        break between column ``i`` and ``i + 1``."""
        delta = [0] * (len(self.columns) + 1)
        for span in self.spans:
            if span.end - span.start < 2:
                continue
            weight = 3 if span.kind == "shared" else 2
            delta[span.start] += weight  # breaks after columns start .. end - 2 cut this span
            delta[span.end - 1] -= weight
            for copy in span.copies[1:]:
                delta[copy - 1] -= 1
                delta[copy] += 1
        costs, running = [], 0
        for d in delta[:-1]:
            running += d
            costs.append(running)
        return costs


@functools.lru_cache(maxsize=4096)
def params_written(params, model: ModelSettings) -> str:
    from archdsl.syntax.printer import params_text

    return params_text(params, model)


def walk(spec: Spec) -> Structure:
    walker = _Walker(spec.model)
    walker.seq(spec.body, None)
    return Structure(walker.columns, walker.spans, spec.model)


class _Walker:
    def __init__(self, model: ModelSettings):
        self.model = model
        self.columns: list[Column] = []
        self.spans: list[Span] = []

    def seq(self, seq: SeqNode, group: str | None) -> int:
        """Walk a sequence; returns the deepest repeat level inside it (-1: none)."""
        return max((self.item(item, group) for item in seq.items), default=-1)

    def item(self, node: Node, group: str | None) -> int:
        if isinstance(node, LayerNode):
            index = len(self.columns)
            self.columns.append(Column(index, [[self.block(node, f"L{index}", index, group, None)]], group))
            return -1
        if isinstance(node, SeqNode):
            return self.seq(node, group)
        if isinstance(node, RepeatNode):
            start, copies, inner = len(self.columns), [], -1
            for _ in range(node.count):
                copies.append(len(self.columns))
                inner = max(inner, self.seq(node.body, group))
            span = Span(
                "repeat", len(self.spans), start, len(self.columns), node.count, group, inner + 1, copies, node.span
            )
            self.spans.append(span)
            return inner + 1
        if isinstance(node, SharedNode):
            start = len(self.columns)
            level = self.seq(node.body, node.group)
            self.spans.append(Span("shared", len(self.spans), start, len(self.columns), group=node.group))
            return level
        if isinstance(node, ParallelNode):
            index = len(self.columns)
            lanes = [
                [self.block(layer, f"L{index}.b{j}.{k}", index, group, j) for k, layer in enumerate(_flat(branch))]
                for j, branch in enumerate(node.branches)
            ]
            self.columns.append(Column(index, lanes, group))
            return -1
        raise TypeError(type(node).__name__)  # pragma: no cover - the spec admits no other node

    def block(self, layer: LayerNode, node_id: str, index: int, group: str | None, branch: int | None) -> Block:
        return Block(node_id, index, layer.type, params_written(layer.params, self.model), group, branch, layer.span)


def _flat(node: Node) -> list[LayerNode]:
    """The layers of a parallel branch in order, its repeats unrolled (the picture is drawn after
    lowering, which refuses a branch that holds anything else)."""
    layers = list(iter_sublayers(node))
    assert all(isinstance(layer, LayerNode) for layer in layers), "lowering refuses other branch items"
    return layers
