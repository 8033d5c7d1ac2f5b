"""The choice sites of a search space: one Optuna parameter each, with a stable name.

    >>> from archdsl.space import parse_space
    >>> [s.name for s in parse_space("let mixer = {ssm, attn window={64, 256}}\\n{2, 4}x(mixer mlp)").sites]
    ['mixer', 'mixer.attn.window', 'repeat']

How a site is named (the name depends only on what is around the choice, never on its line,
column or position in a sequence, so editing unrelated text keeps every name):

- a ``let`` whose body is one choice: the let's name (``mixer``, ``w``);
- a value choice on a layer's parameter: ``LAYER.KEY`` (``attn.window``), in the header
  ``model.KEY``; a repeat-count choice: ``repeat``; a layer choice: its options' first names in
  braces (``{ssm,attn,gdn}``);
- inside a let, prefixed by the let's name (``block.ssm.state``); inside an option of a layer
  choice, by the choice and the option (``mixer.attn.window``, the option's name not repeated);
- inside a repeat marked ``each``, the copy: ``{mlp,moe}[3]`` (nested: ``[1][0]``);
- the same name twice in one program: ``#2``, ``#3`` in text order (``attn.window#2``).

A layer choice's options are labelled by their first layer or let name (``attn``), or by their
whole text when two options start alike (``attn window=64``); those labels are the values Optuna
sees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from archdsl.errors import LimitError
from archdsl.space import limits
from archdsl.space.walk import CHOICE_VALUES, LetTable, has_choices, iter_nodes, option_values
from archdsl.syntax import ast


@dataclass(frozen=True)
class Site:
    """One decision of a search space, an Optuna parameter.

    ``kind`` is ``"value"`` (a parameter or header value), ``"count"`` (a repeat count),
    ``"layer"`` (a layer or block choice; ``options`` are its labels), ``"int"`` or ``"float"``
    (a range: ``options`` is a ``range`` for ints, None for a continuous float range).
    ``condition`` says when the site is drawn (``"mixer=attn"``, ``"repeat>=3"``), None if always.
    """

    name: str
    kind: str
    options: Any
    span: ast.Span | None = field(compare=False)
    condition: str | None = None
    low: int | float | None = None
    high: int | float | None = None
    step: int | float | None = None
    log: bool = False

    @property
    def count(self) -> int | float:
        """How many values the site can take (``math.inf`` for a continuous range)."""
        if self.options is None:
            return math.inf
        return len(self.options)

    @property
    def distribution(self):
        """The Optuna distribution of this site (fixed: the same for every trial)."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "int":
            return IntDistribution(self.low, self.high, log=self.log, step=self.step or 1)
        if self.kind == "float":
            return FloatDistribution(self.low, self.high, log=self.log, step=self.step)
        return CategoricalDistribution(list(self.options))

    def suggest(self, trial: Any) -> Any:
        """Ask ``trial`` (an ``optuna.Trial`` or ``FixedTrial``) for this site's value."""
        if self.kind == "int":
            return trial.suggest_int(self.name, self.low, self.high, step=self.step or 1, log=self.log)
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)
        return trial.suggest_categorical(self.name, list(self.options))

    def describe(self) -> str:
        """``{ssm, attn, gdn}`` / ``{16..128 step=16}``, as the options read in the CLI."""
        if self.kind in ("int", "float"):
            extra = f" step={self.step}" if self.step is not None else (" log" if self.log else "")
            return f"{{{self.low}..{self.high}{extra}}}"
        return "{" + ", ".join(_show(o) for o in self.options) + "}"


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def range_points(choice: ast.Range) -> range | None:
    """The values of an int range (or of a float range with a step, as a count only: None)."""
    if choice.is_int:
        return range(choice.low, choice.high + 1, choice.step or 1)  # type: ignore[arg-type]
    return None


def float_grid_size(choice: ast.Range) -> int | None:
    if choice.is_int or choice.step is None:
        return None
    return round((choice.high - choice.low) / choice.step) + 1


def option_label(option: ast.Seq) -> str:
    """The first layer or let name of an option (``gdn`` for ``gdn mlp``)."""
    item = option.items[0]
    while True:
        if isinstance(item, ast.Call):
            return item.name
        if isinstance(item, (ast.Repeat, ast.Group, ast.Shared)):
            item = item.body.items[0]
        elif isinstance(item, ast.Parallel):
            return "(" + "|".join(option_label(b) for b in item.branches) + ")"
        elif isinstance(item, ast.Alternatives):
            return "{" + ",".join(option_label(o) for o in item.options) + "}"
        else:  # a bare value choice: invalid there, reported by validation
            return "value"


