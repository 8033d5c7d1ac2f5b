"""Build: walk the graph and make each node's module from the layer registry."""

from __future__ import annotations

import networkx as nx
import torch
from torch import nn

from archdsl.costing.model import cost
from archdsl.layers.registry import get_layer
from archdsl.nn.blocks import ParallelResidual, Residual
from archdsl.nn.memory import check_fits
from archdsl.nn.model import ArchModel


def build_model(graph: nx.DiGraph) -> ArchModel:
    """An :class:`ArchModel` whose sub-layers follow the graph's nodes in order. Nodes with the
    same ``(group, slot)`` get the very same module object, so shared weights are one tensor."""
    model_settings = graph.graph["model"]
    d, eps = model_settings.d_model, model_settings.norm_eps
    params = cost(graph).params  # analytic: nothing is allocated before we know it fits
    check_fits(
        params * torch.empty((), dtype=torch.get_default_dtype(), device="meta").element_size(),
        f"a model of {params:,} parameters",
    )
    shared: dict[tuple[str, str], nn.Module] = {}

    def once(attrs: dict, make) -> nn.Module:
        if attrs.get("group") is None:
            return make()
        key = (attrs["group"], attrs["slot"])
        if key not in shared:
            shared[key] = make()
        return shared[key]

    def mixer(attrs: dict) -> nn.Module:
        return get_layer(attrs["type"])(attrs["params"], model_settings)

    sublayers: list[nn.Module] = []
    for node_id in nx.topological_sort(graph):
        attrs = graph.nodes[node_id]
        if attrs["kind"] == "layer" and attrs["residual"]:
            sublayers.append(once(attrs, lambda a=attrs: Residual(mixer(a), d, eps)))
        elif attrs["kind"] == "fork":
            sublayers.append(once(attrs, lambda f=node_id, a=attrs: _parallel(graph, f, mixer, once, d, eps)))
    model = ArchModel(model_settings, sublayers)
    model.graph = graph
    model.spec = graph.graph.get("spec")
    return model


def _parallel(graph: nx.DiGraph, fork: str, mixer, once, d: int, eps: float) -> ParallelResidual:
    branches = []
    for first in graph.successors(fork):
        branch, node = [], first
        while graph.nodes[node]["kind"] == "layer":
            branch.append(once(graph.nodes[node], lambda a=graph.nodes[node]: mixer(a)))
            (node,) = graph.successors(node)
        branches.append(branch)
    return ParallelResidual(branches, d, eps)
