"""Limits that keep a program from describing an absurd model.

They are checked on the AST, by multiplying repeat counts without unrolling anything, so that
``1000000x(1000000x(ssm))`` is refused in microseconds instead of exhausting memory.
"""

from __future__ import annotations

MAX_REPEAT = 100_000  # one repeat count
MAX_SUBLAYERS = 100_000  # layer calls in the whole stack, repeats unrolled
MAX_NESTING = 64  # repeats, groups and branches inside each other
MAX_SOURCE_BYTES = 1 << 20  # an architecture file is a few lines; this refuses /dev/zero
MAX_PARAMS = 10**14  # weights in the whole model; a hundred times the largest models trained
