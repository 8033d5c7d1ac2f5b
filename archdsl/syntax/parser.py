"""Text -> AST: the parse stage.

    >>> from archdsl.syntax import parse_program
    >>> prog = parse_program("4x(ssm) 1x(attn window=512)")
    >>> [type(item).__name__ for item in prog.body.items]
    ['Repeat', 'Repeat']

The grammar is ``grammars/archdsl.lark`` (lark, LALR(1)). This module loads it once, cleans
the text (UTF-8, BOM, line endings), runs lark, and turns its tree into the frozen dataclasses of
:mod:`archdsl.syntax.ast`. Every failure is a :class:`~archdsl.errors.DSLSyntaxError` with a
span and the source attached; no lark exception or ``VisitError`` escapes.
"""

from __future__ import annotations

import functools
import math
from dataclasses import replace
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError

from archdsl.errors import ArchDSLError, DSLSyntaxError, LimitError, did_you_mean
from archdsl.spec.limits import MAX_NESTING, MAX_SUBLAYERS
from archdsl.syntax import ast
from archdsl.syntax._messages import character_message, key_name, token_message

GRAMMAR_FILE = "archdsl.lark"
# Deeper nesting than this is certainly a mistake (or an attack); it is refused while the
# tokens stream past, before any tree is built, so no recursion limit is ever in reach.
MAX_DEPTH = MAX_NESTING  # one limit for parentheses and for nesting through lets
# A number longer than this is refused before int() sees it (CPython refuses > 4300 digits).
MAX_NUMBER_CHARS = 100


def grammar_path() -> Path:
    """Where ``archdsl.lark`` is: inside the package (a wheel), else the repository root."""
    package_dir = Path(__file__).resolve().parents[1]  # .../archdsl
    for folder in (package_dir / "grammars", package_dir.parent / "grammars"):
        path = folder / GRAMMAR_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"{GRAMMAR_FILE} not found in {package_dir / 'grammars'} nor in {package_dir.parent / 'grammars'}"
    )


class _Layout:
    """Postlexer: newlines inside parentheses are whitespace, runs of _NL fold into one, none at
    the ends; nesting deeper than MAX_DEPTH and a number glued to a name are refused."""

    always_accept = ()

    def process(self, stream):
        depth = 0
        pending = None  # an _NL held back until something follows it
        prev = None
        calls = 0  # names written as calls (not parameter values): more is refused as it streams
        value_next = False  # the token after a parameter's `key=` is its value
        for tok in stream:
            is_value, value_next = value_next, tok.type == "KEY" and (prev is None or prev.type != "LET")
            if tok.type == "NAME" and not is_value:  # `let NAME =` is a KEY too, but no parameter
                calls += 1
                if calls > MAX_SUBLAYERS:
                    raise LimitError(
                        f"more than {MAX_SUBLAYERS:,} layer calls written out; the limit of a program is "
                        f"{MAX_SUBLAYERS:,}: write repeats as Nx(...)",
                        _token_span(tok),
                    )
            if tok.type == "_NL":
                # ';' inside parentheses stays, so that the parser reports it
                if prev is None or (depth > 0 and tok.value == "\n"):
                    continue
                if pending is None:
                    pending = tok
                continue
            if pending is not None:
                yield pending
                pending = None
            if (
                prev is not None
                and prev.type == "NUMBER"
                and prev.end_pos == tok.start_pos
                and tok.type in ("NAME", "KEY", "NUMBER", "COUNT", "TRUE", "FALSE")
            ):
                raise DSLSyntaxError(
                    f"unexpected '{tok.value}' right after '{prev.value}': put a space between them",
                    _token_span(tok),
                )
            if tok.type in ("LPAR", "LBRACE"):
                depth += 1
                if depth > MAX_DEPTH:
                    raise DSLSyntaxError(
                        f"parentheses nested more than {MAX_DEPTH} deep: flatten the program, or use 'let' names",
                        _token_span(tok),
                    )
            elif tok.type in ("RPAR", "RBRACE", "CHOICE_X"):
                depth = max(depth - 1, 0)  # an unmatched ')' is the parser's to report
            prev = tok
            yield tok


