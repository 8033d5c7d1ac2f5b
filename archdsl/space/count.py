"""The exact number of layouts of a search space, without listing them.

A layout is one set of parameters a sampler can draw (sites that are not active are not
drawn). The count works on the AST: a sequence multiplies, a layer choice adds its options, a
value choice multiplies by its options, a count choice adds its counts, a repeat marked
``each`` raises its body's count to the number of copies. Named choices complicate the product:
a let used in several places is one decision, and a let used only inside an option is drawn only
when that option is. So every count carries the set of named lets it uses: ``{frozenset(lets):
ways}``, and the lets' own counts are multiplied in once at the end, for each set.
"""

from __future__ import annotations

import math
from collections import Counter
from functools import lru_cache
from typing import Any

from archdsl.space.sites import float_grid_size, range_points
from archdsl.space.walk import CHOICE_VALUES, LetTable
from archdsl.syntax import ast

Ways = dict[frozenset, Any]  # set of lets used -> number of assignments (int, or math.inf)
ONE: Ways = {frozenset(): 1}


def value_count(choice: Any) -> int | float:
    if isinstance(choice, ast.Range):
        points = range_points(choice)
        if points is not None:
            return len(points)
        grid = float_grid_size(choice)
        return math.inf if grid is None else grid
    if isinstance(choice, ast.ValueChoice):
        return len(choice.options)
    return len(choice.options)  # a named value written as bare names


def _times(a: Ways, b: Ways) -> Ways:
    out: Counter = Counter()
    for sa, na in a.items():
        for sb, nb in b.items():
            out[sa | sb] += na * nb
    return dict(out)


def _plus(a: Ways, b: Ways) -> Ways:
    out = Counter(a)
    for s, n in b.items():
        out[s] += n
    return dict(out)


def _scale(a: Ways, k: Any) -> Ways:
    return {s: n * k for s, n in a.items()}


def _power(a: Ways, k: int) -> Ways:
    out, base = ONE, a
    while k:
        if k & 1:
            out = _times(out, base)
        base = _times(base, base)
        k >>= 1
    return out


class _SizeCounter:
    def __init__(self, program: ast.Program, lets: LetTable):
        self.program = program
        self.lets = lets
        self.let_ways: dict[str, Ways] = {}
        self.in_each = 0

    def size(self) -> int | float:
        ways = ONE
        for param in self.program.header.params if self.program.header else ():
            ways = _times(ways, self._param(param, None))
        ways = _times(ways, self._seq(self.program.body, None))
        resolve = lru_cache(maxsize=None)(self._close)
        total: Any = 0
        for used, n in ways.items():
            total += n * resolve(used, frozenset())
        return total

    def _close(self, pending: frozenset, done: frozenset) -> Any:
        """Assignments of the lets in ``pending`` (and of those they use), given ``done``."""
        todo = sorted(pending - done)
        if not todo:
            return 1
        name = todo[0]
        total: Any = 0
        for used, n in self._let(name).items():
            total += n * self._close(pending | used, done | {name})
        return total

    def _let(self, name: str) -> Ways:
        if name not in self.let_ways:
            self.let_ways[name] = ONE  # a recursive let is refused elsewhere
            named = self.lets.value_lets.get(name)
            if named is not None:
                self.let_ways[name] = {frozenset(): value_count(named)}
            else:
                self.let_ways[name] = self._seq(self.lets.lets[name].body, name)
        return self.let_ways[name]

    def _seq(self, seq: ast.Seq, inside: str | None) -> Ways:
        ways = ONE
        for item in seq.items:
            ways = _times(ways, self._item(item, inside))
        return ways

    def _param(self, param: ast.Param, inside: str | None) -> Ways:
        if isinstance(param.value, CHOICE_VALUES):
            return {frozenset(): value_count(param.value)}
        if self.lets.value_choice(param.value) is not None:
            return {frozenset([param.value]): 1}
        return ONE

    def _item(self, item: Any, inside: str | None) -> Ways:
        if isinstance(item, ast.Call):
            ways = ONE
            if self.lets.target(item.name, inside) is not None:
                ways = {frozenset([item.name]): 1}
            for param in item.params:
                ways = _times(ways, self._param(param, inside))
            return ways
        if isinstance(item, ast.Repeat):
            body = self._seq(item.body, inside)
            if item.each:
                self.in_each += 1
                try:
                    body = self._seq(item.body, inside)
                finally:
                    self.in_each -= 1
            if isinstance(item.count, CHOICE_VALUES):
                counts = self._counts(item.count)
                if not item.each:
                    return _scale(body, len(counts))
                out: Ways = {}
                for c in counts:
                    out = _plus(out, _power(body, c))
                return out
            return _power(body, item.count) if item.each else body
        if isinstance(item, ast.Alternatives):
            out = {}
            for option in item.options:
                out = _plus(out, self._seq(option, inside))
            return out
        if isinstance(item, ast.Parallel):
            ways = ONE
            for branch in item.branches:
                ways = _times(ways, self._seq(branch, inside))
            return ways
        if isinstance(item, ast.Shared) and self.in_each:
            # one set of weights inside copies drawn apart: one decision, like a let
            key = f"#shared{id(item)}"
            if key not in self.let_ways:
                outer, self.in_each = self.in_each, 0
                try:
                    self.let_ways[key] = self._seq(item.body, inside)
                finally:
                    self.in_each = outer
            return {frozenset([key]): 1}
        if isinstance(item, (ast.Group, ast.Shared)):
            return self._seq(item.body, inside)
        return ONE

    @staticmethod
    def _counts(choice: Any) -> list[int]:
        if isinstance(choice, ast.Range):
            return list(range_points(choice) or ())
        return [c for c in choice.options if isinstance(c, int)]


def space_size(program: ast.Program, lets: LetTable) -> int | float:
    return _SizeCounter(program, lets).size()
