"""The Spec: a resolved architecture, as pydantic v2 frozen models.

A Spec is what a program *means*: ``let`` names are expanded, every layer call carries its
complete, validated parameters, and every ``shared(...)`` carries the name of its weight group.
Source spans ride along for error messages but are not part of the meaning: two specs written
differently that describe the same model compare equal.
"""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny

from archdsl.layers.base import LayerParams
from archdsl.syntax.ast import Span


class ModelSettings(BaseModel):
    """Model-wide settings: the ``model`` header, or keyword arguments of :func:`archdsl.parse`."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    d_model: int = Field(512, ge=8, le=65536, description="width of the residual stream")
    vocab: int = Field(32000, ge=2, le=4_000_000, description="vocabulary size (embedding rows)")
    tie_embeddings: bool = Field(False, description="LM head reuses the embedding matrix")
    norm_eps: float = Field(1e-5, gt=0.0, lt=1.0, description="epsilon of every RMSNorm")


class SpecNode(BaseModel):
    """Base of the spec tree. Equality ignores ``span``: it records provenance, not meaning."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    span: Span | None = Field(default=None, exclude=True, repr=False)

    def _meaning(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "span"}

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._meaning() == other._meaning()  # type: ignore[union-attr]

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(sorted(self._meaning().items()))))


class LayerNode(SpecNode):
    """One layer call with its complete parameters; in a sequence, one pre-norm residual sub-layer."""

    kind: Literal["layer"] = "layer"
    type: str
    params: SerializeAsAny[LayerParams]


class SeqNode(SpecNode):
    kind: Literal["seq"] = "seq"
    items: tuple[Node, ...]


class RepeatNode(SpecNode):
    kind: Literal["repeat"] = "repeat"
    count: int = Field(ge=1)
    body: SeqNode


class ParallelNode(SpecNode):
    """Branches on the same normalised input, summed inside one residual. Each branch is a
    sequence of layers applied one after another without residuals of their own."""

    kind: Literal["parallel"] = "parallel"
    branches: tuple[SeqNode, ...]


class SharedNode(SpecNode):
    """Every SharedNode with the same ``group`` is the same set of weights."""

    kind: Literal["shared"] = "shared"
    group: str
    body: SeqNode


Node = Union[LayerNode, SeqNode, RepeatNode, ParallelNode, SharedNode]
SeqNode.model_rebuild()
RepeatNode.model_rebuild()
ParallelNode.model_rebuild()
SharedNode.model_rebuild()


class Spec(SpecNode):
    """A whole resolved architecture: model settings plus the stack between embedding and head."""

    kind: Literal["spec"] = "spec"
    model: ModelSettings
    body: SeqNode
    source_name: str | None = Field(default=None, exclude=True, repr=False)

    def _meaning(self) -> dict[str, Any]:
        # a weight group's name is a label: `let g = shared(...)` and `let h = shared(...)` used
        # the same way are the same model, so groups compare by order of first use
        return {"model": self.model, "body": _canonical_groups(self.body)}

    def layers(self) -> list[LayerNode]:
        """The layer calls in execution order, repeats unrolled (branches in order)."""
        return list(iter_layers(self.body))

    def __str__(self) -> str:
        from archdsl.syntax.printer import print_spec

        return print_spec(self)

    def _repr_svg_(self) -> str:
        """A notebook shows a Spec as its picture (:mod:`archdsl.draw`)."""
        from archdsl.draw import to_svg

        return to_svg(self)

    def _repr_html_(self) -> str:
        """The picture with the parameter count and cost summary, for notebooks that render HTML."""
        from archdsl.draw import spec_html

        return spec_html(self)


def iter_layers(node: Node):
    """Yield every LayerNode under ``node`` in execution order, repeats unrolled, parallel
    branches in order and shared blocks at each use."""
    for item in iter_sublayers(node):
        if isinstance(item, ParallelNode):
            for branch in item.branches:
                yield from iter_layers(branch)
        elif isinstance(item, SharedNode):
            yield from iter_layers(item.body)
        else:
            yield item


def iter_sublayers(node: Node):
    """Yield the sub-layers of a sequence in execution order, repeats unrolled: each LayerNode,
    and each parallel group or shared block whole (callers that cannot take one refuse it)."""
    if isinstance(node, SeqNode):
        for item in node.items:
            yield from iter_sublayers(item)
    elif isinstance(node, RepeatNode):
        for _ in range(node.count):
            yield from iter_sublayers(node.body)
    else:
        yield node


def _canonical_groups(body: SeqNode) -> SeqNode:
    """``body`` with its shared groups renamed g0, g1, ... in order of first use."""
    names: dict[str, str] = {}

    def walk(node: Node) -> Node:
        if isinstance(node, SharedNode):
            group = names.setdefault(node.group, f"g{len(names)}")
            return node.model_copy(update={"group": group, "body": walk(node.body)})
        if isinstance(node, SeqNode):
            return node.model_copy(update={"items": tuple(walk(item) for item in node.items)})
        if isinstance(node, RepeatNode):
            return node.model_copy(update={"body": walk(node.body)})
        if isinstance(node, ParallelNode):
            return node.model_copy(update={"branches": tuple(walk(branch) for branch in node.branches)})
        return node

    return walk(body)  # type: ignore[return-value]
