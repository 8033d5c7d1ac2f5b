"""``archdsl cost``: the analytic cost of one or several architectures, before training them.

archdsl cost examples/llama.arch examples/jamba.arch --seq 2k,8k,32k,128k
archdsl cost examples/*.arch --json > costs.json
archdsl cost examples/llama.arch examples/mamba2.arch --plot cost.png
archdsl cost -e '4x(ssm) attn mlp' --budget 'params<=20M state@32k<=64MiB'
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

import archdsl
from archdsl.cli.app import app, console, error_console, fail, reports_errors
from archdsl.cli.commands import STDIN_NAME, load_file
from archdsl.costing.budget import Budget, parse_sizes
from archdsl.costing.model import cost as model_cost
from archdsl.errors import ArchDSLError


@app.command("cost")
@reports_errors
def cost_command(
    files: Optional[list[Path]] = typer.Argument(
        None, help=".arch files, compared side by side (- reads one from standard input)", show_default=False
    ),
    exprs: Optional[list[str]] = typer.Option(
        None, "-e", "--expr", help="program text instead of a file; may be given several times"
    ),
    seq: str = typer.Option(
        "2k,8k,32k,128k", "--seq", help="sequence lengths / contexts, comma-separated; k = 1024 tokens, M = 1024^2"
    ),
    batch: int = typer.Option(1, "--batch", min=1, max=2**20, help="sequences per step (activation memory)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object instead of tables"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="draw FLOPs and state against length to this image"),
    budget: Optional[str] = typer.Option(
        None, "--budget", help="limits such as 'params<=20M train_flops/token<=2G state@32k<=64MiB'; exit 1 if over"
    ),
    measure: bool = typer.Option(
        False, "--measure", help="also build each model and time it at the first --seq length"
    ),
    d_model: Optional[int] = typer.Option(None, "--d-model", help="override the model header's d_model"),
    vocab: Optional[int] = typer.Option(None, "--vocab", help="override the model header's vocab"),
) -> None:
    """Parameters, FLOPs per token, activation memory, KV cache and state, per layer type.

    FLOPs count a multiply-add as two; training is three forwards. Lengths are tokens with
    k = 1,024; budget counts are decimal (M = 1e6), bytes KiB/MiB/GiB binary.
    """
    from archdsl.costing.report import cost_tables, model_json, report_json  # rich tables: not for `check`

    seqs = parse_sizes(seq, origin="--seq")
    if plot is not None:
        _check_plot_path(plot)
    if budget is not None and not budget.strip(" \t,"):
        fail("--budget is empty: give limits such as 'params<=20M state@32k<=64MiB'")
    limits = Budget.parse(budget) if budget is not None else None
    settings = {k: v for k, v in (("d_model", d_model), ("vocab", vocab)) if v is not None}
    # a list, not a dict: the same file named twice is two columns of the comparison, not one
    models: list[tuple[str, object]] = []
    if sum(1 for path in files or [] if str(path) == "-") > 1:
        fail("'-' (standard input) can be given only once")
    for path in files or []:
        name = STDIN_NAME if str(path) == "-" else str(path)
        models.append((name, archdsl.to_graph(load_file(path, **settings))))
    for i, expr in enumerate(exprs or [], start=1):
        name = "<expr>" if len(exprs) == 1 else f"<expr{i}>"
        models.append((name, archdsl.to_graph(archdsl.parse(expr, filename=name, **settings))))
    if not models:
        fail("give one or more FILEs or -e TEXT")

    over, reports = False, []
    out = error_console if as_json else console
    for name, graph in models:
        costs = [model_cost(graph, seq_len=s, batch=batch) for s in seqs]
        check = limits.check(costs) if limits is not None else None
        over = over or (check is not None and not check.ok)
        report = model_json(name, costs, check)
        if not as_json:
            for table in cost_tables(name, costs, check):
                console.print(table)
        if measure:
            from archdsl.costing.measure import measure as run_measure

            result = run_measure(graph, seq_len=seqs[0], batch=batch)
            report["measure"] = result.as_dict()
            out.print(str(result), markup=False)
        reports.append(report)
    if as_json:
        typer.echo(json.dumps(report_json(reports, seqs, batch), indent=2))
    if plot is not None:
        from archdsl.costing.plot import plot_costs

        plot_costs(models, seqs, plot, batch=batch)
        out.print(f"wrote {plot}", markup=False)
    if over:
        raise typer.Exit(code=1)


def _check_plot_path(plot: Path) -> None:
    """Refuse a plot target that cannot be written before the costs are computed and printed."""
    if str(plot) in ("", "."):
        fail("--plot needs a file name, such as cost.png")
    if plot.is_dir():
        raise ArchDSLError(f"cannot write the plot to '{plot}': it is a directory")
    if not plot.parent.is_dir():
        raise ArchDSLError(f"cannot write the plot to '{plot}': the folder '{plot.parent}' does not exist")
