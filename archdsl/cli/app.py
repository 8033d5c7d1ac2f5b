"""The typer application that every ``archdsl`` sub-command registers on, and the one place
where user errors become ``file:line:col: error: ...`` on stderr with a non-zero exit."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from typer.core import TyperGroup

from archdsl.errors import ArchDSLError

# typer ships its own copy of click; its exception base is reached through a public class.
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


class _Group(TyperGroup):
    """Reports bad options (``--vocab abc``) as one ``error:`` line, like every other user
    error, instead of click's boxed usage panel."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _ClickException as err:
            ctx = getattr(err, "ctx", None)
            if type(err).__name__ == "NoArgsIsHelpError" and ctx is not None:
                typer.echo(ctx.get_help())  # `archdsl` alone shows the help
                sys.exit(0)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            typer.echo(f"error: {err.format_message()}{hint}", err=True)
            sys.exit(err.exit_code)
        except typer.Abort:
            typer.echo("error: aborted", err=True)
            sys.exit(1)
        except Exception as exc:  # noqa: BLE001 - the last resort: a bug, never a traceback
            if os.environ.get("ARCHDSL_DEBUG"):
                raise
            typer.echo(internal_error_message(exc), err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def report_at() -> str:
    """Where to report a bug: the package's ``Issues`` (or ``Bug Tracker``) URL when its metadata
    declares one, else words that name the place."""
    try:
        from importlib.metadata import metadata

        for entry in metadata("archdsl").get_all("Project-URL") or []:
            label, _, url = entry.partition(",")
            if label.strip().lower() in ("issues", "bug tracker", "tracker"):
                return url.strip()
    except Exception:  # noqa: BLE001 - not installed, or odd metadata: fall back to words
        pass
    return "the archdsl issue tracker"


def internal_error_message(exc: BaseException) -> str:
    """One line for an exception that no user input should cause: what it was, and where to
    report it (``ARCHDSL_DEBUG=1`` shows the traceback)."""
    detail = " ".join(str(exc).split())
    if len(detail) > 200:
        detail = detail[:197] + "..."
    what = type(exc).__name__ + (f": {detail}" if detail else "")
    return (
        f"error: internal error: {what} (please report at {report_at()} with the command you ran; "
        "ARCHDSL_DEBUG=1 shows the traceback)"
    )


app = typer.Typer(
    name="archdsl",
    cls=_Group,
    help="Write hybrid language-model architectures as one line of text; compile, cost, train and search them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from archdsl import __version__

        typer.echo(f"archdsl {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    """Write hybrid language-model architectures as one line of text; compile and cost them."""


class _Console(Console):
    """Rich's console, but complete when stdout is not a terminal: a table piped into a file or a
    CI log is as wide as it needs (rich would cut it at 80 columns); ``COLUMNS`` still wins."""

    PIPE_WIDTH = 10_000

    @property
    def size(self):  # type: ignore[override]
        size = super().size
        if self._width is None and not self.is_terminal:
            return size._replace(width=self.PIPE_WIDTH)
        return size

    @size.setter
    def size(self, new_size) -> None:
        Console.size.fset(self, new_size)


console = _Console()
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


def write_text(path: Path, text: str) -> None:
    """Write a command's text output to ``path``; a failure is one error line naming the file."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ArchDSLError(f"cannot write '{path}': {exc.strerror or exc}") from None
