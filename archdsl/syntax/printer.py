"""Spec -> text: the canonical program of a Spec, such that ``parse(print_spec(s)) == s``.

    >>> import archdsl
    >>> print(print_spec(archdsl.parse("ssm ssm ssm attn ssm ssm ssm attn"), roll=True), end="")
    model d_model=512 vocab=32000
    2x(3x(ssm) attn)

The text is: a ``model`` line (``d_model``, ``vocab``, then settings that differ from their
defaults); one ``let NAME = shared(...)`` line per weight group, inner groups first; the stack.
A layer shows only the parameters needed to get it back: those that differ from the layer's
defaults resolved for this model, less any that the others already imply (``attn heads=4``,
not ``attn heads=4 kv_heads=4 head_dim=128``), in field order. Floats print with ``repr``, so
they read back exactly.

``roll=True`` (``archdsl fmt --roll``) unrolls every repeat and re-rolls each flat sequence into
its shortest repeat form (:mod:`archdsl.syntax.roll`); parallel groups and shared groups are
atoms, rolled inside.
"""

from __future__ import annotations

import math
from typing import Any

from archdsl.layers.base import LayerParams
from archdsl.spec.model import (
    LayerNode,
    ModelSettings,
    Node,
    ParallelNode,
    RepeatNode,
    SeqNode,
    SharedNode,
    Spec,
)
from archdsl.syntax.roll import Run, roll as roll_items

WIDTH = 96  # the stack wraps between top-level items past this many characters
_ALWAYS = ("d_model", "vocab")


def print_spec(spec: Spec, *, roll: bool = False) -> str:
    """The canonical program text of ``spec`` (``roll=True``: repeats re-rolled)."""
    printer = _Printer(spec.model, roll)
    body = printer.items(spec.body)
    lines = [_header(spec.model)]
    lines += [f"let {group} = shared({text})" for group, text in printer.lets]
    lines += wrap_items(body)
    return "\n".join(lines) + "\n"


def format_value(value: Any) -> str:
    """A parameter value as the language writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} cannot be written in the language")
        return repr(value)  # shortest text that reads back to the same float
    if isinstance(value, str):
        return value
    raise TypeError(f"no text form for a parameter value of type {type(value).__name__}")


def _header(model: ModelSettings) -> str:
    defaults = ModelSettings()
    parts = ["model"]
    for name in ModelSettings.model_fields:
        value = getattr(model, name)
        if name in _ALWAYS or value != getattr(defaults, name):
            parts.append(f"{name}={format_value(value)}")
    return " ".join(parts)


def wrap_items(items: list[str]) -> list[str]:
    """Greedy line filling; newlines between top-level items are plain whitespace."""
    lines: list[str] = []
    line = ""
    for item in items:
        if line and len(line) + 1 + len(item) > WIDTH:
            lines.append(line)
            line = item
        else:
            line = f"{line} {item}" if line else item
    lines.append(line)
    return lines


class _Printer:
    def __init__(self, model: ModelSettings, roll: bool):
        self.model = model
        self.roll = roll
        self.lets: list[tuple[str, str]] = []  # (group, body text), inner groups first
        self.seen: set[str] = set()
        self.param_text: dict[LayerParams, str] = {}

    def items(self, seq: SeqNode) -> list[str]:
        """The texts of the items of ``seq``, in order."""
        if self.roll:
            return [_rolled_text(x) for x in roll_items(self._atoms(seq))]
        return [self.node(item) for item in seq.items]

    def seq(self, seq: SeqNode) -> str:
        return " ".join(self.items(seq))

    def node(self, node: Node) -> str:
        if isinstance(node, LayerNode):
            return self.layer(node)
        if isinstance(node, RepeatNode):
            return f"{node.count}x({self.seq(node.body)})"
        if isinstance(node, ParallelNode):
            return "(" + " | ".join(self.seq(b) for b in node.branches) + ")"
        if isinstance(node, SharedNode):
            return self.shared(node)
        if isinstance(node, SeqNode):
            # the resolver flattens groups, but a hand-built Spec may nest a sequence
            return f"({self.seq(node)})"
        raise TypeError(f"unknown spec node {type(node).__name__}")

    def shared(self, node: SharedNode) -> str:
        if not node.group.isidentifier():
            raise ValueError(f"shared group name {node.group!r} is not a name the language can write")
        if node.group not in self.seen:
            self.seen.add(node.group)
            text = self.seq(node.body)  # registers groups used inside first
            self.lets.append((node.group, text))
        return node.group

    def layer(self, node: LayerNode) -> str:
        text = self.param_text.get(node.params)
        if text is None:
            text = self.param_text[node.params] = params_text(node.params, self.model)
        return f"{node.type} {text}" if text else node.type

    def _atoms(self, seq: SeqNode) -> list[str]:
        """``seq`` with every repeat unrolled, as the texts of its atoms."""
        out: list[str] = []
        for item in seq.items:
            if isinstance(item, RepeatNode):
                body = self._atoms(item.body)
                out.extend(body * item.count)
            elif isinstance(item, SeqNode):
                out.extend(self._atoms(item))
            else:
                out.append(self.node(item))  # parallel branches and shared bodies roll inside
        return out


def _rolled_text(x: Any) -> str:
    if isinstance(x, Run):
        return f"{x.count}x({' '.join(_rolled_text(y) for y in x.body)})"
    return x


def params_text(params: LayerParams, model: ModelSettings) -> str:
    """``key=value ...`` for the fields that must be written for the resolver to give
    ``params`` back."""
    cls = type(params)
    fields = list(cls.model_fields)
    target = {f: getattr(params, f) for f in fields}

    def gives_back(chosen: list[str]) -> bool:
        try:
            got = cls(**{f: target[f] for f in chosen}).resolve(model)
        except Exception:  # noqa: BLE001 - any failure means "not enough written"
            return False
        return all(getattr(got, f) == target[f] for f in fields)

    try:
        defaults = cls().resolve(model)
        chosen = [f for f in fields if getattr(defaults, f) != target[f]]
    except Exception:  # noqa: BLE001 - defaults that do not build for this model
        chosen = list(fields)
    chosen = [f for f in chosen if target[f] is not None]  # None cannot be written; it is a default
    if not gives_back(chosen):
        # a default that another field implies (head_dim from heads): write everything, then trim
        chosen = [f for f in fields if target[f] is not None]
    for f in reversed(list(chosen)):  # derived fields come last: drop them first
        fewer = [g for g in chosen if g != f]
        if gives_back(fewer):
            chosen = fewer
    return " ".join(f"{f}={format_value(target[f])}" for f in chosen)
