"""A search space: a program with choices, read once, sampled many times.

>>> import archdsl, optuna
>>> space = archdsl.parse_space("model d_model=64 vocab=100\\nlet mixer = {ssm, attn window={16, 32}}\\n{1, 2}x(mixer mlp)")
>>> space.size, [s.name for s in space.sites]
(6, ['mixer', 'mixer.attn.window', 'repeat'])
>>> spec = space.fix({"mixer": "attn", "mixer.attn.window": 16, "repeat": 2})
>>> print(spec, end="")
model d_model=64 vocab=100
2x(attn window=16 mlp)
>>> space.match(spec)
{'mixer': 'attn', 'mixer.attn.window': 16, 'repeat': 2}
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from archdsl.errors import ArchDSLError, did_you_mean
from archdsl.space import limits
from archdsl.space.count import space_size
from archdsl.space.sample import Decide, Substitution, static_seqs
from archdsl.space.sites import Site, SiteTable
from archdsl.space.text import program_text
from archdsl.space.validate import SpaceError, Validator, check_size, check_space_size, model_settings
from archdsl.space.walk import LetTable
from archdsl.spec.model import Spec
from archdsl.syntax import ast


class InfeasibleError(SpaceError):
    """A sampled combination of options that does not build (``heads`` against ``head_dim``);
    ``params`` are the values drawn, ``sites`` the sites the failure is about."""

    def __init__(self, message: str, span=None, source=None, params=None, sites=()):
        super().__init__(message, span, source)
        self.params = dict(params or {})
        self.sites = tuple(sites)


class OverBudgetError(SpaceError):
    """``Space.sample(trial, budget=...)`` drew a layout over the budget. ``spec`` is the layout,
    ``check`` the :class:`~archdsl.costing.BudgetCheck` (what is over, by how much), ``params`` the
    values drawn: a search records it as infeasible instead of training it."""

    def __init__(self, message: str, spec: Spec, check: Any, params: dict):
        super().__init__(message)
        self.spec = spec
        self.check = check
        self.params = params


class Space:
    """A family of layouts. Build it with :func:`archdsl.parse_space`; see the module docstring."""

    def __init__(self, program: ast.Program, source: str | None = None):
        self.program = program
        self.source = source
        self.lets = LetTable(program)
        check_size(program, self.lets)
        # the size is arithmetic on the AST: an absurd space is refused before its sites are made
        self._size = space_size(program, self.lets)
        check_space_size(self._size, program.body.span)
        self.table = SiteTable(program, self.lets)
        self.model = model_settings(program, {})
        Validator(program, self.model, self.lets).run_checks()
        self._by_name = {site.name: site for site in self.table.sites}
        self._static = static_seqs(program, self.lets)
        self._layers: dict = {}  # resolved layer calls, shared by every sample (see resolve_cached)

    # --- what the space is -------------------------------------------------------------------

    @property
    def sites(self) -> list[Site]:
        """Every choice site in text order (lets first, then the stack), with name, options, span."""
        return list(self.table.sites)

    @property
    def size(self) -> int | float:
        """The exact number of layouts (a Python int, however large; ``math.inf`` if a float
        range has no step)."""
        return self._size

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and self.program == other.program

    def __hash__(self) -> int:
        return hash(self.program)

    def __str__(self) -> str:
        return program_text(self.program)

    def __repr__(self) -> str:
        return f"<Space: {len(self.table.sites)} choice sites, {self.size} layouts>"

    def _repr_svg_(self) -> str:
        """Notebooks show a space as one of its layouts with the choice sites outlined."""
        from archdsl.draw import to_svg

        return to_svg(self)

    # --- from parameters to a layout ----------------------------------------------------------

    def sample(self, trial: Any, budget: Any = None, **cost_settings: Any) -> Spec:
        """The layout an ``optuna.Trial`` (or ``FixedTrial``) draws: only active sites are
        suggested, each with its fixed distribution. With ``budget`` (an ``archdsl.Budget`` or
        its text) a layout over it raises :class:`OverBudgetError` (with the layout and what is
        over), before anything is built; ``cost_settings`` (``seq_len``, ``batch``) go to its check.
        """
        drawn: dict[str, Any] = {}

        def decide(site: Site) -> Any:
            value = site.suggest(trial)
            drawn[site.name] = value
            return value

        spec = self._spec(decide, drawn)
        if budget is not None:
            self.check_budget(spec, budget, drawn, **cost_settings)
        return spec

    def fix(self, params: Mapping[str, Any]) -> Spec:
        """The layout of ``params`` (a finished trial's ``trial.params``). Every active site must
        have a value among its options; a name that is no site is an error."""
        if not isinstance(params, Mapping):
            raise ArchDSLError(f"fix() takes a dict of parameter values, not {type(params).__name__}")
        unknown = [name for name in params if name not in self._by_name]
        if unknown:
            hint = did_you_mean(unknown[0], self._by_name)
            raise SpaceError(
                f"'{unknown[0]}' is not a choice site of this space{hint}; sites: {', '.join(self._by_name) or 'none'}"
            )
        drawn: dict[str, Any] = {}

        def decide(site: Site) -> Any:
            if site.name not in params:
                raise SpaceError(
                    f"no value for the choice site '{site.name}' (options {site.describe()}), which this layout draws"
                    + (f" when {site.condition}" if site.condition else "")
                )
            value = _option(site, params[site.name])
            drawn[site.name] = value
            return value

        return self._spec(decide, drawn)

    def match(self, spec: Spec | str) -> dict[str, Any]:
        """The params of ``spec`` if it is a layout of this space (the first in enumeration
        order where several give it), else an :class:`ArchDSLError` that says so."""
        if isinstance(spec, str):
            import archdsl

            spec = archdsl.parse(spec)
        if not isinstance(spec, Spec):
            raise ArchDSLError(f"match() takes a Spec or program text, not {type(spec).__name__}")
        target = layout_key(spec)
        for params, candidate in self._iter(limit=limits.MAX_ENUMERATE, what="match a layout against"):
            if isinstance(candidate, Spec) and layout_key(candidate) == target:
                return params
        raise SpaceError("this layout is not a point of the search space (no choice of options gives it)")

    # --- enumeration --------------------------------------------------------------------------

    def layouts(self, budget: Any = None, *, limit: int = limits.MAX_ENUMERATE, tally=None, **cost_settings: Any):
        """Every layout of a space of at most ``limit`` layouts, lazily, as
        :class:`~archdsl.space.enumerate.Layout` (params, spec, cost, budget check). With
        ``budget`` (an ``archdsl.Budget`` or its text) only those within it; ``tally`` (a
        :class:`~archdsl.space.enumerate.Tally`) counts how many were seen, over and infeasible.
        ``cost_settings``: ``seq_len``, ``batch``, ``context`` of the cost."""
        from archdsl.space.enumerate import layouts

        return layouts(self, budget, limit=limit, tally=tally, **cost_settings)

    def _iter(self, *, limit: int, what: str) -> Iterator[tuple[dict[str, Any], Spec | InfeasibleError]]:
        """(params, spec) for every layout; in place of the spec, the error of a combination
        that does not build."""
        if self.size > limit:
            shown = "infinitely many (a float range without a step)" if self.size == math.inf else f"{self.size:,}"
            raise SpaceError(
                f"cannot {what} {shown} layouts: the limit is {limit:,}; narrow the space or sample it instead"
            )
        stack: list[tuple[int, ...]] = [()]
        while stack:
            prefix = stack.pop()
            chosen: list[int] = []
            drawn: dict[str, Any] = {}

            def decide(site: Site, prefix=prefix, chosen=chosen, drawn=drawn) -> Any:
                values = site_values(site)
                i = len(chosen)
                if i < len(prefix):
                    k = prefix[i]
                else:
                    k = 0
                    stack.extend((*chosen, j) for j in range(len(values) - 1, 0, -1))
                chosen.append(k)
                drawn[site.name] = values[k]
                return values[k]

            try:
                spec: Spec | InfeasibleError = self._spec(decide, drawn)
            except InfeasibleError as err:
                spec = err
            yield dict(drawn), spec

    # --- internals ----------------------------------------------------------------------------

    def plain_program(self, decide: Decide) -> ast.Program:
        return Substitution(self.program, self.lets, self.table, decide, self._static).run()

    def _spec(self, decide: Decide, drawn: dict[str, Any]) -> Spec:
        from archdsl.space.validate import resolve_cached

        program = self.plain_program(decide)
        try:
            return resolve_cached(program, self._layers)
        except ArchDSLError as err:
            if isinstance(err, SpaceError):
                raise
            raise self._infeasible(err, drawn) from None

    def _infeasible(self, err: ArchDSLError, drawn: dict[str, Any]) -> InfeasibleError:
        """Name the sites the failure is about: those written inside the failing layer call (or
        let), else every site drawn."""
        span = err.span
        near = [s for s in self.table.sites if s.name in drawn and _near(s.span, span)]
        sites = near or [s for s in self.table.sites if s.name in drawn]
        chosen = ", ".join(f"{s.name}={_show(drawn[s.name])}" for s in sites) or "no choices"
        message = f"the combination {chosen} does not build: {err.message}"
        where = err.span if err.span is not None else None
        return InfeasibleError(message, where, self.source, drawn, [s.name for s in sites])

    def check_budget(self, spec: Spec, budget: Any, drawn: dict[str, Any], **cost_settings: Any) -> None:
        from archdsl.costing import Budget

        if isinstance(budget, str):
            budget = Budget.parse(budget)
        check = budget.check(spec, **cost_settings)
        if not check.ok:
            over = "; ".join(str(v) for v in check)
            raise OverBudgetError(f"the sampled layout is over budget: {over}", spec, check, drawn)


def layout_key(spec: Spec) -> tuple:
    """What a layout is, whatever the repeats: the model settings and the unrolled sequence of
    sub-layers, parallel groups and shared groups (named by order of first use), so that
    ``4x(ssm)`` and ``ssm ssm ssm ssm`` are one layout."""
    from archdsl.spec.model import LayerNode, ParallelNode, RepeatNode, SeqNode, SharedNode

    groups: dict[str, int] = {}

    def flat(node) -> list:
        if isinstance(node, LayerNode):
            return [(node.type, node.params)]
        if isinstance(node, SeqNode):
            return [x for item in node.items for x in flat(item)]
        if isinstance(node, RepeatNode):
            return flat(node.body) * node.count
        if isinstance(node, ParallelNode):
            return [("parallel", tuple(tuple(flat(b)) for b in node.branches))]
        if isinstance(node, SharedNode):
            group = groups.setdefault(node.group, len(groups))
            return [("shared", group, tuple(flat(node.body)))]
        raise TypeError(type(node).__name__)

    return (spec.model, tuple(flat(spec.body)))


def site_values(site: Site) -> list[Any] | range:
    if site.kind == "float":
        if site.step is None:
            raise SpaceError(f"the site '{site.name}' is a continuous range: it has no list of values")
        n = round((site.high - site.low) / site.step) + 1
        return [site.low + i * site.step for i in range(n)]
    return site.options


def _option(site: Site, value: Any) -> Any:
    if site.kind in ("int", "float"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and site.low <= value <= site.high
        if site.kind == "int":
            ok = ok and float(value).is_integer() and (int(value) - site.low) % (site.step or 1) == 0
            value = int(value) if ok else value
        if ok:
            return value
    else:
        for option in site.options:
            if type(option) is type(value) and option == value:
                return option
            if isinstance(option, float) and isinstance(value, int) and not isinstance(value, bool) and option == value:
                return option
    raise SpaceError(f"{_show(value)} is not an option of the choice site '{site.name}' (options {site.describe()})")


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, str) and " " in value else str(value)


def _near(site_span: ast.Span | None, span: ast.Span | None) -> bool:
    if site_span is None or span is None:
        return False
    return site_span.line <= span.end_line and span.line <= site_span.end_line


def parse_space(text: str | bytes, *, filename: str | None = None, **model_settings: Any) -> Space:
    """Read a search space: a program whose text may hold choices (``{ssm, attn}``,
    ``window={256, 512}``, ``{2, 4}x(...)``, ranges). Keyword settings override the header.

    >>> parse_space("{2, 4}x(ssm {mlp, moe})").size
    4
    """
    from archdsl.syntax.parser import parse_program, source_text

    if not isinstance(text, (str, bytes, bytearray)):
        raise ArchDSLError(f"parse_space() takes the program as str or bytes, not {type(text).__name__}")
    program = parse_program(text, filename)
    source = source_text(text, filename)
    try:
        if model_settings:
            model_settings_check(model_settings)
            program = _override(program, model_settings)
        return Space(program, source)
    except ArchDSLError as err:
        raise err.with_source(source, filename) from None


def model_settings_check(settings: dict[str, Any]) -> None:
    from archdsl.spec.resolve import _model_settings

    _model_settings(None, settings)


def _override(program: ast.Program, settings: dict[str, Any]) -> ast.Program:
    """The program with ``settings`` written into its header (they win over the header's own)."""
    from archdsl.spec.resolve import _plain

    params = [p for p in (program.header.params if program.header else ()) if p.key not in settings]
    span = program.header.span if program.header else program.span
    params += [ast.Param(k, _plain(v), span) for k, v in settings.items() if v is not None]
    return replace(program, header=ast.Header(tuple(params), span))


def load_space(path: Any, **model_settings: Any) -> Space:
    """Read a search space from a file; errors name the file."""
    from pathlib import Path

    from archdsl.api import read_source

    if not isinstance(path, (str, Path)):
        raise ArchDSLError(f"load_space() takes a file path, not {type(path).__name__}")
    return parse_space(read_source(Path(path)), filename=str(path), **model_settings)
