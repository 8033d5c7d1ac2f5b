"""Compute budgets: limits on the analytic cost, written as short text.

    >>> from archdsl.costing import Budget
    >>> budget = Budget.parse("params<=20M train_flops/token<=2G state@32k<=64MiB")
    >>> result = budget.check("model d_model=256 vocab=1000\\n 4x(ssm) attn mlp")   # doctest: +SKIP
    >>> result.ok, [str(v) for v in result]                                          # doctest: +SKIP

A limit is ``KEY[@LENGTH] OP NUMBER[UNIT]``; limits are separated by spaces or commas.
A limit without ``@LENGTH`` on a key that depends on the length is checked at every length the
check is asked about (``seq_len=[2048, 131072]``, or a list of costs).

Units, chosen to read as researchers write them:

- lengths after ``@`` (and ``--seq`` of ``archdsl cost``) are binary: ``2k`` = 2,048 tokens,
  ``1M`` = 1,048,576 ("a 2k context" is 2,048 tokens);
- counts and FLOPs are decimal: ``K`` 1e3, ``M`` 1e6, ``B`` or ``G`` 1e9, ``T`` 1e12, ``P`` 1e15
  (``params<=7B``, ``train_flops/token<=2G``);
- bytes: ``KiB MiB GiB TiB PiB`` are binary, ``KB MB GB TB PB`` decimal, ``B`` is bytes.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

from archdsl.errors import BudgetError, did_you_mean
from archdsl.syntax.ast import Span

COUNT_UNITS = {"": 1.0, "K": 1e3, "k": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12, "P": 1e15}
BYTE_UNITS = {
    "": 1.0, "B": 1.0,
    "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "PB": 1e15,
    "KiB": 2.0**10, "MiB": 2.0**20, "GiB": 2.0**30, "TiB": 2.0**40, "PiB": 2.0**50,
}  # fmt: skip
LENGTH_UNITS = {"": 1, "k": 1024, "K": 1024, "M": 1024**2, "m": 1024**2}


@dataclass(frozen=True)
class Key:
    """A budget key: what it measures, its unit family and what ``@LENGTH`` means for it."""

    name: str
    unit: str  # "count" or "bytes"
    at: str | None  # "seq" (training length), "ctx" (inference context) or None (no @)
    description: str


KEYS: dict[str, Key] = {
    k.name: k
    for k in (
        Key("params", "count", None, "parameters, shared weights counted once"),
        Key("nonemb_params", "count", None, "parameters outside the embedding and LM head"),
        Key("layers", "count", None, "layer calls (parallel branches included)"),
        Key("fwd_flops/token", "count", "seq", "forward FLOPs per token at the sequence length"),
        Key("train_flops/token", "count", "seq", "training FLOPs per token (3x forward)"),
        Key("decode_flops/token", "count", "ctx", "FLOPs to generate one token at the context"),
        Key("state", "bytes", "ctx", "inference state per sequence (KV caches + recurrent states)"),
        Key("kv", "bytes", "ctx", "KV-cache bytes per sequence (state that grows with the context)"),
        Key("act_mem", "bytes", "seq", "training activations for the batch"),
        Key("train_mem", "bytes", None, "bf16 weights + gradients + AdamW state (16 B/param)"),
    )
}
ALIASES = {"non_embedding_params": "nonemb_params", "state_bytes": "state", "kv_cache": "kv"}
OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq}

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_/]*")
_AT = re.compile(r"@([^\s<>=!,]*)")
_OP = re.compile(r"\s*(<=|>=|==|<|>)\s*")
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_UNIT = re.compile(r"[A-Za-z]*")
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)([A-Za-z]*)\Z")  # ASCII digits only, as the language
MAX_LENGTH = 2**32  # tokens; longer is surely a typo (a million times a long context)


def known_keys() -> str:
    return ", ".join(k.name + ("@LEN" if k.at else "") for k in KEYS.values())


def _error(message: str, text: str, start: int, end: int, origin: str, extra: str = "") -> BudgetError:
    span = Span(1, start + 1, 1, max(end, start + 1) + 1, file=origin)
    return BudgetError(message + extra, span=span, source=text)


def parse_size(text: str, *, origin: str = "size", offset: int = 0, whole: str | None = None) -> int:
    """A sequence length: ``2048``, ``2k`` (2,048), ``128k``, ``1.5k``, ``1M`` (1,048,576), at most
    ``MAX_LENGTH``. Errors point at ``text`` inside ``whole`` (at ``offset``) so a caret shows the
    bad part."""
    whole = text if whole is None else whole

    def error(message: str) -> BudgetError:
        return _error(message, whole, offset, offset + len(text), origin)

    m = _SIZE.match(text)
    if m is None or m.group(2) not in LENGTH_UNITS:
        raise error(
            f"'{text}' is not a length: write a positive integer with an optional k (x1024) or M (x1024^2), "
            "e.g. 2k, 128k, 1M"
        )
    if len(m.group(1)) > 24:
        raise error(f"'{text[:24]}...' is far too long for a length (at most {format_length(MAX_LENGTH)} tokens)")
    value = Fraction(m.group(1)) * LENGTH_UNITS[m.group(2)]  # exact: 1.5k is 1536, nothing rounds
    if value.denominator != 1 or value < 1:
        raise error(f"'{text}' is not a positive whole number of tokens")
    if value > MAX_LENGTH:
        raise error(f"'{text}' is {int(value):,} tokens, more than the limit of {format_length(MAX_LENGTH)}")
    return int(value)


def parse_sizes(text: str, *, origin: str = "--seq") -> list[int]:
    """A comma-separated list of lengths (``2k,8k,32k``), each checked by :func:`parse_size`."""
    out, pos = [], 0
    for part in text.split(","):
        stripped = part.strip()
        start = pos + (len(part) - len(part.lstrip()))
        if not stripped:
            raise _error("empty length in the list", text, start, start + 1, origin)
        out.append(parse_size(stripped, origin=origin, offset=start, whole=text))
        pos += len(part) + 1
    return out


@dataclass(frozen=True)
class Limit:
    """One ``KEY[@LENGTH] OP VALUE`` of a budget; ``at`` is the length in tokens or None.

    In the results of :meth:`Budget.check`, a limit written without ``@`` on a key that depends
    on the length comes back once per length checked, with ``at`` set and ``implied`` true."""

    key: str
    at: int | None
    op: str
    value: float
    text: str  # as written, for messages
    implied: bool = False  # ``at`` was not written: it is a length the check was asked about

    def holds(self, measured: float) -> bool:
        return OPS[self.op](measured, self.value)

    @property
    def label(self) -> str:
        """The limit as written, with the length it was measured at when that was not written."""
        return f"{self.text} at {format_length(self.at)}" if self.implied and self.at is not None else self.text

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True)
class Violation:
    """A broken limit: what was measured, the limit, and by how much."""

    limit: Limit
    value: float

    @property
    def ratio(self) -> float:
        """``value / limit`` (1.26 is 26 % over an upper limit)."""
        return self.value / self.limit.value if self.limit.value else float("inf")

    @property
    def over(self) -> float:
        return self.value - self.limit.value

    def __str__(self) -> str:
        unit = KEYS[self.limit.key].unit
        shown = format_bytes(self.value) if unit == "bytes" else format_count(self.value)
        return f"{self.limit.label}: measured {shown} ({self.ratio:.3g}x the limit)"


@dataclass(frozen=True)
class BudgetCheck:
    """The outcome of :meth:`Budget.check`. True when every limit holds; iterating yields the
    broken limits; ``values`` has what was measured for every limit."""

    budget: Budget
    values: tuple[tuple[Limit, float], ...]
    violations: tuple[Violation, ...]

    @property
    def ok(self) -> bool:
        return not self.violations

    def __bool__(self) -> bool:
        return self.ok

    def __iter__(self) -> Iterator[Violation]:
        return iter(self.violations)

    def __str__(self) -> str:
        if self.ok:
            return f"within budget ({self.budget.text})"
        return "over budget:\n" + "\n".join(f"  {v}" for v in self.violations)


@dataclass(frozen=True)
class Budget:
    """Limits on a model's analytic cost. Immutable; build it with :meth:`parse`."""

    text: str
    limits: tuple[Limit, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Budget:
        """Parse ``"params<=20M train_flops/token<=2G state@32k<=64MiB"``; a mistake raises
        :class:`~archdsl.errors.BudgetError` with a caret under the bad part."""
        if not isinstance(text, str):
            raise BudgetError(f"a budget is text such as 'params<=20M', got {type(text).__name__}")
        limits: list[Limit] = []
        pos, n = 0, len(text)
        while True:
            while pos < n and (text[pos].isspace() or text[pos] == ","):
                pos += 1
            if pos >= n:
                return cls(text=text, limits=tuple(limits))
            limit, pos = _parse_limit(text, pos)
            limits.append(limit)

    def __str__(self) -> str:
        return " ".join(limit.text for limit in self.limits)

    def check(
        self, target: Any, *, seq_len: int | Sequence[int] | None = None, batch: int | None = None
    ) -> BudgetCheck:
        """Measure ``target`` against every limit. ``target`` is a cost from :func:`archdsl.cost`,
        a list of costs of one model at several lengths, a Spec, a graph or DSL text.

        A limit without ``@`` on a key that depends on the length (FLOPs, state, activations)
        is checked at every length: ``seq_len`` (one or several), else the lengths of the costs
        given, else 2,048. Each such check is one entry of the result, its limit's ``at`` set.

            >>> Budget.parse("state<=1GiB").check("attn mlp", seq_len=[2048, 131072]).ok   # doctest: +SKIP
        """
        from archdsl.costing.model import ModelCost, cost

        if isinstance(seq_len, str):  # "2k,128k", as --seq reads it
            seq_len = parse_sizes(seq_len, origin="seq_len")
        lengths = [seq_len] if seq_len is None or not isinstance(seq_len, Sequence) else list(seq_len)
        if not lengths:
            raise BudgetError("seq_len is an empty list: give at least one length to check the budget at")
        if isinstance(target, ModelCost):
            target = [target]
        if isinstance(target, (list, tuple)) and target and all(isinstance(t, ModelCost) for t in target):
            bases = list(target)
            if seq_len is not None:
                bases = [bases[0].at(n, batch=batch) for n in lengths]
            elif batch is not None:
                bases = [c.at(batch=batch) for c in bases]
        else:
            first = cost(
                target, seq_len=2048 if lengths[0] is None else lengths[0], batch=1 if batch is None else batch
            )
            bases = [first] + [first.at(n) for n in lengths[1:]]
        base = bases[0]
        cache = {(c.ctx.seq_len, c.ctx.context_len): c for c in bases}

        def at(seq: int, ctx: int) -> ModelCost:
            c = cache.get((seq, ctx))
            if c is None:
                c = cache[(seq, ctx)] = base.at(seq, context=ctx)
            return c

        values, broken = [], []
        for limit in self.limits:
            if limit.at is None and KEYS[limit.key].at is not None:
                # one check per length; the length is the context for "ctx" keys
                measured = [
                    (replace(limit, at=c.ctx.seq_len if KEYS[limit.key].at == "seq" else c.ctx.context_len,
                             implied=True), _measure(limit, c, at))
                    for c in bases
                ]  # fmt: skip
            else:
                measured = [(limit, _measure(limit, base, at))]
            for shown, value in measured:
                values.append((shown, value))
                if not shown.holds(value):
                    broken.append(Violation(shown, value))
        return BudgetCheck(self, tuple(values), tuple(broken))

    def allows(self, target: Any, **kwargs: Any) -> bool:
        return self.check(target, **kwargs).ok


def _parse_limit(text: str, pos: int) -> tuple[Limit, int]:
    start = pos
    m = _KEY.match(text, pos)
    if m is None:
        raise _error("expected a budget key", text, pos, pos + 1, "budget", f"; known keys: {known_keys()}")
    name = ALIASES.get(m.group(), m.group())
    key = KEYS.get(name)
    if key is None:
        hint = did_you_mean(m.group(), list(KEYS) + list(ALIASES))
        raise _error(
            f"unknown budget key '{m.group()}'{hint}",
            text,
            m.start(),
            m.end(),
            "budget",
            f"; known keys: {known_keys()}",
        )
    pos = m.end()
    at = None
    m = _AT.match(text, pos)
    if m is not None:
        if key.at is None:
            raise _error(
                f"'{key.name}' does not depend on a length; remove '@{m.group(1)}'", text, pos, m.end(), "budget"
            )
        at = parse_size(m.group(1), origin="budget", offset=m.start(1), whole=text)
        pos = m.end()
    m = _OP.match(text, pos)
    if m is None:
        raise _error("expected a comparison: <=, <, >=, > or ==", text, pos, pos + 1, "budget")
    op, pos = m.group(1), m.end()
    m = _NUMBER.match(text, pos)
    if m is None:
        what = "limits are non-negative numbers" if text.startswith("-", pos) else f"expected a number after '{op}'"
        raise _error(what, text, pos, pos + 1, "budget")
    number, pos = float(m.group()), m.end()
    m = _UNIT.match(text, pos)
    unit, end = m.group(), m.end()
    table = BYTE_UNITS if key.unit == "bytes" else COUNT_UNITS
    if unit not in table:
        other = COUNT_UNITS if key.unit == "bytes" else BYTE_UNITS
        family = "bytes: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB" if key.unit == "bytes" else "counts: K, M, B or G, T, P"
        why = (
            f"'{key.name}' is measured in {family}"
            if unit in other
            else f"unknown unit '{unit}'; '{key.name}' takes {family}"
        )
        raise _error(why, text, pos, end, "budget")
    if end < len(text) and not (text[end].isspace() or text[end] == ","):
        raise _error("expected a space or a comma after a limit", text, end, end + 1, "budget")
    if not math.isfinite(number * table[unit]):
        raise _error("the number is too large to be a limit", text, start, end, "budget")
    return Limit(key.name, at, op, number * table[unit], text[start:end]), end


def _measure(limit: Limit, base: Any, at: Any) -> float:
    key = KEYS[limit.key]
    seq, ctx = base.ctx.seq_len, base.ctx.context_len
    if key.at == "seq" and limit.at is not None:
        c = at(limit.at, limit.at if base.ctx.context is None else ctx)
    elif key.at == "ctx" and limit.at is not None:
        c = at(seq, limit.at)
    else:
        c = base
    return {
        "params": lambda: c.params,
        "nonemb_params": lambda: c.non_embedding_params,
        "layers": lambda: c.n_layers,
        "fwd_flops/token": lambda: c.forward_flops,
        "train_flops/token": lambda: c.train_flops,
        "decode_flops/token": lambda: c.decode_flops,
        "state": lambda: c.state_bytes,
        "kv": lambda: c.kv_bytes,
        "act_mem": lambda: c.activation_memory,
        "train_mem": lambda: c.training_memory(2),
    }[limit.key]()


# ---- human-readable numbers (used by messages and the report) -------------------------------


def format_length(n: int) -> str:
    """2048 -> '2k', 1048576 -> '1M', 3000 -> '3000' (the binary units of lengths)."""
    if n % (1024**2) == 0:
        return f"{n // 1024**2}M"
    if n % 1024 == 0:
        return f"{n // 1024}k"
    return str(n)


def format_count(x: float) -> str:
    """1234567 -> '1.23M' (decimal units, as the budget reads them)."""
    for unit, size in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= size:
            return f"{x / size:.3g}{unit}"
    return f"{x:.3g}" if x != int(x) else str(int(x))


def format_bytes(x: float) -> str:
    """1536 -> '1.5KiB' (binary units)."""
    for unit, size in (("PiB", 2.0**50), ("TiB", 2.0**40), ("GiB", 2.0**30), ("MiB", 2.0**20), ("KiB", 2.0**10)):
        if abs(x) >= size:
            return f"{x / size:.3g}{unit}"
    return f"{int(x)}B"