def option_labels(choice: ast.Alternatives) -> list[str]:
    """One label per option: its first name, or its text where two options start alike."""
    from archdsl.space.text import seq_text

    heads = [option_label(o) for o in choice.options]
    return [h if heads.count(h) == 1 else seq_text(o) for h, o in zip(heads, choice.options)]


def join(prefix: str, label: str) -> str:
    """``mixer.attn`` + ``attn.window`` -> ``mixer.attn.window`` (the option is not repeated)."""
    if not prefix:
        return label
    last = prefix.rsplit(".", 1)[-1]
    if label.startswith(last + "."):
        label = label[len(last) + 1 :]
    return f"{prefix}.{label}"


@dataclass
class _Scope:
    prefix: str = ""
    suffix: str = ""
    copies: tuple[int, ...] = ()
    condition: str | None = None
    inside: str | None = None  # the let whose body this is
    depth: int = 0


class SiteTable:
    """Every site of a program, and the site of each choice node at each copy.

    ``key(node, copies)`` is how sampling finds the site of a choice it meets: the node's
    identity in this program and the copy indices of the ``each`` repeats around it (within its
    let). Named values are keyed by their let's choice node."""

    def __init__(self, program: ast.Program, lets: LetTable):
        self.program = program
        self.lets = lets
        self.sites: list[Site] = []
        self.by_key: dict[tuple[int, tuple[int, ...]], Site] = {}
        self.labels: dict[int, list[str]] = {}  # id(Alternatives) -> option labels
        self.taken: dict[str, int] = {}
        self.shared_seen: set[int] = set()
        self.listing = True
        self.reachable = self._reachable()
        for param in program.header.params if program.header else ():
            if isinstance(param.value, CHOICE_VALUES):
                self._value_site(param.value, f"model.{param.key}", _Scope())
        for let in program.lets:
            if let.name in self.reachable:
                self._let(let)
        self._seq(program.body, _Scope())
        # the lets no layout uses: keyed (sampling substitutes them with any option, so that
        # the plain program still resolves) but not listed, never drawn, not counted
        self.listing = False
        for let in program.lets:
            if let.name not in self.reachable:
                self._let(let)

    def site(self, node: object, copies: tuple[int, ...]) -> Site:
        return self.by_key[(id(node), copies)]

    # --- naming ------------------------------------------------------------------------------

    def _add(self, node: object, scope: _Scope, label: str, kind: str, options: Any, **extra: Any) -> Site:
        if not self.listing:
            site = Site(f"(unused) {join(scope.prefix, label)}", kind, options, getattr(node, "span", None), **extra)
            self.by_key[(id(node), scope.copies)] = site
            return site
        if len(self.sites) >= limits.MAX_SITES:
            raise LimitError(
                f"the search space has more than {limits.MAX_SITES:,} choice sites; "
                "draw fewer copies separately (each) or use named choices",
                getattr(node, "span", None),
            )
        name = join(scope.prefix, label) + scope.suffix
        seen = self.taken.get(name, 0)
        self.taken[name] = seen + 1
        if seen:
            name = f"{name}#{seen + 1}"
            while name in self.taken:  # a let literally named like a dedup'ed name
                seen += 1
                name = f"{name.rsplit('#', 1)[0]}#{seen + 1}"
            self.taken[name] = 1
        site = Site(name, kind, options, getattr(node, "span", None), scope.condition, **extra)
        self.sites.append(site)
        self.by_key[(id(node), scope.copies)] = site
        return site

    def _value_site(self, choice: Any, label: str, scope: _Scope, kind: str = "value") -> Site:
        if isinstance(choice, ast.Range):
            points = range_points(choice)
            return self._add(
                choice,
                scope,
                label,
                "int" if choice.is_int else "float",
                points,
                low=choice.low,
                high=choice.high,
                step=choice.step,
                log=choice.log,
            )
        if isinstance(choice, ast.Alternatives):  # a named value written as bare names
            return self._add(choice, scope, label, kind, tuple(option_values(choice)))
        return self._add(choice, scope, label, kind, tuple(choice.options))

    # --- the walk ----------------------------------------------------------------------------

    def _let(self, let: ast.Let) -> None:
        scope = _Scope(prefix="", inside=let.name)
        named = self.lets.value_lets.get(let.name)
        if named is not None:
            self._value_site(named, let.name, scope)
            return
        items = let.body.items
        if len(items) == 1 and isinstance(items[0], ast.Alternatives):
            self._alternatives(items[0], scope, label=let.name)
            return
        self._seq(let.body, _Scope(prefix=let.name, inside=let.name))

    def _seq(self, seq: ast.Seq, scope: _Scope) -> None:
        for item in seq.items:
            self._item(item, scope)

    def _item(self, item: object, scope: _Scope) -> None:
        if isinstance(item, ast.Call):
            for param in item.params:
                if isinstance(param.value, CHOICE_VALUES):
                    self._value_site(param.value, f"{item.name}.{param.key}", scope)
        elif isinstance(item, ast.Repeat):
            self._repeat(item, scope)
        elif isinstance(item, (ast.Group, ast.Shared)):
            inner = scope
            if isinstance(item, ast.Shared) and scope.copies:
                # one set of weights: its choices are one decision, not one per copy
                if id(item) in self.shared_seen:
                    return
                self.shared_seen.add(id(item))
                inner = _Scope(scope.prefix, "", (), scope.condition, scope.inside, scope.depth)
            self._seq(item.body, inner)
        elif isinstance(item, ast.Parallel):
            for branch in item.branches:
                self._seq(branch, scope)
        elif isinstance(item, ast.Alternatives):
            self._alternatives(item, scope)

    def _repeat(self, item: ast.Repeat, scope: _Scope) -> None:
        counts: list[int] | None = None
        if isinstance(item.count, CHOICE_VALUES):
            site = self._value_site(item.count, "repeat", scope, kind="count")
            counts = [c for c in (site.options or ()) if isinstance(c, int)]
        if not item.each or not has_choices(item.body):
            self._seq(item.body, scope)
            return
        most = max(counts, default=1) if counts is not None else item.count
        least = min(counts, default=1) if counts is not None else item.count
        per_copy = sum(1 for node in iter_nodes(item.body) if isinstance(node, (*CHOICE_VALUES, ast.Alternatives)))
        if len(self.sites) + per_copy * most > limits.MAX_SITES:  # refused before any is made
            raise LimitError(
                f"this repeat draws {per_copy * most:,} choices separately ({most:,} copies), more than the "
                f"limit of {limits.MAX_SITES:,} choice sites; draw fewer copies separately or use named choices",
                item.span,
            )
        for copy in range(most):  # type: ignore[arg-type]
            condition = scope.condition
            if copy >= least:
                repeat_site = self.by_key[(id(item.count), scope.copies)].name
                condition = _and(condition, f"{repeat_site}>={copy + 1}")
            inner = _Scope(scope.prefix, f"{scope.suffix}[{copy}]", (*scope.copies, copy), condition, scope.inside)
            self._seq(item.body, inner)

    def _alternatives(self, item: ast.Alternatives, scope: _Scope, label: str | None = None) -> None:
        labels = self.labels.get(id(item))
        if labels is None:  # once per choice, not once per copy of an `each` repeat
            labels = self.labels[id(item)] = option_labels(item)
        name_label = label if label is not None else "{" + ",".join(option_label(o) for o in item.options) + "}"
        site = self._add(item, scope, name_label, "layer", tuple(labels))
        for option, option_name in zip(item.options, labels):
            inner = _Scope(
                prefix=join(site.name, option_name)
                if " " not in option_name
                else f"{site.name}.{option_label(option)}",
                suffix="",
                copies=scope.copies,
                condition=_and(scope.condition, f"{site.name}={option_name}"),
                inside=scope.inside,
                depth=scope.depth + 1,
            )
            if inner.depth > limits.MAX_CHOICE_DEPTH:
                raise LimitError(f"choices nested more than {limits.MAX_CHOICE_DEPTH} deep", item.span)
            self._seq(option, inner)

    def _reachable(self) -> set[str]:
        """Names of the lets that the stack uses (through options and other lets too)."""
        from archdsl.space.walk import iter_nodes

        found: set[str] = set()
        todo: list[tuple[str | None, object]] = [(None, self.program.body)]
        todo += [(None, p) for p in (self.program.header.params if self.program.header else ())]
        while todo:
            inside, root = todo.pop()
            for node in iter_nodes(root):
                names: list[str] = []
                if isinstance(node, ast.Call):
                    if self.lets.target(node.name, inside) is not None:
                        names.append(node.name)
                    names += [p.value for p in node.params if self.lets.value_choice(p.value) is not None]
                elif isinstance(node, ast.Param) and self.lets.value_choice(node.value) is not None:
                    names.append(node.value)  # type: ignore[arg-type]
                for name in names:
                    if name not in found:
                        found.add(name)
                        todo.append((name, self.lets.lets[name].body))
        return found


def _and(first: str | None, second: str) -> str:
    return second if first is None else f"{first}, {second}"
