"""Lowering to networkx: node order, parallel branches, shared groups, checks and exports."""

from __future__ import annotations

import networkx as nx
import pytest

import archdsl
from archdsl.errors import GraphError
from archdsl.graph import check_graph, to_dot, to_mermaid


def test_linear_stack_runs_from_embedding_to_head():
    graph = archdsl.to_graph(archdsl.parse("2x(ssm) attn"))
    assert list(nx.topological_sort(graph)) == ["embed", "L0", "L1", "L2", "norm", "head"]
    assert [graph.nodes[n]["type"] for n in ("L0", "L1", "L2")] == ["ssm", "ssm", "attn"]
    assert graph.nodes["L2"]["span"].column == 9


def test_parallel_branches_are_explicit_nodes():
    graph = archdsl.to_graph(archdsl.parse("(attn | ssm mlp) mlp"))
    assert graph.nodes["L0"]["kind"] == "fork"
    assert set(graph.successors("L0")) == {"L0.b0.0", "L0.b1.0"}
    assert list(graph.successors("L0.b1.0")) == ["L0.b1.1"]
    assert set(graph.predecessors("L0.sum")) == {"L0.b0.0", "L0.b1.1"}
    assert graph.nodes["L0.b1.1"]["residual"] is False
    assert list(graph.successors("L0.sum")) == ["L1"]


def test_shared_group_nodes_share_slots():
    graph = archdsl.to_graph(archdsl.parse("let g = shared(attn mlp)\ng ssm g"))
    slots = {n: (a["group"], a["slot"]) for n, a in graph.nodes(data=True) if a.get("group")}
    assert slots == {"L0": ("g", "0"), "L1": ("g", "1"), "L3": ("g", "0"), "L4": ("g", "1")}


def test_repeat_inside_shared_makes_distinct_slots():
    graph = archdsl.to_graph(archdsl.parse("let g = shared(2x(mlp))\ng g"))
    slots = [graph.nodes[f"L{i}"]["slot"] for i in range(4)]
    assert slots[0] != slots[1] and slots[:2] == slots[2:]


def test_check_rejects_width_mismatch_and_second_output():
    graph = archdsl.to_graph(archdsl.parse("ssm"))
    graph.nodes["L0"]["width_out"] = 3
    with pytest.raises(GraphError, match="width mismatch on L0 -> norm"):
        check_graph(graph)
    graph = archdsl.to_graph(archdsl.parse("ssm"))
    graph.add_node("dangling", kind="layer", width_in=512, width_out=512)
    graph.add_edge("L0", "dangling")
    with pytest.raises(GraphError, match="exactly one output"):
        check_graph(graph)


def test_exports_name_every_node():
    graph = archdsl.to_graph(archdsl.parse("let g = shared(attn)\n(attn window=8 | ssm) g"))
    dot, mermaid = to_dot(graph), to_mermaid(graph)
    assert dot.startswith("digraph archdsl {") and '"L0" -> "L0.b0.0";' in dot
    assert "attn window=8" in dot and "[shared g]" in dot
    assert mermaid.startswith("flowchart TD") and mermaid.count("-->") == graph.number_of_edges()


def test_labels_work_when_a_layers_defaults_would_not_build_at_this_width():
    # at d_model=48 the ssm default head_dim=64 does not divide the inner width 96
    graph = archdsl.to_graph(archdsl.parse("model d_model=48\nssm head_dim=32", vocab=10))
    assert '"L0" [label="ssm head_dim=32"];' in to_dot(graph)


def test_check_lowering_gives_the_graphs_nodes_without_networkx(example_path):
    # `archdsl check` lowers with check_lowering (no networkx graph): the same nodes, in order
    from archdsl.graph.lower import check_lowering

    spec = archdsl.load(example_path)
    assert check_lowering(spec) == list(archdsl.to_graph(spec).nodes(data=True))
