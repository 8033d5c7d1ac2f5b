"""The Spec stage: resolved architectures as pydantic models, and the resolver that makes them."""

from archdsl.spec.model import (
    LayerNode,
    ModelSettings,
    Node,
    ParallelNode,
    RepeatNode,
    SeqNode,
    SharedNode,
    Spec,
    iter_layers,
)

__all__ = [
    "LayerNode",
    "ModelSettings",
    "Node",
    "ParallelNode",
    "RepeatNode",
    "SeqNode",
    "SharedNode",
    "Spec",
    "iter_layers",
]
