"""The ``archdsl`` command. Each sub-command module registers itself on :data:`app`."""

from archdsl.cli import commands, cost, search, space, train, worker  # noqa: F401  (each registers its commands on app)
from archdsl.cli import interop  # noqa: F401  (import, export)
from archdsl.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
