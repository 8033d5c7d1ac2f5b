"""Checks of a search space before anything is sampled.

Every option of every choice is resolved against the layer registry as the plain language is
(the resolver of :mod:`archdsl.spec.resolve`, taught here to walk through choices), so an
unknown layer or parameter, a value out of range or a misspelt name in any option is an error at
that option's line and column, with "did you mean". Ranges, counts and duplicate options are
checked here too. What can only fail in combination (``heads`` against ``head_dim``) is found when
the combination is sampled (:meth:`archdsl.space.Space.sample`).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from archdsl.errors import LimitError, ResolveError
from archdsl.space import limits
from archdsl.space.walk import CHOICE_VALUES, LetTable, option_values
from archdsl.spec import limits as spec_limits
from archdsl.spec.model import ModelSettings, Node, RepeatNode, SeqNode
from archdsl.spec.resolve import _model_settings, _Resolver
from archdsl.syntax import ast


class SpaceError(ResolveError):
    """A search space that cannot be read: a bad choice, range or combination."""


def check_value_choice(choice: ast.ValueChoice) -> None:
    seen: dict[tuple[type, Any], int] = {}
    for i, value in enumerate(choice.options):
        key = (type(value), value)
        if key in seen:
            span = choice.option_spans[i] if i < len(choice.option_spans) else choice.span
            raise SpaceError(f"duplicate option {_text(value)} in the choice", span)
        seen[key] = i


def check_range(r: ast.Range) -> None:
    where_low, where_high = r.low_span or r.span, r.high_span or r.span
    if r.low > r.high:
        raise SpaceError(f"range from {_text(r.low)} to {_text(r.high)}: the low end is above the high end", where_low)
    if r.log and r.low <= 0:
        raise SpaceError(
            f"a log-scaled range must stay above zero; {{{_text(r.low)}..{_text(r.high)} log}} reaches zero or below",
            where_low,
        )
    if r.step is None:
        return
    where_step = r.option_span or r.span
    if r.step <= 0:
        raise SpaceError(f"the step of a range must be positive, got {_text(r.step)}", where_step)
    if r.is_int:
        if not isinstance(r.step, int):
            raise SpaceError("an integer range takes an integer step", where_step)
        if (r.high - r.low) % r.step:
            last = r.low + (r.high - r.low) // r.step * r.step
            raise SpaceError(
                f"step {r.step} from {r.low} does not reach {r.high} (the last value would be {last}); "
                f"end the range at {last}",
                where_high,
            )
        return
    steps = (r.high - r.low) / r.step
    if abs(steps - round(steps)) > 1e-9 * max(1.0, abs(steps)):
        raise SpaceError(f"step {_text(r.step)} from {_text(r.low)} does not reach {_text(r.high)}", where_high)


def check_counts(choice: Any) -> list[int]:
    """The repeat counts of a count choice, each a positive int within the limit."""
    if isinstance(choice, ast.Range):
        check_range(choice)
        if not choice.is_int:
            raise SpaceError("a repeat count is a whole number: write the range with integers", choice.span)
        if choice.low < 1:
            raise SpaceError(f"repeat counts must be at least 1; this range starts at {choice.low}", choice.low_span)
        if choice.high > spec_limits.MAX_REPEAT:
            raise LimitError(
                f"repeat count {choice.high} is larger than the limit of {spec_limits.MAX_REPEAT}", choice.high_span
            )
        return [choice.low, choice.high]
    check_value_choice(choice)
    for value, span in zip(choice.options, choice.option_spans):
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpaceError(f"a repeat count is a whole number, not {_text(value)}", span)
        if value < 1:
            raise SpaceError(f"repeat counts must be at least 1, got {value}", span)
        if value > spec_limits.MAX_REPEAT:
            raise LimitError(f"repeat count {value} is larger than the limit of {spec_limits.MAX_REPEAT}", span)
    return list(choice.options)


def _text(value: Any) -> str:
    from archdsl.syntax.printer import format_value

    return format_value(value)


def value_options(choice: Any) -> list[tuple[Any, ast.Span | None]]:
    """The values to try for a value choice, with where each is written: every option of a
    list; both ends of a range (the last point reached by its step)."""
    if isinstance(choice, ast.Range):
        check_range(choice)
        high = choice.high
        if choice.step is not None and choice.is_int:
            high = choice.low + (choice.high - choice.low) // choice.step * choice.step
        return [(choice.low, choice.low_span), (high, choice.high_span)]
    if isinstance(choice, ast.ValueChoice):
        check_value_choice(choice)
        return list(zip(choice.options, choice.option_spans or [choice.span] * len(choice.options)))
    return [(v, o.span) for v, o in zip(option_values(choice), choice.options)]


def model_settings(program: ast.Program, overrides: dict[str, Any]) -> ModelSettings:
    """The model settings with every header choice at its first option, each option checked."""
    header = program.header
    if header is None:
        return _model_settings(None, overrides)
    first = []
    for param in header.params:
        if isinstance(param.value, CHOICE_VALUES) and param.key not in overrides:
            options = value_options(param.value)
            for value, span in options:
                trial = [p if p is not param else replace(p, value=value, value_span=span) for p in header.params]
                _model_settings(replace(header, params=tuple(_plain(trial, overrides))), overrides)
            first.append(replace(param, value=options[0][0], value_span=options[0][1]))
        else:
            first.append(param)
    return _model_settings(replace(header, params=tuple(_plain(first, overrides))), overrides)


def _plain(params: list[ast.Param], overrides: dict[str, Any]) -> list[ast.Param]:
    # an overridden header choice is not a choice any more
    return [p for p in params if not (p.key in overrides and isinstance(p.value, CHOICE_VALUES))]


class Validator(_Resolver):
    """The plain resolver, walking through choices: every option is resolved once."""

    def __init__(self, program: ast.Program, model: ModelSettings, table: LetTable):
        super().__init__(program, model)
        self.table = table

    def run_checks(self) -> None:
        # the lets as the resolver's run() registers them (LetTable refused duplicates already)
        for let in self.program.lets:
            self.let_index[let.name] = len(self.lets)
            self.lets[let.name] = let
        self.visible = len(self.lets)
        for let in self.program.lets:
            named = self.table.value_lets.get(let.name)
            if named is not None:
                value_options(named)  # ranges and duplicates; values are checked where used
            else:
                self._let(let.name)  # unused lets are checked too
        self._seq_items(self.program.body)

    def _expr(self, expr: ast.Expr) -> list[Node]:
        if isinstance(expr, ast.Alternatives):
            seen: dict[ast.Seq, int] = {}
            for option in expr.options:
                if option in seen:
                    raise SpaceError("duplicate option in the choice (it is written twice)", option.span)
                seen[option] = 1
            resolved = [self._seq_items(option) for option in expr.options]
            return resolved[0]
        if isinstance(expr, CHOICE_VALUES):
            raise SpaceError(
                "a value choice cannot stand in the stack: name it (let w = {256, 512}) and use it as a "
                "parameter value (attn window=w), or write it after a key (window={256, 512}); a repeat-count "
                "choice is written {2, 4}x(...), with no space before the x",
                expr.span,
            )
        if isinstance(expr, ast.Repeat) and isinstance(expr.count, CHOICE_VALUES):
            counts = check_counts(expr.count)
            body = SeqNode(items=tuple(self._seq_items(expr.body)), span=expr.body.span)
            return [RepeatNode(count=counts[0], body=body, span=expr.span)]
        return super()._expr(expr)

    def _layer(self, call: ast.Call):
        options = [self._param_options(param) for param in call.params]
        if all(o is None for o in options):
            return super()._layer(call)
        first = [
            param if opts is None else replace(param, value=opts[0][0], value_span=opts[0][1])
            for param, opts in zip(call.params, options)
        ]
        for i, opts in enumerate(options):
            for value, span in opts or ():
                params = list(first)
                params[i] = replace(call.params[i], value=value, value_span=span)
                super()._layer(replace(call, params=tuple(params)))
        return super()._layer(replace(call, params=tuple(first)))

    def _param_options(self, param: ast.Param) -> list[tuple[Any, ast.Span | None]] | None:
        if isinstance(param.value, CHOICE_VALUES):
            return value_options(param.value)
        named = self.table.value_choice(param.value)
        if named is not None:
            return value_options(named)
        return None


def check_size(program: ast.Program, table: LetTable) -> None:
    """The largest layout of the space stays within the plain language's limits (layer calls,
    nesting), by arithmetic on the AST: the largest option and the largest count."""
    memo: dict[str, int] = {}

    def most(expr: Any, depth: int, inside: str | None, stack: tuple[str, ...]) -> int:
        if depth > spec_limits.MAX_NESTING:
            raise LimitError(f"nesting deeper than {spec_limits.MAX_NESTING} levels", expr.span)
        if isinstance(expr, ast.Call):
            let = table.target(expr.name, inside)
            if let is None or expr.name in table.value_lets:
                return 1
            if expr.name in stack:
                return 0
            if expr.name not in memo:
                memo[expr.name] = most(let.body, depth + 1, expr.name, (*stack, expr.name))
            return memo[expr.name]
        if isinstance(expr, ast.Seq):
            return sum(most(item, depth, inside, stack) for item in expr.items)
        if isinstance(expr, (ast.Group, ast.Shared)):
            return most(expr.body, depth + 1, inside, stack)
        if isinstance(expr, ast.Parallel):
            return sum(most(b, depth + 1, inside, stack) for b in expr.branches)
        if isinstance(expr, ast.Alternatives):
            return max(most(o, depth + 1, inside, stack) for o in expr.options)
        if isinstance(expr, ast.Repeat):
            count = max(check_counts(expr.count)) if isinstance(expr.count, CHOICE_VALUES) else expr.count
            if count > spec_limits.MAX_REPEAT:
                raise LimitError(
                    f"repeat count {count} is larger than the limit of {spec_limits.MAX_REPEAT}",
                    expr.count_span or expr.span,
                )
            total = max(count, 0) * most(expr.body, depth + 1, inside, stack)
            if total > spec_limits.MAX_SUBLAYERS:
                raise LimitError(
                    f"this repeat unrolls to {total:,} layer calls in its largest layout, more than the limit "
                    f"of {spec_limits.MAX_SUBLAYERS:,}",
                    expr.span,
                )
            return total
        return 0

    total = most(program.body, 0, None, ())
    if total > spec_limits.MAX_SUBLAYERS:
        raise LimitError(
            f"the largest layout unrolls to {total:,} layer calls, more than the limit of "
            f"{spec_limits.MAX_SUBLAYERS:,}",
            program.body.span,
        )


def check_space_size(size: float, span: ast.Span | None) -> None:
    if size != math.inf and size > limits.MAX_SIZE:
        # digits from the bit length: str() of a huge int is slow, and refused past 4,300 digits
        digits = int(size.bit_length() * math.log10(2))
        raise LimitError(
            f"the search space has about 10^{digits} layouts, more than the limit of 10^{limits.MAX_SIZE_DIGITS}",
            span,
        )


class _CachingResolver(_Resolver):
    """The plain resolver, remembering each distinct layer call it resolved: the layouts of a
    space repeat the same few calls, and validating their parameters was a third of a sample."""

    def __init__(self, program: ast.Program, model: ModelSettings, cache: dict):
        super().__init__(program, model)
        self.cache = cache

    def _layer(self, call: ast.Call):
        # the span is part of the key: equal calls at different places keep their own spans,
        # which pictures and error messages point with (layouts repeat the same call sites)
        key = (call.span, call.name, tuple((p.key, type(p.value), p.value) for p in call.params), self.model)
        node = self.cache.get(key)
        if node is None:
            node = super()._layer(call)
            if len(self.cache) < 4096:
                self.cache[key] = node
        return node


def resolve_cached(program: ast.Program, cache: dict):
    """``archdsl.spec.resolve.resolve(program)`` with layer calls remembered in ``cache``."""
    return _CachingResolver(program, _model_settings(program.header, {}), cache).run()