def parser_cache_file() -> str | bool:
    """Where lark keeps the analysed grammar between runs: a file in the user's cache folder
    (``$XDG_CACHE_HOME/archdsl`` on Linux), or False (no cache) where that folder cannot be made.

    Building the LALR tables takes a few hundred milliseconds, most of a ``check``; loading them
    takes a few. Lark writes the hash of the grammar text, the options and the lark and Python
    versions on the file's first line and rebuilds when they differ, so an edited grammar or
    another lark is never served stale tables; a file it cannot read or write is rebuilt or
    skipped (a read-only cache folder costs the build, not an error)."""
    import platformdirs

    folder = Path(platformdirs.user_cache_dir("archdsl", appauthor=False))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return str(folder / "grammar.lark-cache")


@functools.lru_cache(maxsize=1)
def _lark() -> Lark:
    return build_lark(cache=parser_cache_file())


def build_lark(*, cache: str | bool) -> Lark:
    """The LALR parser of the grammar, its tables loaded from ``cache`` (a file path) when that
    holds them for this very grammar, else built (and written there); ``cache=False`` always
    builds."""
    path = grammar_path()
    parser = Lark.open(
        path.name,
        rel_to=str(path),
        parser="lalr",
        lexer="basic",
        start="program",
        strict=True,  # lark checks terminal collisions (with interegular) and conflicts when it builds
        propagate_positions=True,
        postlex=_Layout(),
        cache=cache,
    )
    # Lark.lex (the context of a syntax error) builds a new lexer on every call unless the Lark
    # object has one, and with strict=True each build re-runs the terminal collision check
    # (tens of ms). Give it the parser's own basic lexer, built and checked once.
    frontend_lexer = getattr(parser.parser, "lexer", None)
    parser.lexer = getattr(frontend_lexer, "lexer", frontend_lexer)
    return parser


def _token_span(tok: Token, file: str | None = None) -> ast.Span:
    return ast.Span(tok.line, tok.column, tok.end_line, tok.end_column, file)


def source_text(text: str | bytes, filename: str | None = None) -> str:
    """The text that spans point into: decoded, without a BOM, every line ending '\\n'.

    Attach this (not the raw input) to errors raised after parsing, so that their context
    line matches. A byte that is not UTF-8 raises DSLSyntaxError at its line:col."""
    if isinstance(text, (bytes, bytearray)):
        data = bytes(text)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            prefix = _normalise(data[: exc.start].decode("utf-8"))
            line = prefix.count("\n") + 1
            column = len(prefix) - (prefix.rfind("\n") + 1) + 1
            shown = _normalise(data.decode("utf-8", errors="replace"))
            raise DSLSyntaxError(
                f"the text is not valid UTF-8: byte 0x{data[exc.start]:02x} cannot be decoded",
                ast.Span(line, column, line, column + 1, filename),
            ).with_source(shown, filename) from None
    return _normalise(text)


def _normalise(text: str) -> str:
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.replace("\r\n", "\n").replace("\r", "\n")


def parse_program(text: str | bytes, filename: str | None = None) -> ast.Program:
    """Parse a whole program (``model`` header, ``let`` lines, the stack) into an AST.

    Raises :class:`~archdsl.errors.DSLSyntaxError` whose ``str()`` shows file:line:col, the
    line and a caret.
    """
    source = source_text(text, filename)
    try:
        tree = _lark().parse(source)
        return _ToAST(filename).transform(tree)
    except ArchDSLError as err:
        raise err.with_source(source, filename) from None
    except VisitError as exc:
        if isinstance(exc.orig_exc, ArchDSLError):
            raise exc.orig_exc.with_source(source, filename) from None
        raise exc.orig_exc from None  # a bug in the transformer: show it as itself
    except UnexpectedInput as exc:
        raise _syntax_error(exc, source, filename).with_source(source, filename) from None


