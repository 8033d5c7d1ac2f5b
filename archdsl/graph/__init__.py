"""The Graph stage: lowering a Spec to a checked networkx.DiGraph, and exporting it."""

from archdsl.graph.check import check_graph
from archdsl.graph.export import to_dot, to_mermaid
from archdsl.graph.lower import lower

__all__ = ["check_graph", "lower", "to_dot", "to_mermaid"]
