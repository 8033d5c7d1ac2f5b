"""The syntax stage: text -> AST (:func:`parse_program`) and Spec -> text (:func:`print_spec`).

``print_spec`` is imported on first use: the printer needs :mod:`archdsl.spec.model`, which
itself imports :mod:`archdsl.syntax.ast`, so an eager import here would be circular.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from archdsl.syntax.parser import grammar_path, parse_program

if TYPE_CHECKING:
    from archdsl.syntax.printer import print_spec

__all__ = ["grammar_path", "parse_program", "print_spec"]


def __getattr__(name: str) -> Any:
    if name == "print_spec":
        from archdsl.syntax.printer import print_spec

        return print_spec
    raise AttributeError(f"module 'archdsl.syntax' has no attribute '{name}'")
