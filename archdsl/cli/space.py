"""``archdsl sample``, and ``check`` / ``fmt`` of a search space (a program with choices).

archdsl check space.arch                 # "search space: 3 choice sites, 15 layouts" and each site
archdsl fmt space.arch                   # canonical text, choices kept
archdsl sample space.arch --seed 3       # one layout, as plain DSL (repeats re-rolled)
archdsl sample space.arch --all          # every layout (refused past --limit, with the size)
archdsl sample space.arch --all --budget 'params<=20M'   # those within a budget, with their cost
"""

from __future__ import annotations

import io
import json
import math
import sys
from pathlib import Path
from typing import Optional

import typer

from archdsl.cli.app import app, console, error_console, fail, reports_errors
from archdsl.space import Space, SpaceError

FileArg = typer.Argument(None, help="an .arch file (a program with choices, or a plain one); - reads stdin", show_default=False)
ExprOpt = typer.Option(None, "-e", "--expr", help="program text instead of a file")


def load_any_space(file: Optional[Path], expr: Optional[str], **settings) -> Space:
    """The space of a file, of ``-`` (standard input) or of ``-e TEXT`` (exactly one of them)."""
    from archdsl.space import parse_space

    settings = {k: v for k, v in settings.items() if v is not None}
    if (file is None) == (expr is None):
        fail("give either a FILE or -e TEXT")
    data, name = _read(file, expr)
    return parse_space(data, filename=name, **settings)


def _read(file: Optional[Path], expr: Optional[str]) -> tuple[str | bytes, str]:
    from archdsl.api import read_bounded, read_source
    from archdsl.cli.commands import STDIN_NAME

    if expr is not None:
        return expr, "<expr>"
    if str(file) == "-":
        data = read_bounded(getattr(sys.stdin, "buffer", sys.stdin), STDIN_NAME)
        # put it back, so that the plain command can read a plain program from stdin again
        sys.stdin = io.TextIOWrapper(io.BytesIO(data if isinstance(data, bytes) else data.encode("utf-8")))
        return data, STDIN_NAME
    return read_source(file), str(file)


def space_or_none(file: Optional[Path], expr: Optional[str]) -> Space | None:
    """The space, if the input has choices in it; None for a plain program (or a bad input,
    which the plain command then reports as it always has)."""
    from archdsl.errors import ArchDSLError
    from archdsl.space import parse_space
    from archdsl.space.walk import has_choices
    from archdsl.syntax.parser import parse_program

    if (file is None) == (expr is None):
        return None
    try:
        data, name = _read(file, expr)
        program = parse_program(data, name)
    except ArchDSLError:
        return None
    if not has_choices(program):
        return None
    return parse_space(data, filename=name)


def _count(size: int | float) -> str:
    return "infinitely many (a float range without a step)" if size == math.inf else f"{size:,}"


def print_check(space: Space) -> None:
    """What ``archdsl check`` prints for a space: the counts, then one row per site."""
    from rich.table import Table

    console.print(f"search space: {len(space.sites)} choice sites, {_count(space.size)} layouts", soft_wrap=True)
    if not space.sites:
        return
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for column in ("site", "options", "drawn when", "at"):
        table.add_column(column, overflow="fold")
    for site in space.sites:
        where = f"{site.span.line}:{site.span.column}" if site.span is not None else ""
        table.add_row(site.name, site.describe(), site.condition or "always", where)
    console.print(table)


@app.command()
@reports_errors
def sample(
    file: Optional[Path] = FileArg,
    expr: Optional[str] = ExprOpt,
    seed: int = typer.Option(0, "--seed", help="seed of the random draw"),
    every: bool = typer.Option(False, "--all", help="every layout instead of one (small spaces)"),
    limit: int = typer.Option(1000, "--limit", min=1, help="--all refuses spaces with more layouts than this"),
    budget: Optional[str] = typer.Option(
        None, "--budget", help="keep layouts within this budget, e.g. 'params<=20M state@32k<=64MiB'"
    ),
    seq: str = typer.Option("2k", "--seq", help="sequence length of the cost and of limits without @"),
    roll: bool = typer.Option(True, "--roll/--no-roll", help="re-roll repeats in the printed layouts"),
    d_model: Optional[int] = typer.Option(None, "--d-model", help="override the model header's d_model"),
    vocab: Optional[int] = typer.Option(None, "--vocab", help="override the model header's vocab"),
) -> None:
    """Draw one layout of a program with choices (or list them all with --all), as plain DSL text."""
    from archdsl.costing import Budget, parse_size
    from archdsl.syntax.printer import print_spec

    space = load_any_space(file, expr, d_model=d_model, vocab=vocab)
    seq_len = parse_size(seq, origin="--seq")
    limits = Budget.parse(budget) if budget is not None else None
    if every:
        _sample_all(space, limits, limit, seq_len, roll)
        return
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    tries = 1000 if limits is not None else 1
    for attempt in range(1, tries + 1):
        trial = study.ask()
        try:
            spec = space.sample(trial, budget=limits, seq_len=seq_len)
        except SpaceError as err:
            if attempt == tries:
                raise
            if limits is None:
                raise
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            del err
            continue
        typer.echo(f"# params: {json.dumps(trial.params)}")
        if attempt > 1:
            typer.echo(f"# (draw {attempt}: the {attempt - 1} before it were over the budget or did not build)")
        typer.echo(print_spec(spec, roll=roll), nl=False)
        return


def _sample_all(space: Space, budget, limit: int, seq_len: int, roll: bool) -> None:
    from archdsl.costing.budget import format_count
    from archdsl.space.enumerate import Tally
    from archdsl.syntax.printer import print_spec

    if space.size > limit:
        raise SpaceError(
            f"the space has {_count(space.size)} layouts, more than --limit {limit:,}: "
            "draw some with --seed, or raise --limit"
        )
    tally = Tally()
    for layout in space.layouts(budget, limit=limit, tally=tally, seq_len=seq_len):
        typer.echo(f"# params: {json.dumps(layout.params)}")
        if layout.error is not None:
            typer.echo(f"# does not build: {layout.error}\n")
            continue
        c = layout.cost
        typer.echo(f"# {format_count(c.params)} params, {format_count(c.train_flops)} train FLOPs/token at {seq_len:,}")
        typer.echo(print_spec(layout.spec, roll=roll))
    if budget is not None:
        share = tally.within / tally.total if tally.total else 0.0
        error_console.print(
            f"{tally.within:,} of {tally.total:,} layouts within the budget ({share:.1%}); "
            f"{tally.over:,} over, {tally.infeasible:,} do not build",
            markup=False,
        )
    else:
        error_console.print(f"{tally.total:,} layouts, {tally.infeasible:,} of them do not build", markup=False)
