"""Small facts about a search-space AST that every pass needs: which nodes are choices, which
``let`` a name refers to, which lets are named values (``let w = {256, 512}``)."""

from __future__ import annotations

from collections.abc import Iterator

from archdsl.errors import DSLSyntaxError, ResolveError
from archdsl.syntax import ast

CHOICE_VALUES = (ast.ValueChoice, ast.Range)


def is_choice_value(value: object) -> bool:
    return isinstance(value, CHOICE_VALUES)


def iter_nodes(node: object) -> Iterator[object]:
    """Every AST node under ``node`` (params and choice values included), depth first."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        if isinstance(current, ast.Program):
            children: list[object] = [*(current.header.params if current.header else ()), *current.lets, current.body]
        elif isinstance(current, ast.Let):
            children = [current.body]
        elif isinstance(current, ast.Seq):
            children = list(current.items)
        elif isinstance(current, ast.Call):
            children = list(current.params)
        elif isinstance(current, ast.Param):
            children = [current.value] if is_choice_value(current.value) else []
        elif isinstance(current, ast.Repeat):
            children = ([current.count] if is_choice_value(current.count) else []) + [current.body]
        elif isinstance(current, (ast.Shared, ast.Group)):
            children = [current.body]
        elif isinstance(current, ast.Parallel):
            children = list(current.branches)
        elif isinstance(current, ast.Alternatives):
            children = list(current.options)
        else:
            children = []
        stack.extend(reversed(children))


def first_choice(node: object) -> ast.Span | None:
    """The span of the first choice (or ``each`` repeat) under ``node``, or None for plain text."""
    for item in iter_nodes(node):
        if isinstance(item, (ast.ValueChoice, ast.Range, ast.Alternatives)):
            return item.span
    return None


def has_choices(node: object) -> bool:
    return first_choice(node) is not None


def refuse_choices(program: ast.Program) -> None:
    """``archdsl.parse`` on a search space: point at the first choice and name parse_space."""
    span = first_choice(program)
    if span is not None:
        raise DSLSyntaxError(
            "this text has search choices ({...}), so it is a search space, not one architecture: "
            "read it with archdsl.parse_space (or 'archdsl sample FILE' on the command line)",
            span,
        )


class LetTable:
    """The ``let`` definitions of a program and what each name refers to where it is used."""

    def __init__(self, program: ast.Program):
        self.lets: dict[str, ast.Let] = {}
        for let in program.lets:
            if let.name in self.lets:
                first = self.lets[let.name].span
                raise ResolveError(f"'{let.name}' is defined twice (first at {first.line}:{first.column})", let.span)
            self.lets[let.name] = let
        self.index = {name: i for i, name in enumerate(self.lets)}
        self.value_lets: dict[str, ast.ValueChoice | ast.Range | ast.Alternatives] = {}
        self._kinds(program)

    def target(self, name: str, inside: str | None) -> ast.Let | None:
        """The let that ``name`` means inside the definition of ``inside`` (None: in the stack).
        Lets have lexical scope, as in the resolver: the stack sees every let, a let's body only
        the lets above it (its own name, if a layer's, is the layer)."""
        let = self.lets.get(name)
        if let is None or (inside is not None and self.index[name] >= self.index[inside]):
            return None
        return let

    def value_choice(self, name: object) -> ast.ValueChoice | ast.Range | ast.Alternatives | None:
        """The choice of the named value ``name`` (a param value such as ``window=w``), or None."""
        return self.value_lets.get(name) if isinstance(name, str) else None

    def _kinds(self, program: ast.Program) -> None:
        """Sort lets into named values (used as ``key=NAME``) and blocks (used as layers). A let
        whose body is one value choice is a value; one whose options are bare names is a value
        when it is used as one. Using one name both ways is an error at the second use."""
        as_value: dict[str, ast.Span] = {}
        as_item: dict[str, ast.Span] = {}
        scopes: list[tuple[str | None, object]] = [(let.name, let.body) for let in program.lets]
        scopes.append((None, program.body))
        for inside, root in scopes:
            for node in iter_nodes(root):
                if isinstance(node, ast.Call):
                    if self.target(node.name, inside) is not None:
                        as_item.setdefault(node.name, node.span)
                        if node.name in as_value:
                            self._conflict(node.name, as_value[node.name], node.span)
                    for param in node.params:
                        if self._choice_let(param.value) and param.value != inside:
                            as_value.setdefault(param.value, param.value_span or param.span)
                            if param.value in as_item:
                                self._conflict(param.value, as_item[param.value], param.value_span or param.span)
        for param in program.header.params if program.header else ():
            if self._choice_let(param.value):
                as_value.setdefault(param.value, param.value_span or param.span)
        for name, let in self.lets.items():
            body = let.body.items
            single = body[0] if len(body) == 1 else None
            if isinstance(single, CHOICE_VALUES):
                self.value_lets[name] = single
            elif name in as_value:
                if isinstance(single, ast.Alternatives) and all(_bare_name(o) for o in single.options):
                    self.value_lets[name] = single
                else:
                    raise ResolveError(
                        f"'{name}' is used as a parameter value, but it is not a named value such as "
                        f"let {name} = {{256, 512}} or let {name} = {{silu, gelu}}",
                        as_value[name],
                    )
        for name, span in as_item.items():
            if name in self.value_lets:
                raise ResolveError(
                    f"'{name}' is a named value choice; use it as a parameter value (as in window={name}), "
                    "not as a layer",
                    span,
                )

    def _choice_let(self, value: object) -> bool:
        """Whether a parameter value names a let whose body is one choice: a named value (a let
        of anything else is a block, and ``key=NAME`` is then the plain name, as in act=silu)."""
        let = self.lets.get(value) if isinstance(value, str) else None
        return (
            let is not None
            and len(let.body.items) == 1
            and isinstance(let.body.items[0], (*CHOICE_VALUES, ast.Alternatives))
        )

    @staticmethod
    def _conflict(name: str, first: ast.Span, second: ast.Span) -> None:
        raise ResolveError(
            f"the named choice '{name}' is used both as a layer (or block) and as a parameter value "
            f"(first at {first.line}:{first.column}); one name is one kind of choice",
            second,
        )


def _bare_name(option: ast.Seq) -> bool:
    return len(option.items) == 1 and isinstance(option.items[0], ast.Call) and not option.items[0].params


def option_values(choice: ast.ValueChoice | ast.Range | ast.Alternatives) -> list[object]:
    """The values of a named value whose options are written as bare names ({silu, gelu})."""
    if isinstance(choice, ast.Alternatives):
        return [option.items[0].name for option in choice.options]  # type: ignore[union-attr]
    if isinstance(choice, ast.ValueChoice):
        return list(choice.options)
    raise TypeError("a range has no list of values")
