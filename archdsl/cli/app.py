"""The typer application that every ``archdsl`` sub-command registers on, and the one place
where user errors become ``file:line:col: error: ...`` on stderr with a non-zero exit."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from archdsl.errors import ArchDSLError

app = typer.Typer(
    name="archdsl",
    help="Write hybrid language-model architectures as one line of text; compile, cost and search them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
error_console = Console(stderr=True, highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(command: F) -> F:
    """Wrap a command so an :class:`ArchDSLError` prints its located message and exits 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ArchDSLError as err:
            error_console.print(str(err), markup=False)
            raise typer.Exit(code=1) from None
        except KeyboardInterrupt:
            error_console.print("interrupted", markup=False)
            raise typer.Exit(code=130) from None

    return wrapper  # type: ignore[return-value]


def fail(message: str) -> None:
    """Print a user error without location (bad option values) and exit 2, like click does."""
    error_console.print(f"error: {message}", markup=False)
    sys.exit(2)
