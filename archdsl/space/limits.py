"""Limits of a search space, checked while it is read (before anything is sampled)."""

from __future__ import annotations

MAX_SITES = 10_000  # choice sites, copies of `each` repeats included
MAX_CHOICE_DEPTH = 16  # choices inside options of choices
MAX_SIZE_DIGITS = 1000
MAX_SIZE = 10**MAX_SIZE_DIGITS  # layouts; a larger space is certainly a mistake (`each` over thousands)
MAX_ENUMERATE = 100_000  # layouts that `archdsl sample --all` and Space.layouts() list at most
