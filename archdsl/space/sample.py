"""Sampling: the chosen options substituted into the program, giving a plain AST.

The walk goes through the stack in text order and asks ``decide(site)`` for a value each time
it meets a choice that is active: a choice inside an option that was not chosen is never asked
for, nor one inside a let that the chosen layout does not use. A let is substituted the first
time it is used, so every use of a named choice is one decision. A repeat marked ``each`` is
unrolled, each copy substituted on its own. The result is a plain program (the lets kept, named
values written in place), which the plain resolver turns into the Spec.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from archdsl.layers.registry import is_layer
from archdsl.space.sites import Site, SiteTable
from archdsl.space.walk import CHOICE_VALUES, LetTable, has_choices
from archdsl.syntax import ast

Decide = Callable[[Site], Any]


def first_option(site: Site) -> Any:
    """The value a site takes where nothing asks for it (lets the layout does not use)."""
    return site.low if site.kind in ("int", "float") else site.options[0]


class Substitution:
    """One walk: ``run()`` returns the plain program of the values ``decide`` gives."""

    def __init__(self, program: ast.Program, lets: LetTable, sites: SiteTable, decide: Decide, static=frozenset()):
        self.program = program
        self.static = static  # ids of sequences with nothing to substitute (see static_seqs)
        self.lets = lets
        self.sites = sites
        self.decide = decide
        self.bodies: dict[str, ast.Seq] = {}  # let name -> substituted body, in order of first use
        self.named: dict[str, Any] = {}  # named value -> its value
        self.hoisted: dict[int, str] = {}  # id(Shared inside an `each`) -> the let that holds it
        self.hoisted_lets: dict[str | None, list[ast.Let]] = {}  # owner let (None: the stack) -> lets
        self.inside: str | None = None

    def run(self) -> ast.Program:
        header = self.program.header
        if header is not None:
            header = replace(header, params=tuple(self._param(p, (), "model") for p in header.params))
        body = self._seq(self.program.body, ())
        lets: list[ast.Let] = []
        for let in self.program.lets:
            if let.name in self.lets.value_lets:
                continue  # written in place at every use
            lets.extend(self.hoisted_lets.get(let.name, ()))
            if let.name not in self.bodies:
                self._visit(let.name, first_option)  # unused here: any option, nothing asked
            lets.append(replace(let, body=self.bodies[let.name]))
        lets.extend(self.hoisted_lets.get(None, ()))
        return replace(self.program, header=header, lets=tuple(lets), body=body)

    # --- lets ---------------------------------------------------------------------------------

    def _visit(self, name: str, decide: Decide | None = None) -> None:
        let = self.lets.lets[name]
        outer, outer_decide = self.inside, self.decide
        self.inside = name
        if decide is not None:
            self.decide = decide
        try:
            self.bodies[name] = let.body  # a recursive let is the resolver's to report
            self.bodies[name] = self._seq(let.body, ())
        finally:
            self.inside, self.decide = outer, outer_decide

    def _named_value(self, name: str) -> Any:
        if name not in self.named:
            choice = self.lets.value_lets[name]
            self.named[name] = self.decide(self.sites.site(choice, ()))
        return self.named[name]

    # --- the walk -----------------------------------------------------------------------------

    def _seq(self, seq: ast.Seq, copies: tuple[int, ...]) -> ast.Seq:
        if id(seq) in self.static:
            return seq
        return replace(seq, items=tuple(self._item(item, copies) for item in seq.items))

    def _param(self, param: ast.Param, copies: tuple[int, ...], owner: str) -> ast.Param:
        if isinstance(param.value, CHOICE_VALUES):
            return replace(param, value=self.decide(self.sites.site(param.value, copies)))
        if self.lets.value_choice(param.value) is not None:
            return replace(param, value=self._named_value(param.value))  # type: ignore[arg-type]
        return param

    def _item(self, item: Any, copies: tuple[int, ...]) -> Any:
        if isinstance(item, ast.Call):
            target = self.lets.target(item.name, self.inside)
            if target is not None and item.name not in self.bodies and item.name not in self.lets.value_lets:
                self._visit(item.name)
            if not item.params:
                return item
            return replace(item, params=tuple(self._param(p, copies, item.name) for p in item.params))
        if isinstance(item, ast.Repeat):
            return self._repeat(item, copies)
        if isinstance(item, ast.Alternatives):
            label = self.decide(self.sites.site(item, copies))
            option = item.options[self.sites.labels[id(item)].index(label)]
            return ast.Group(self._seq(option, copies), item.span)
        if isinstance(item, ast.Parallel):
            return replace(item, branches=tuple(self._seq(b, copies) for b in item.branches))
        if isinstance(item, ast.Shared):
            if copies:
                return self._hoist(item)
            return replace(item, body=self._seq(item.body, copies))
        if isinstance(item, ast.Group):
            return replace(item, body=self._seq(item.body, copies))
        return item  # a bare value choice: refused by validation before any sampling

    def _repeat(self, item: ast.Repeat, copies: tuple[int, ...]) -> Any:
        count = item.count
        if isinstance(count, CHOICE_VALUES):
            count = self.decide(self.sites.site(count, copies))
        if not item.each or not has_choices(item.body):
            return replace(item, count=count, body=self._seq(item.body, copies), each=False)
        units = tuple(ast.Group(self._seq(item.body, (*copies, i)), item.body.span) for i in range(count))
        return ast.Group(ast.Seq(units, item.span), item.span)

    def _hoist(self, item: ast.Shared) -> ast.Call:
        """``shared(...)`` inside an ``each`` copy is still one set of weights: it becomes one let
        (decided once), which every copy uses."""
        name = self.hoisted.get(id(item))
        if name is None:
            k = len(self.hoisted) + 1
            while f"each_shared{k}" in self.lets.lets or is_layer(f"each_shared{k}"):
                k += 1
            name = self.hoisted[id(item)] = f"each_shared{k}"
            body = ast.Seq((replace(item, body=self._seq(item.body, ())),), item.span)
            self.hoisted_lets.setdefault(self.inside, []).append(ast.Let(name, body, item.span))
        return ast.Call(name, (), item.span)


def static_seqs(program: ast.Program, lets: LetTable) -> frozenset[int]:
    """The ids of the sequences in ``program`` that sampling returns unchanged: no choice, no
    named value, no use of a let (whose first use decides its choices) anywhere inside."""
    static: set[int] = set()

    def plain(node: Any) -> bool:
        if isinstance(node, ast.Seq):
            ok = all([plain(item) for item in node.items])  # noqa: C419 - a list: visit every item
            if ok:
                static.add(id(node))
            return ok
        if isinstance(node, ast.Call):
            return node.name not in lets.lets and not any(
                isinstance(p.value, CHOICE_VALUES) or lets.value_choice(p.value) is not None for p in node.params
            )
        if isinstance(node, ast.Repeat):
            body = plain(node.body)
            return body and not node.each and not isinstance(node.count, CHOICE_VALUES)
        if isinstance(node, (ast.Group, ast.Shared)):
            return plain(node.body)
        if isinstance(node, ast.Parallel):
            return all([plain(b) for b in node.branches])  # noqa: C419 - visit every branch
        if isinstance(node, ast.Alternatives):
            for option in node.options:
                plain(option)
            return False
        return False

    for let in program.lets:
        plain(let.body)
    plain(program.body)
    return frozenset(static)