def _syntax_error(exc: UnexpectedInput, source: str, filename: str | None) -> DSLSyntaxError:
    """Turn lark's error into ours, with words a user understands (see _messages.py)."""
    if isinstance(exc, UnexpectedCharacters):
        before = _tokens_before(source, exc.pos_in_stream)
        message = character_message(source, exc.pos_in_stream, before)
        span = ast.Span(exc.line, exc.column, exc.line, exc.column + 1, filename)
        return DSLSyntaxError(message, span)
    if not isinstance(exc, UnexpectedToken):  # UnexpectedEOF: Earley only, never raised here
        line, column = max(exc.line, 1), max(exc.column, 1)
        return DSLSyntaxError("unexpected end of input", ast.Span(line, column, line, column + 1, filename))
    tok = exc.token
    at_end = tok.type == "$END"
    before = _tokens_before(source, len(source) if at_end else tok.start_pos)
    message = token_message(tok, set(exc.expected), before)
    if at_end:
        last = before[-1] if before else None
        line, column = (last.end_line, last.end_column) if last else (1, 1)
        span = ast.Span(line, column, line, column + 1, filename)
    else:
        span = _token_span(tok, filename)
    return DSLSyntaxError(message, span)


def _tokens_before(source: str, pos: int) -> list[Token]:
    """The layout-processed tokens that start before ``pos``: the context of an error."""
    tokens: list[Token] = []
    try:
        for tok in _lark().lex(source):
            if tok.start_pos >= pos:
                break
            tokens.append(tok)
    except (UnexpectedInput, ArchDSLError):
        pass  # the text stops being tokens here; what came before is the context
    return tokens


def _span(meta, file: str | None) -> ast.Span:
    return ast.Span(meta.line, meta.column, meta.end_line, meta.end_column, file)


def _join(first: ast.Span, last: ast.Span) -> ast.Span:
    return ast.Span(first.line, first.column, last.end_line, last.end_column, first.file)


