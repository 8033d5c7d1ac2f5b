"""What the interop tests read back from an imported program: its sub-layers in order."""

from __future__ import annotations

import archdsl
from archdsl.spec.model import LayerNode, ParallelNode, RepeatNode, SeqNode, SharedNode


def sublayers(spec) -> list:
    """The residual sub-layers in execution order, repeats unrolled: a layer type, a tuple of
    branch types for ``(a | b)``, or ``("shared", group, types)`` for a shared block's layers."""
    out: list = []

    def walk(node, group=None):
        if isinstance(node, LayerNode):
            out.append(node.type if group is None else ("shared", group, node.type))
        elif isinstance(node, SeqNode):
            for item in node.items:
                walk(item, group)
        elif isinstance(node, RepeatNode):
            for _ in range(node.count):
                walk(node.body, group)
        elif isinstance(node, ParallelNode):
            out.append(tuple(layer.type for branch in node.branches for layer in branch.items))
        elif isinstance(node, SharedNode):
            walk(node.body, node.group)

    walk(spec.body)
    return out


def params_of(spec, layer_type: str) -> list:
    """The resolved parameters of every call of ``layer_type``, in order (branches included)."""
    return [layer.params for layer in spec.layers() if layer.type == layer_type]


def imported(config, **kwargs):
    """The text and the Spec of ``from_hf_config(config)``."""
    text = archdsl.from_hf_config(config, **kwargs)
    return text, archdsl.parse(text)
