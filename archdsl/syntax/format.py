"""``archdsl fmt``: the author's program with its spacing normalised, as ruff format or gofmt do.

    >>> print(format_source("model vocab=1000 d_model=256   # tiny\\nlet b = ssm  mlp\\n2x( b )"), end="")
    model d_model=256 vocab=1000  # tiny
    let b = ssm mlp
    2x(b)

Kept: let names, comments, blank lines (runs of them fold into one), the line structure and
every repeat as written. Normalised: spaces (one between items, none inside parentheses, `` | ``
between branches, two before a trailing comment, four per open parenthesis on a continued
line), ``key=value`` without spaces, parameters in the order the printer writes them (the
layer's field order; the header's settings in ModelSettings order), repeat counts as plain
integers (``+04x(`` is ``4x(``). ``roll=True`` also rolls runs of equal items on one line into
``Nx(...)`` (:mod:`archdsl.syntax.roll`), never unrolling what the author rolled.

How: the program is first parsed and resolved (so only valid programs are formatted); then
lark's lexer runs again keeping whitespace and comments, a small recursive descent builds a
concrete syntax tree (items plus "trivia": newlines, comments, ``;``), and the tree is printed.
The result is parsed again and must mean the same model, else the formatter refuses to write it.
New syntax (the choice braces of search spaces) is a new node kind here, not a rewrite.
:func:`archdsl.syntax.printer.print_spec` is the other printer: canonical text of a Spec,
with lets expanded.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from lark import Lark, Token

from archdsl.syntax.parser import grammar_path, source_text

INDENT = "    "


# ---- the concrete syntax tree ---------------------------------------------------------------


@dataclass
class Trivia:
    """What carries no meaning but the author's layout: ``nl`` (one newline), ``comment``, ``semi``."""

    kind: str
    text: str = ""


@dataclass
class Param:
    key: str
    value: str


@dataclass
class Call:
    """A layer call or let name with its parameters; ``parts`` may hold trivia between them."""

    name: str
    parts: list[Param | Trivia] = field(default_factory=list)


@dataclass
class Paren:
    """``(...)``, ``Nx(...)`` or ``shared(...)``: ``opener`` is ``""``, ``"4x"`` or ``"shared"``."""

    opener: str
    branches: list[list[Node]]


@dataclass
class Statement:
    """``model ...`` (``keyword`` "model", params in ``head``) or ``let NAME = seq``."""

    keyword: str
    name: str = ""
    head: list[Param | Trivia] = field(default_factory=list)
    body: list[Node] = field(default_factory=list)


Node = Call | Paren | Trivia | Statement


# ---- tokens and tree ------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _lexer() -> Lark:
    """The language's own grammar and terminals; no layout postlexer, so newlines and (with
    ``dont_ignore``) whitespace and comments come through."""
    path = grammar_path()
    return Lark.open(path.name, rel_to=str(path), parser="lalr", lexer="basic", start="program")


def _tokens(source: str) -> list[Token]:
    return [tok for tok in _lexer().lex(source, dont_ignore=True) if tok.type != "WS"]


