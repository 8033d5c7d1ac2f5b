"""The abstract syntax tree: small frozen dataclasses, each with the span of text it came from.

The parser builds these and nothing else; meaning (which names are layers, which parameters
exist, what the defaults are) is added by :mod:`archdsl.spec.resolve`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Union


@dataclass(frozen=True)
class Span:
    """Where a node stands in the source: 1-based line and column, end exclusive."""

    line: int
    column: int
    end_line: int
    end_column: int
    file: str | None = None

    def with_file(self, file: str) -> Span:
        return replace(self, file=file)

    def __str__(self) -> str:
        return f"{self.file or '<string>'}:{self.line}:{self.column}"


# A parameter value as written: int, float, bool or a bare name (e.g. ``act=silu``).
Value = Union[int, float, bool, str]


@dataclass(frozen=True)
class ValueChoice:
    """``{256, 512}``: one of the values (a search space's value or repeat-count choice)."""

    options: tuple[Value, ...]
    span: Span = field(compare=False)
    option_spans: tuple[Span, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class Range:
    """``{16..128 step=16}`` or ``{1e-4..1e-2 log}``: a number between ``low`` and ``high``
    (both included); integers when both ends are written as integers."""

    low: int | float
    high: int | float
    step: int | float | None
    log: bool
    span: Span = field(compare=False)
    low_span: Span | None = field(default=None, compare=False)
    high_span: Span | None = field(default=None, compare=False)
    option_span: Span | None = field(default=None, compare=False)  # of `step=..` or `log`

    @property
    def is_int(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)


Choice = Union[ValueChoice, Range]


@dataclass(frozen=True)
class Param:
    """``key=value`` on a layer call or in the ``model`` header; in a search space the value
    may be a choice."""

    key: str
    value: Value | Choice
    span: Span = field(compare=False)
    value_span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Call:
    """A layer call or a reference to a ``let`` name: ``attn window=512`` or ``mamba``."""

    name: str
    params: tuple[Param, ...]
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Seq:
    """Juxtaposition: the items run one after another."""

    items: tuple[Expr, ...]
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Repeat:
    """``Nx(body)``: the body ``count`` times. In a search space the count may be a choice, and
    ``each`` (``Nx each(body)``) makes every copy draw its own choices."""

    count: int | Choice
    body: Seq
    span: Span = field(compare=False)
    count_span: Span | None = field(default=None, compare=False)
    each: bool = False


@dataclass(frozen=True)
class Parallel:
    """``(a | b)``: branches on the same normalised input, summed inside one residual."""

    branches: tuple[Seq, ...]
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Shared:
    """``shared(body)``: one set of weights that every use of the enclosing name reuses."""

    body: Seq
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Group:
    """``(a b c)`` without a count or bars: only grouping, kept so the printer can round-trip."""

    body: Seq
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Alternatives:
    """``{ssm, attn window=256, gdn mlp}``: one of the sequences (a search space's layer choice)."""

    options: tuple[Seq, ...]
    span: Span = field(compare=False)


# ``Alternatives`` and a bare ``ValueChoice`` / ``Range`` (``let w = {256, 512}``) appear only in
# search spaces (archdsl.space); the plain resolver never sees them.
Expr = Union[Call, Seq, Repeat, Parallel, Shared, Group, Alternatives, ValueChoice, Range]


@dataclass(frozen=True)
class Let:
    """``let name = expr``."""

    name: str
    body: Seq
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Header:
    """``model key=value ...``."""

    params: tuple[Param, ...]
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Program:
    """A whole source file: optional header, ``let`` definitions, one stack expression."""

    header: Header | None
    lets: tuple[Let, ...]
    body: Seq
    span: Span = field(compare=False)
