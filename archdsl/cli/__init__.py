"""The ``archdsl`` command. Each sub-command module registers itself on :data:`app`."""

from archdsl.cli import commands  # noqa: F401  (registers check, fmt, show, layers, build)
from archdsl.cli.app import app

try:  # the cost command lives with the cost stage
    from archdsl.cli import cost  # noqa: F401
except ModuleNotFoundError as exc:  # DEV-ONLY until archdsl/cli/cost.py lands
    if exc.name != "archdsl.cli.cost":
        raise


def main() -> None:
    app()


__all__ = ["app", "main"]