@v_args(meta=True)
class _ToAST(Transformer):
    """lark tree -> AST. Tree names equal method names; no validation happens here."""

    def __init__(self, filename: str | None):
        super().__init__()
        self.file = filename

    def program(self, meta, children):
        header = children[0] if children and isinstance(children[0], ast.Header) else None
        lets = tuple(c for c in children if isinstance(c, ast.Let))
        return ast.Program(header, lets, children[-1], _span(meta, self.file))

    def header(self, meta, params):
        return ast.Header(tuple(params), _span(meta, self.file))

    def let(self, meta, children):
        key, body = children
        return ast.Let(key_name(key), body, _span(meta, self.file))

    def body(self, meta, seqs):
        items = tuple(item for seq in seqs for item in seq.items)
        return ast.Seq(items, _span(meta, self.file))

    def seq(self, meta, items):
        return ast.Seq(tuple(items), _span(meta, self.file))

    def call(self, meta, children):
        name, *params = children
        return ast.Call(str(name), tuple(params), _span(meta, self.file))

    def param(self, meta, children):
        key, value = children
        if isinstance(value, (ast.ValueChoice, ast.Range)):
            return ast.Param(key_name(key), value, _span(meta, self.file), value.span)
        return ast.Param(key_name(key), self._value(value), _span(meta, self.file), _token_span(value, self.file))

    def repeat(self, meta, children):
        count, *rest = children
        each = bool(rest) and isinstance(rest[0], Token) and rest[0].type == "EACH"
        branches = rest[1:] if each else rest
        span = _span(meta, self.file)
        if isinstance(count, (ast.ValueChoice, ast.Range)):
            return ast.Repeat(count, self._one_seq(branches), span, count.span, each=each)
        digits = count.value[:-1]  # without the 'x'
        count_span = ast.Span(count.line, count.column, count.end_line, count.end_column - 1, self.file)
        return ast.Repeat(self._int(digits, count_span), self._one_seq(branches), span, count_span, each=each)

    # --- search-space choices (archdsl.space gives them meaning) ---------------------------

    def alternatives(self, meta, seqs):
        return ast.Alternatives(tuple(seqs), _span(meta, self.file))

    def value_choice(self, meta, children):
        if len(children) == 1 and isinstance(children[0], ast.Range):
            return children[0]
        values = tuple(self._value(tok) for tok in children)
        spans = tuple(_token_span(tok, self.file) for tok in children)
        return ast.ValueChoice(values, _span(meta, self.file), spans)

    values = value_choice

    def count_choice(self, meta, children):
        *values, close = children  # the last token is '}x'
        choice = self.value_choice(meta, values)
        # the span ends before the 'x', like a COUNT's
        end = ast.Span(close.line, close.column, close.end_line, close.end_column - 1, self.file)
        return replace(choice, span=_join(_span(meta, self.file), end))

    def range(self, meta, children):
        low, high, *options = children
        step, log, option_span = None, False, None
        for option in options:
            name, value, where = option
            if name == "step" and value is not None and step is None and not log:
                step = self._number(value)
            elif name == "log" and value is None and not log and step is None:
                log = True
            elif name in ("step", "log") and (step is not None or log):
                raise DSLSyntaxError("a range takes either 'step=' or 'log', once", where)
            elif name == "step":
                raise DSLSyntaxError("write the step of a range as step=N, as in {16..128 step=16}", where)
            elif name == "log" and value is not None:
                raise DSLSyntaxError("write a log-scaled range as {1e-4..1e-2 log}, without '='", where)
            else:
                raise DSLSyntaxError(
                    f"unknown range option '{name}'{did_you_mean(name, ['step', 'log'])}: "
                    "a range takes step=N or log, as in {16..128 step=16} or {1e-4..1e-2 log}",
                    where,
                )
            option_span = where
        low_span, high_span = _token_span(low, self.file), _token_span(high, self.file)
        return ast.Range(
            self._number(low), self._number(high), step, log, _span(meta, self.file), low_span, high_span, option_span
        )

    def range_option(self, meta, children):
        name = children[0]
        if name.type == "KEY":
            return key_name(name), children[1], _span(meta, self.file)
        return str(name), None, _span(meta, self.file)

    def _number(self, tok: Token) -> int | float:
        return self._value(tok)  # a NUMBER token

    def shared(self, meta, branches):
        return ast.Shared(self._one_seq(branches), _span(meta, self.file))

    def paren(self, meta, branches):
        if len(branches) == 1:
            return ast.Group(branches[0], _span(meta, self.file))
        return ast.Parallel(tuple(branches), _span(meta, self.file))

    @staticmethod
    def _one_seq(branches: list[ast.Seq]) -> ast.Seq:
        """The body of ``Nx(...)``/``shared(...)``; ``Nx(a | b)`` means ``Nx((a | b))``."""
        if len(branches) == 1:
            return branches[0]
        inner = _join(branches[0].span, branches[-1].span)
        return ast.Seq((ast.Parallel(tuple(branches), inner),), inner)

    def _value(self, tok: Token) -> ast.Value:
        if tok.type == "TRUE":
            return True
        if tok.type == "FALSE":
            return False
        if tok.type == "NAME":
            return str(tok)
        span = _token_span(tok, self.file)
        if any(c in tok.value for c in ".eE"):
            return self._float(tok.value, span)
        return self._int(tok.value, span)

    @staticmethod
    def _int(text: str, span: ast.Span) -> int:
        if len(text) > MAX_NUMBER_CHARS:
            raise DSLSyntaxError(f"number too long ({len(text)} digits, at most {MAX_NUMBER_CHARS})", span)
        return int(text)

    @staticmethod
    def _float(text: str, span: ast.Span) -> float:
        if len(text) > MAX_NUMBER_CHARS:
            raise DSLSyntaxError(f"number too long ({len(text)} characters, at most {MAX_NUMBER_CHARS})", span)
        value = float(text)
        if not math.isfinite(value):
            raise DSLSyntaxError(f"number {text} is too large for a float", span)
        return value
