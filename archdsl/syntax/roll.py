"""Re-rolling: the shortest nested-repeat form of a flat sequence (``archdsl fmt --roll``).

    >>> roll(["ssm", "ssm", "ssm", "attn"] * 2)
    [Run(count=2, body=(Run(count=3, body=('ssm',)), 'attn'))]

That is ``2x(3x(ssm) attn)``. Items are anything hashable; equal items may be merged.

What "shortest" means: every item written costs 1 and every repeat ``Nx(...)`` costs 1 more,
whatever N is; among forms of equal cost the one with fewer repeats wins (``ssm ssm`` stays as
it is, ``4x(ssm ssm attn)`` beats ``4x(2x(ssm) attn)``).

The algorithm is a dynamic programme over prefixes: ``best[j]`` is the cheapest form of
``items[:j]``, built from ``best[i]`` plus one unit covering ``items[i:j]`` -- an item, or a run
of ``k`` copies of a block ``items[i:i+p]`` whose own form is solved recursively (memoised by
content). ``r[p][i]``, the length of the stretch from ``i`` on where ``items[t] == items[t+p]``,
says in O(1) how many copies of the block start at ``i``.

* Up to ``EXACT_LIMIT`` items every block length and every count is tried: the result is the
  true optimum (O(n^2 log n) relaxations, nothing for n <= 96).
* Beyond that the search is bounded: block lengths up to ``MAX_PERIOD`` (plus the period of
  the whole sequence, so that ``k`` copies of a long block are still found), and for a long run
  only the first and last ``EDGE_COUNTS`` counts (where a run can trade copies with its
  neighbours), and only blocks that are not themselves copies of a shorter block. A thousand
  items roll in tens of milliseconds. Real stacks repeat with periods far below 64 items, so the bound costs nothing in practice; what it can miss is a repeat of a
  block longer than 64 items that does not span the whole sequence.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

EXACT_LIMIT = 96
MAX_PERIOD = 64
EDGE_COUNTS = 4


@dataclass(frozen=True)
class Run:
    """``count`` copies of ``body`` (a tuple of items and Runs): ``Nx(body)``."""

    count: int
    body: tuple[Any, ...]


def roll(items: Sequence[Hashable]) -> list[Any]:
    """The shortest form of ``items`` as a list of items and :class:`Run`."""
    index: dict[Hashable, int] = {}
    ids = tuple(index.setdefault(item, len(index)) for item in items)
    first = {i: item for item, i in index.items()}
    rolled = _Roller().solve(ids)[2]
    return [_rename(x, first) for x in rolled]


def unroll(rolled: Iterable[Any]) -> list[Any]:
    """Inverse of :func:`roll`: the flat list of items."""
    out: list[Any] = []
    for x in rolled:
        if isinstance(x, Run):
            body = unroll(x.body)
            for _ in range(x.count):
                out.extend(body)
        else:
            out.append(x)
    return out


def cost(rolled: Iterable[Any]) -> int:
    """Items written plus one per repeat: what :func:`roll` minimises."""
    return sum(1 + cost(x.body) if isinstance(x, Run) else 1 for x in rolled)


def _rename(x: Any, items: dict[int, Hashable]) -> Any:
    if isinstance(x, Run):
        return Run(x.count, tuple(_rename(y, items) for y in x.body))
    return items[x]


class _Roller:
    def __init__(self) -> None:
        # block content -> (cost, number of runs, rolled form)
        self.memo: dict[tuple[int, ...], tuple[int, int, tuple[Any, ...]]] = {}

    def solve(self, seq: tuple[int, ...]) -> tuple[int, int, tuple[Any, ...]]:
        found = self.memo.get(seq)
        if found is None:
            found = self.memo[seq] = self._solve(seq)
        return found

    def _solve(self, seq: tuple[int, ...]) -> tuple[int, int, tuple[Any, ...]]:
        n = len(seq)
        exact = n <= EXACT_LIMIT
        max_p = n // 2 if exact else min(MAX_PERIOD, n // 2)
        # stretch[p][i]: how far from i on every item equals the one p places later
        stretch: list[list[int]] = [[]]
        for p in range(1, max_p + 1):
            r = [0] * (n + 1)
            for i in range(n - p - 1, -1, -1):
                r[i] = r[i + 1] + 1 if seq[i] == seq[i + p] else 0
            stretch.append(r)

        divisors = [[q for q in range(1, p) if p % q == 0] for p in range(max_p + 1)]
        inf = (n + 1, 0)
        best: list[tuple[int, int]] = [(0, 0)] + [inf] * n
        back: list[tuple[int, int, int]] = [(0, 0, 0)] * (n + 1)  # (start, block length, count)

        def relax(j: int, score: tuple[int, int], how: tuple[int, int, int]) -> None:
            if score < best[j]:
                best[j] = score
                back[j] = how

        if not exact:
            self._whole_period(seq, max_p, relax)
        for i in range(n):
            c, runs = best[i]
            relax(i + 1, (c + 1, runs), (i, 1, 1))
            for p in range(1, min(max_p, (n - i) // 2) + 1):
                most = 1 + stretch[p][i] // p
                if most < 2:
                    continue
                if not exact and any(stretch[q][i] >= p - q for q in divisors[p]):
                    continue  # the block is copies of a shorter one, whose runs cover these
                body_cost, body_runs, _ = self.solve(seq[i : i + p])
                score = (c + body_cost + 1, runs + body_runs + 1)
                for k in _counts(most, exact):
                    relax(i + k * p, score, (i, p, k))

        out: list[Any] = []
        j = n
        while j > 0:
            i, p, k = back[j]
            if k == 1:
                out.append(seq[i])
            else:
                out.append(Run(k, self.solve(seq[i : i + p])[2]))
            j = i
        out.reverse()
        return best[n][0], best[n][1], tuple(out)

    def _whole_period(self, seq: tuple[int, ...], max_p: int, relax) -> None:
        """The bounded search misses ``k`` copies of a block longer than ``max_p``; try the
        smallest period of the whole sequence (prefix function, as in KMP)."""
        n = len(seq)
        fail = [0] * n
        for i in range(1, n):
            f = fail[i - 1]
            while f and seq[i] != seq[f]:
                f = fail[f - 1]
            fail[i] = f + 1 if seq[i] == seq[f] else 0
        period = n - fail[-1]
        if max_p < period < n and n % period == 0:
            body_cost, body_runs, _ = self.solve(seq[:period])
            relax(n, (body_cost + 1, body_runs + 1), (0, period, n // period))


def _counts(most: int, exact: bool) -> Iterable[int]:
    if exact or most <= 2 * EDGE_COUNTS + 2:
        return range(2, most + 1)
    return [*range(2, 2 + EDGE_COUNTS), *range(most - EDGE_COUNTS + 1, most + 1)]
