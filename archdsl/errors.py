"""One error hierarchy for everything a user can get wrong.

Every error that reaches a user is an :class:`ArchDSLError`. When it knows where in the source
the problem is, it carries a :class:`~archdsl.syntax.ast.Span` and renders itself as::

    jamba.arch:3:12: error: unknown layer 'atn' (did you mean 'attn'?)
        let local = atn window=512
                    ^
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from archdsl.syntax.ast import Span


# Longest source line shown under an error; longer ones are cut around the caret.
CONTEXT_WIDTH = 120


class ArchDSLError(Exception):
    """Base of every user-facing error. ``span`` says where; ``source`` is the text it points into."""

    def __init__(self, message: str, span: Span | None = None, source: str | None = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.source = source

    def with_source(self, source: str, filename: str | None = None) -> ArchDSLError:
        """Attach the program text (and file name) so that ``str(err)`` can show the line."""
        if self.source is None:
            self.source = source
        if filename is not None and self.span is not None and self.span.file in (None, "<string>"):
            self.span = self.span.with_file(filename)
        return self

    def location(self) -> str:
        if self.span is None:
            return ""
        return f"{self.span.file or '<string>'}:{self.span.line}:{self.span.column}: "

    def context(self) -> str:
        """The offending line with a caret under the start of the span."""
        if self.span is None or self.source is None:
            return ""
        lines = self.source.splitlines()
        if not 1 <= self.span.line <= len(lines):
            return ""
        line = lines[self.span.line - 1].replace("\t", " ")
        start = self.span.column - 1
        width = 1
        if self.span.end_line == self.span.line and self.span.end_column > self.span.column:
            width = self.span.end_column - self.span.column
        width = min(width, CONTEXT_WIDTH // 2)
        if len(line) > CONTEXT_WIDTH:
            # a window of the long line around the caret, with "..." where it was cut
            left = max(0, min(start - CONTEXT_WIDTH // 3, len(line) - CONTEXT_WIDTH))
            shown = line[left : left + CONTEXT_WIDTH]
            prefix = "..." if left > 0 else ""
            suffix = "..." if left + CONTEXT_WIDTH < len(line) else ""
            line, start = prefix + shown + suffix, start - left + len(prefix)
        return f"    {line}\n    {' ' * start}{'^' * width}"

    def __str__(self) -> str:
        text = f"{self.location()}error: {self.message}"
        context = self.context()
        return f"{text}\n{context}" if context else text


class DSLSyntaxError(ArchDSLError):
    """The text is not a program of the language (raised by the parser)."""


class ResolveError(ArchDSLError):
    """Names, layers or parameters that do not resolve (undefined ``let``, unknown layer, ...)."""


class ParameterError(ResolveError):
    """A layer or model parameter is unknown, of the wrong type, or out of range."""


class LimitError(ArchDSLError):
    """The program describes an absurdly large model (checked before anything is allocated)."""


class GraphError(ArchDSLError):
    """The lowered graph breaks an invariant (widths, shared groups, one input and one output)."""


class RegistryError(ArchDSLError):
    """A layer type cannot be registered (duplicate name, missing part of the layer contract)."""


class BudgetError(ArchDSLError):
    """A budget text cannot be parsed (unknown key or unit, malformed limit)."""


class GenerationError(ArchDSLError):
    """Generation asked for something the model's state cannot give (past a limit, wrong batch)."""


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or an empty string."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
