"""The choice sites of a search space as highlights of one of its layouts.

A site (``archdsl.parse_space(...).sites``: ``name``, ``options``, ``span`` in the space's text)
marks the blocks of a layout drawn from the space whose layer call overlaps the site's span in
the text (a value choice ``window={256, 512}`` lies inside its layer call, a layer alternative
``{ssm, attn}`` around the chosen call), or, for a repeat count ``{2, 4}x(...)``, every block of
that repeat. A site inactive in the layout (its condition unmet) is listed without blocks.

    >>> import archdsl
    >>> from types import SimpleNamespace as Site
    >>> spec = archdsl.parse("2x(ssm attn window=64)")
    >>> span = spec.layers()[1].span                      # where "attn window=64" is written
    >>> [h.positions for h in highlights_for(spec, [Site(name="w", options=[64, 128], span=span)])]
    [(1, 3)]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from archdsl.draw.layout import Highlight
from archdsl.draw.walk import walk
from archdsl.spec.model import Spec


def _overlap(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    if a.file and b.file and a.file != b.file:
        return False
    return (a.line, a.column) < (b.end_line, b.end_column) and (b.line, b.column) < (a.end_line, a.end_column)


def _inside(inner: Any, outer: Any) -> bool:
    return (outer.line, outer.column) <= (inner.line, inner.column) and (inner.end_line, inner.end_column) <= (
        outer.end_line,
        outer.end_column,
    )


def options_text(site: Any) -> tuple[str, ...]:
    """A site's options as the language writes them; a range as ``low..high``."""
    options = getattr(site, "options", None)
    if isinstance(options, range):
        step = f" step {options.step}" if options.step != 1 else ""
        return (f"{options.start}..{options.stop - options.step}{step}",)
    if options is None:
        low, high = getattr(site, "low", None), getattr(site, "high", None)
        return (f"{low}..{high}" + (" (log)" if getattr(site, "log", False) else ""),)
    from archdsl.syntax.printer import format_value

    return tuple(format_value(o) if isinstance(o, (bool, int, float)) else str(o) for o in options)


def highlights_for(spec: Spec, sites: Iterable[Any]) -> list[Highlight]:
    """One :class:`Highlight` per site (objects with ``name``, ``options`` and ``span``), naming
    the blocks of ``spec`` that the site decides."""
    structure = walk(spec)
    blocks = [(b, col.parallel) for col in structure.columns for lane in col.lanes for b in lane]
    out = []
    for site in sites:
        span = getattr(site, "span", None)
        positions: list[int | str] = []
        for block, parallel in blocks:
            if _overlap(block.source, span):
                positions.append(block.node_id if parallel else block.index)
        if not positions and span is not None:
            # a repeat count: the site lies in the repeat's text but in none of its layer calls;
            # mark every copy of the innermost repeat around it (a nested repeat has several)
            around = [r for r in structure.spans if r.kind == "repeat" and r.source and _inside(span, r.source)]
            if around:
                innermost = max((r.source.line, r.source.column) for r in around)
                for r in around:
                    if (r.source.line, r.source.column) == innermost:
                        positions += [c for c in range(r.start, r.end) if c not in positions]
        out.append(Highlight(tuple(positions), options_text(site), str(getattr(site, "name", ""))))
    return out


def is_space(target: Any) -> bool:
    """A search space (``archdsl.parse_space``) rather than a layout: it has sites to sample."""
    return hasattr(target, "sites") and hasattr(target, "sample") and not isinstance(target, Spec)


def space_layout(space: Any) -> tuple[Spec, list[Highlight]]:
    """The layout of ``space`` to draw (every site at its first option, a range at its low end)
    and its sites as highlights of that layout."""
    from optuna.trial import FixedTrial

    params = {}
    for site in space.sites:
        options = site.options
        if options is None:
            params[site.name] = site.low
        elif isinstance(options, range):
            params[site.name] = options.start
        else:
            params[site.name] = next(iter(options))
    spec = space.sample(FixedTrial(params))  # sample suggests only the sites active in this layout
    return spec, highlights_for(spec, space.sites)