class _Reader:
    """Recursive descent over the tokens of a program already known to be valid."""

    def __init__(self, tokens: list[Token]):
        self.tokens = tokens
        self.pos = 0

    def peek(self, offset: int = 0) -> Token | None:
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else None

    def take(self) -> Token:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def trivia(self, tok: Token) -> Trivia:
        if tok.type == "COMMENT":
            return Trivia("comment", tok.value.rstrip())
        return Trivia("semi" if tok.value == ";" else "nl")

    def program(self) -> list[Node]:
        out: list[Node] = []
        while (tok := self.peek()) is not None:
            if tok.type in ("COMMENT", "_NL"):
                out.append(self.trivia(self.take()))
            elif tok.type == "MODEL":
                self.take()
                out.append(Statement("model", head=self.params(top=True)))
            elif tok.type == "LET":
                self.take()
                name = self.take().value.rstrip("= \t")
                out.append(Statement("let", name=name, body=self.seq(top=True)))
            else:
                out.extend(self.seq(top=True))
        return out

    def params(self, top: bool) -> list[Param | Trivia]:
        """``key=value`` pairs; inside parentheses newlines and comments may come between."""
        out: list[Param | Trivia] = []
        while True:
            ahead = 0
            while not top and (t := self.peek(ahead)) is not None and t.type in ("COMMENT", "_NL"):
                ahead += 1
            t = self.peek(ahead)
            if t is None or t.type != "KEY":
                return out
            for _ in range(ahead):
                out.append(self.trivia(self.take()))
            key = self.take().value.rstrip("= \t")
            out.append(Param(key, self.take().value))

    def seq(self, top: bool) -> list[Node]:
        """Items up to a ``)`` or ``|``; at the top level also up to the end of the line."""
        out: list[Node] = []
        while (tok := self.peek()) is not None:
            if tok.type in ("RPAR", "VBAR") or (top and tok.type in ("_NL", "COMMENT", "MODEL", "LET")):
                return out
            if tok.type in ("COMMENT", "_NL"):
                out.append(self.trivia(self.take()))
            elif tok.type == "NAME":
                out.append(Call(self.take().value, self.params(top)))
            elif tok.type in ("COUNT", "SHARED", "LPAR"):
                opener = self.take()
                each = opener.type == "COUNT" and (t := self.peek()) is not None and t.type == "EACH"
                if each:
                    self.take()  # `4x each(...)`: the copies draw their choices apart (archdsl.space)
                if opener.type != "LPAR":
                    self.take()  # its "("
                text = "" if opener.type == "LPAR" else opener.value
                if opener.type == "COUNT":
                    text = f"{int(opener.value[:-1].replace('_', ''))}x" + (" each" if each else "")
                branches = [self.seq(top=False)]
                while self.take().type == "VBAR":
                    branches.append(self.seq(top=False))
                out.append(Paren(text, branches))
            else:  # a token this formatter does not know yet: a bug to report, not to guess at
                raise RuntimeError(f"fmt does not know the token {tok.type} {tok.value!r} yet")
        return out


# ---- printing -------------------------------------------------------------------------------


