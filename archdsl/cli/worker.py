"""``archdsl worker`` and ``archdsl studies``: join a shared study from any machine, list the
studies of a storage.

archdsl worker --storage postgresql+psycopg://me@db/archdsl --study recall               # one process here
archdsl worker --storage postgresql+psycopg://me@db/archdsl --study recall --workers 4   # one per GPU
archdsl studies --storage postgresql+psycopg://me@db/archdsl
"""

from __future__ import annotations

import json

import typer

from archdsl.cli.app import app, console, fail, reports_errors

_WHY = {
    "done": "the study has its trials",
    "nothing left": "the study already had its trials",
    "time": "the study's time limit passed",
    "SIGINT": "stopped by SIGINT",
    "SIGTERM": "stopped by SIGTERM",
}


@app.command("worker")
@reports_errors
def worker_command(
    storage: str = typer.Option(
        ..., "--storage", help="the study's storage: an Optuna URL or a journal file", show_default=False
    ),
    study: str | None = typer.Option(None, "--study", help="study name (needed when the storage holds several)"),
    workers: int = typer.Option(
        1, "--workers", help="processes here: one per GPU with --device cuda, else they split the cores"
    ),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda; default: the stored recipe's"),
    quiet: bool = typer.Option(False, "--quiet", help="no line per trial; only the summary"),
    as_json: bool = typer.Option(False, "--json", help="one JSON line per trial this worker ran, then a summary line"),
) -> None:
    """Join a study: run its trials until it has its trial count or time limit; Ctrl-C / SIGTERM stop cleanly."""
    from archdsl.search.join import join
    from archdsl.search.trials import TrialRow, layout_line

    if workers < 1:
        fail("--workers must be a positive number")

    def on_trial(trial) -> None:
        row = TrialRow.of(trial)
        if as_json:
            typer.echo(json.dumps(row.to_dict()))
        elif not quiet:
            shown = ", ".join(f"{v:.4g}" for v in row.values or []) or row.reason or ""
            line = f"trial {row.number} {row.status}: {shown}  {layout_line(row.dsl)}"
            console.print(line, markup=False, highlight=False, soft_wrap=True)

    summary = join(storage, study, workers=workers, device=device, on_trial=on_trial)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    console.print(
        f"study '{summary['study']}': {summary['counted']} of {summary['target']} trials count; "
        f"this worker ended: {_WHY.get(summary['stopped'], summary['stopped'])} ({summary['wall_s']:.0f}s)",
        markup=False, highlight=False, soft_wrap=True,
    )  # fmt: skip


@app.command("studies")
@reports_errors
def studies_command(
    storage: str = typer.Option(
        ..., "--storage", help="an Optuna URL or a journal file (a run folder's study.log)", show_default=False
    ),
    as_json: bool = typer.Option(False, "--json", help="print the studies as JSON"),
) -> None:
    """The studies of a storage: trials by state, against the target, and the best so far."""
    from rich.markup import escape
    from rich.table import Table

    from archdsl.search.join import list_studies

    rows = list_studies(storage)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print(f"no studies in {storage}", markup=False, highlight=False)
        return
    table = Table(title=f"studies in {escape(storage)}")
    for name, justify in (("study", "left"), ("count / target", "right"), ("complete", "right"), ("pruned", "right"),
                          ("fail", "right"), ("running", "right"), ("waiting", "right"), ("best", "left")):  # fmt: skip
        table.add_column(name, justify=justify)
    for r in rows:
        s = r["states"]
        best = r["best"][0] if r["best"] else None
        shown = "-"
        if best is not None:
            values = ", ".join(f"{n} {v:.4g}" for n, v in zip(r["objectives"], best["values"]))
            more = f" (+{len(r['best']) - 1} on the front)" if len(r["best"]) > 1 else ""
            shown = f"#{best['number']} {values}: {best['dsl']}{more}"
        target = "-" if r["target"] is None else str(r["target"])
        table.add_row(
            escape(r["study"]), f"{r['counted']} / {target}", str(s["complete"]), str(s["pruned"]), str(s["fail"]),
            str(s["running"]), str(s["waiting"]), escape(shown),
        )  # fmt: skip
    console.print(table)
