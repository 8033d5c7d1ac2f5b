"""A search space as text: the program as written, choices kept, in canonical spacing.

    >>> from archdsl.space import parse_space
    >>> print(parse_space("let m = {ssm,attn window={64,256}}\\n{2,4}x( m  mlp)"), end="")
    let m = {ssm, attn window={64, 256}}
    {2, 4}x(m mlp)

``parse_space(str(space)) == space``. Unlike the Spec printer (:mod:`archdsl.syntax.printer`)
nothing is resolved: let names, parameters and groups stay as the author wrote them.
"""

from __future__ import annotations

from archdsl.syntax import ast
from archdsl.syntax.printer import format_value, wrap_items


def program_text(program: ast.Program) -> str:
    lines = []
    if program.header is not None:
        lines.append(" ".join(["model", *(param_text(p) for p in program.header.params)]))
    lines += [f"let {let.name} = {seq_text(let.body)}" for let in program.lets]
    lines += wrap_items([item_text(item) for item in program.body.items])
    return "\n".join(lines) + "\n"


def seq_text(seq: ast.Seq) -> str:
    return " ".join(item_text(item) for item in seq.items)


def param_text(param: ast.Param) -> str:
    return f"{param.key}={value_text(param.value)}"


def value_text(value: object) -> str:
    if isinstance(value, ast.ValueChoice):
        return "{" + ", ".join(format_value(v) for v in value.options) + "}"
    if isinstance(value, ast.Range):
        extra = f" step={format_value(value.step)}" if value.step is not None else (" log" if value.log else "")
        return f"{{{format_value(value.low)}..{format_value(value.high)}{extra}}}"
    return format_value(value)


def item_text(item: object) -> str:
    if isinstance(item, ast.Call):
        return " ".join([item.name, *(param_text(p) for p in item.params)])
    if isinstance(item, ast.Repeat):
        count = value_text(item.count)
        return f"{count}x{' each' if item.each else ''}({seq_text(item.body)})"
    if isinstance(item, ast.Parallel):
        return "(" + " | ".join(seq_text(b) for b in item.branches) + ")"
    if isinstance(item, ast.Shared):
        return f"shared({seq_text(item.body)})"
    if isinstance(item, ast.Group):
        return f"({seq_text(item.body)})"
    if isinstance(item, ast.Seq):
        return f"({seq_text(item)})"
    if isinstance(item, ast.Alternatives):
        return "{" + ", ".join(seq_text(o) for o in item.options) + "}"
    if isinstance(item, (ast.ValueChoice, ast.Range)):
        return value_text(item)
    raise TypeError(f"no text for {type(item).__name__}")
