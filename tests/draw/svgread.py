"""Read a picture's SVG back (xml.etree) and what a picture must show, computed from the Spec
and its graph independently of archdsl.draw."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from archdsl.spec.model import LayerNode, ParallelNode, RepeatNode, SeqNode, SharedNode

NS = "{http://www.w3.org/2000/svg}"


def elements(svg: str, tag: str, cls: str | None = None) -> list[ET.Element]:
    """Every ``tag`` element (``rect``, ``text``, ``polyline``) of class ``cls``, in document order."""
    root = ET.fromstring(svg.encode("utf-8"))
    assert root.tag == NS + "svg"
    return [e for e in root.iter(NS + tag) if cls is None or e.get("class") == cls]


def texts(svg: str, cls: str) -> list[str]:
    return [e.text or "" for e in elements(svg, "text", cls)]


def box(e: ET.Element) -> tuple[float, float, float, float]:
    x, y, w, h = (float(e.get(k)) for k in ("x", "y", "width", "height"))
    return x, y, x + w, y + h


def graph_layers(graph) -> list[tuple[str, str]]:
    """(node id, type) of every layer call in the graph's execution order, branches in order."""
    return [(n, a["type"]) for n, a in graph.nodes(data=True) if a["kind"] == "layer"]


def instances(node, kind) -> list:
    """Every instance of a ``kind`` node as the stack runs it: a node inside a repeat counts
    once per copy (the picture draws each copy)."""
    if isinstance(node, kind) and not (kind is RepeatNode and node.count == 1):
        found = [node]
    else:
        found = []
    if isinstance(node, SeqNode):
        return found + [x for item in node.items for x in instances(item, kind)]
    if isinstance(node, RepeatNode):
        return found + [x for x in instances(node.body, kind)] * node.count
    if isinstance(node, SharedNode):
        return found + instances(node.body, kind)
    if isinstance(node, ParallelNode):
        return found  # a branch's repeats are unrolled inside its lane, without a bracket
    assert isinstance(node, LayerNode)
    return found