class _Writer:
    def __init__(self, roll: bool):
        self.roll = roll

    def params(self, name: str, parts: list[Param | Trivia], depth: int, order: list[str]) -> str:
        if not any(isinstance(p, Trivia) for p in parts):  # reorder only what is not split by comments
            parts = sorted(parts, key=lambda p: order.index(p.key) if p.key in order else len(order))
        return self.join([name, *parts], depth)

    def join(self, pieces: list, depth: int) -> str:
        """Pieces (text or nodes) with one space between, trivia laid out."""
        out = ""
        for piece in pieces:
            if isinstance(piece, Trivia):
                if piece.kind == "nl":
                    out = out.rstrip(" ") + "\n" + INDENT * depth
                elif piece.kind == "semi":
                    out = out.rstrip(" ") + "; "
                else:  # a comment; the newline that ends it is the next piece
                    at_start = out == "" or out.endswith("\n" + INDENT * depth) or out.endswith("\n")
                    out = (out if at_start else out.rstrip(" ") + "  ") + piece.text
                continue
            text = piece if isinstance(piece, str) else self.node(piece, depth)
            if out and not out.endswith((" ", "\n", INDENT)):
                out += " "
            out += text
        return out

    def node(self, node: Node, depth: int) -> str:
        if isinstance(node, Param):
            return f"{node.key}={node.value}"
        if isinstance(node, Call):
            return self.params(node.name, node.parts, depth, _layer_fields(node.name))
        if isinstance(node, Paren):
            inner = ""
            for i, branch in enumerate(node.branches):
                text = self.seq(branch, depth + 1).strip(" ")
                if text.startswith("#"):  # a comment right after `(` or `|`
                    text = ("  " if not i else " ") + text
                if i:  # a `|` that starts a line is indented as the branch it opens
                    inner += INDENT * (depth + 1) + "| " if inner.endswith("\n") else " | "
                inner += text
            if inner.endswith("\n"):  # `)` on its own line: the indent of the line it closes
                inner += INDENT * depth
            return f"{node.opener}({inner})"
        raise TypeError(f"unexpected node {node!r}")

    def seq(self, items: list[Node], depth: int) -> str:
        if self.roll:
            items = self.rolled(items)
        return self.join(items, depth)

    def rolled(self, items: list[Node]) -> list:
        """Runs of equal one-line items between two pieces of trivia become ``Nx(...)``."""
        from archdsl.syntax.roll import Run, roll

        groups: dict[str, str] = {}  # `(a b)` -> `a b`: a repeat of one group needs no second pair

        def text(x) -> str:
            if isinstance(x, Run):
                if len(x.body) == 1 and x.body[0] in groups:
                    return f"{x.count}x({groups[x.body[0]]})"
                return f"{x.count}x({' '.join(text(y) for y in x.body)})"
            return x

        out: list = []
        segment: list[str] = []

        def flush() -> None:
            out.extend(text(x) for x in roll(segment))
            segment.clear()

        for item in items:
            rendered = None if isinstance(item, (Trivia, str)) else self.node(item, 0)  # str: a statement
            if rendered is None or "\n" in rendered:
                flush()
                out.append(item)
            else:
                if isinstance(item, Paren) and not item.opener and len(item.branches) == 1:
                    groups[rendered] = rendered[1:-1]
                segment.append(rendered)
        flush()
        return out

    def program(self, nodes: list[Node]) -> str:
        lines: list[str] = []
        current: list = []
        blank = 0

        def end_line() -> None:
            if current:
                lines.append(self.join(self.rolled(current) if self.roll else current, 0).rstrip(" "))
                current.clear()

        for node in nodes:
            if isinstance(node, Trivia) and node.kind == "nl":
                if current:
                    end_line()
                    blank = 0
                else:
                    blank += 1
                    if blank == 1 and lines and lines[-1] != "":
                        lines.append("")
                continue
            if isinstance(node, Statement):
                current.append(self.statement(node))
            else:
                current.append(node)
        end_line()
        out: list[str] = []
        for line in "\n".join(lines).split("\n"):  # lines inside parentheses too
            line = line.rstrip()
            if line or (out and out[-1]):  # runs of blank lines fold into one
                out.append(line)
        while out and not out[-1]:
            out.pop()
        return "\n".join(out) + "\n"

    def statement(self, node: Statement) -> str:
        if node.keyword == "model":
            from archdsl.spec.model import ModelSettings

            return self.params("model", node.head, 0, list(ModelSettings.model_fields))
        return f"let {node.name} = " + self.seq(node.body, 0)


@functools.lru_cache(maxsize=None)
def _layer_fields(name: str) -> list[str]:
    from archdsl.layers.registry import get_layer, is_layer

    return list(get_layer(name).Params.model_fields) if is_layer(name) else []


def format_source(text: str | bytes, *, filename: str | None = None, roll: bool = False) -> str:
    """The program ``text`` formatted. Raises :class:`~archdsl.errors.ArchDSLError` if it is not
    a valid program (the same error ``archdsl check`` gives)."""
    import archdsl
    from archdsl.syntax.printer import print_spec

    source = source_text(text, filename)
    before = archdsl.parse(source, filename=filename)
    out = _Writer(roll).program(_Reader(_tokens(source)).program())
    after = archdsl.parse(out, filename=filename)
    same = after == before if not roll else print_spec(after, roll=True) == print_spec(before, roll=True)
    if not same:  # a bug in this module: never write a program that means something else
        raise RuntimeError("fmt produced a program that means another model; the file was left as it was")
    return out
