"""``archdsl search`` and ``archdsl report``: run a search recipe, read back what it found.

archdsl search search/quickstart.toml                 # live panel; again: continues the study
archdsl search search/quickstart.toml --trials 40 --timeout 30m --out runs/mine --seed 1
archdsl search --out runs/quickstart --workers 2      # join / continue from the stored recipe
archdsl report runs/quickstart                        # top trials, pareto.png, report.html, best/*.arch
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from archdsl.cli.app import app, console, fail, reports_errors


@app.command("search")
@reports_errors
def search_command(
    recipe: Path | None = typer.Argument(
        None, help="a search recipe (.toml); omit to continue the study in --out/--storage", show_default=False
    ),
    trials: int | None = typer.Option(None, "--trials", help="trials to add this run (default: the recipe's)"),
    timeout: str | None = typer.Option(None, "--timeout", help="start no trial after this long: 90s, 30m, 2h"),
    out: Path | None = typer.Option(None, "--out", help="run folder (default: runs/<study name>)"),
    seed: int | None = typer.Option(None, "--seed", help="override the recipe's seed (a new study: use a new --out)"),
    storage: str | None = typer.Option(
        None, "--storage", help="any Optuna storage URL (sqlite:///x.db, postgresql://...) or a journal file"
    ),
    study: str | None = typer.Option(None, "--study", help="study name (default: the recipe's)"),
    workers: int | None = typer.Option(None, "--workers", help="processes on this machine (default: the recipe's)"),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda (one worker per GPU); default: the recipe's"),
    quiet: bool = typer.Option(False, "--quiet", help="no live display; one summary line at the end"),
    as_json: bool = typer.Option(False, "--json", help="one JSON line per finished trial, then a summary line"),
) -> None:
    """Search layouts of a space with Optuna under a budget; the study lives in the run folder."""
    from archdsl.search import load_recipe, search
    from archdsl.search.recipe import parse_duration

    if trials is not None and trials < 1:
        fail("--trials must be a positive number")
    if workers is not None and workers < 1:
        fail("--workers must be a positive number")
    if quiet and as_json:
        fail("choose one of --quiet and --json")
    seconds = parse_duration(timeout, origin="--timeout") if timeout is not None else None
    loaded = load_recipe(recipe) if recipe is not None else None
    display = "json" if as_json else "quiet" if quiet else "live"
    summary = search(
        loaded, out=out, storage=storage, study_name=study, trials=trials, timeout=seconds, seed=seed,
        workers=workers, device=device, display=display, console=console,
    )  # fmt: skip
    if display != "json":
        counts = ", ".join(f"{v} {k}" for k, v in summary["counts"].items() if v)
        console.print(
            f"study '{summary['study']}': {summary['trials']} trials ({counts}) in {summary['storage']}; "
            f"this run {summary['this_run']} trials in {summary['wall_s']:.0f}s. "
            f"Next: archdsl report {summary['out']}",
            markup=False, highlight=False,
        )  # fmt: skip


@app.command("report")
@reports_errors
def report_command(
    run: Path | None = typer.Argument(None, help="run folder of a search (holds study.log)", show_default=False),
    storage: str | None = typer.Option(None, "--storage", help="an Optuna storage URL instead of a run folder"),
    study: str | None = typer.Option(None, "--study", help="study name, when the storage holds several"),
    out: Path | None = typer.Option(None, "--out", help="where to write the files (default: RUN/report)"),
    top: int = typer.Option(10, "--top", min=1, help="trials to show and write as .arch"),
    as_json: bool = typer.Option(False, "--json", help="print the top trials as JSON"),
) -> None:
    """Best trials as DSL text with metrics and cost; Pareto front PNG, HTML page, best layouts as .arch."""
    from rich.markup import escape
    from rich.table import Table

    from archdsl.search.report import build_report, write_report
    from archdsl.search.runner import load_stored_study
    from archdsl.search.study import JOURNAL_NAME
    from archdsl.search.trials import format_value, layout_line

    if run is None and storage is None:
        fail("give a RUN folder or --storage URL")
    where = storage or (str(run / JOURNAL_NAME) if run.is_dir() else str(run))
    loaded = load_stored_study(where, study)
    report = build_report(loaded)
    if "://" in where:  # a database: the files go where a run folder of that study would be
        folder = out or Path("runs") / loaded.study_name / "report"
    else:
        folder = out or ((run if run is not None and run.is_dir() else Path(where).parent) / "report")
    files = write_report(report, folder, top=top)
    rows = report.top(top)
    rows += [b for b in report.baselines if b not in rows]  # always shown, to compare with
    if as_json:
        typer.echo(json.dumps({"study": report.study_name, "objectives": report.objectives, "counts": report.counts,
                               "top": [r.to_dict() for r in rows], "files": files}, indent=2))  # fmt: skip
        return
    table = Table(
        title=f"study '{report.study_name}': {'Pareto front' if len(report.objectives) > 1 else 'best trials'}"
    )
    table.add_column("#", justify="right")
    for name, direction in zip(report.objectives, report.directions):
        table.add_column(f"{name} ({direction[:3]})", justify="right")
    table.add_column("layout")
    table.add_column("metrics / cost")
    for r in rows:
        extra = ", ".join(
            [f"{k} {v:.4g}" for k, v in r.metrics.items()] + [f"{k} {format_value(k, v)}" for k, v in r.cost.items()]
        )
        label = layout_line(r.dsl) + ("  [baseline]" if r.baseline else "")
        table.add_row(
            str(r.number),
            *(format_value(n, v) for n, v in zip(report.objectives, r.values or [])),
            escape(label),
            extra,
        )
    console.print(table)
    console.print(", ".join(f"{v} {k}" for k, v in report.counts.items()), highlight=False)
    console.print(f"wrote {files['png']}, {files['html']} and {len(files['arch'])} .arch files in {folder / 'best'}",
                  markup=False, highlight=False)  # fmt: skip
