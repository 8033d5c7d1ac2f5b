"""Listing the layouts of a small space, with their cost, under a budget.

    >>> import archdsl
    >>> space = archdsl.parse_space("model d_model=64 vocab=100\\n{1, 2, 4}x({ssm, attn} mlp)")
    >>> fits = [l for l in space.layouts(budget="params<=100K")]
    >>> len(fits), space.size                                    # doctest: +SKIP

Every layout is substituted, resolved, lowered and costed analytically (nothing is built); a
combination that does not build is yielded with its ``error`` when no budget is given, and
skipped under a budget. Order: depth-first over the sites in text order, each site's options in
the order written, so the first layout is every site at its first option.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from archdsl.spec.model import Spec

if TYPE_CHECKING:
    from archdsl.costing import BudgetCheck, ModelCost
    from archdsl.space.space import Space


@dataclass(frozen=True)
class Layout:
    """One point of a space: its ``params`` (the Optuna parameters that give it), its ``spec``,
    its analytic ``cost`` and ``check`` against the budget (None without one); ``error`` when
    the combination does not build (then ``spec`` and ``cost`` are None)."""

    params: dict[str, Any] = field(compare=False)
    spec: Spec | None
    cost: ModelCost | None = field(default=None, compare=False, repr=False)
    check: BudgetCheck | None = field(default=None, compare=False, repr=False)
    error: str | None = None

    @property
    def within(self) -> bool:
        """Builds and (with a budget) fits it."""
        return self.error is None and (self.check is None or self.check.ok)


@dataclass
class Tally:
    """How much of the space a budget leaves: filled in while :func:`layouts` runs."""

    total: int = 0
    within: int = 0
    over: int = 0
    infeasible: int = 0


def layouts(
    space: Space,
    budget: Any = None,
    *,
    limit: int,
    tally: Tally | None = None,
    seq_len: int = 2048,
    batch: int = 1,
    context: int | None = None,
) -> Iterator[Layout]:
    """Every layout of ``space`` (with ``budget``: those within it), refusing spaces larger than
    ``limit`` before listing any. ``tally`` (optional) counts what was seen."""
    from archdsl.costing import Budget, cost

    if isinstance(budget, str):
        budget = Budget.parse(budget)
    tally = tally if tally is not None else Tally()
    for params, spec in space._iter(limit=limit, what="list"):
        tally.total += 1
        if not isinstance(spec, Spec):  # the error of a combination that does not build
            tally.infeasible += 1
            if budget is None:
                yield Layout(params, None, error=spec.message)
            continue
        c = cost(spec, seq_len=seq_len, batch=batch, context=context)
        check = budget.check(c) if budget is not None else None
        if check is not None and not check.ok:
            tally.over += 1
            continue
        tally.within += 1
        yield Layout(params, spec, c, check)
