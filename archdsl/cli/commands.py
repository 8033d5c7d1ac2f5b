"""check, fmt, show, layers, build: the commands of the core pipeline."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import typer

import archdsl
from archdsl.cli.app import app, console, fail, reports_errors, write_text
from archdsl.spec.model import Spec

FileArg = typer.Argument(None, help="an .arch file, or - to read the program from standard input", show_default=False)
ExprOpt = typer.Option(None, "-e", "--expr", help="program text instead of a file, e.g. '4x(ssm) attn mlp'")
DModelOpt = typer.Option(None, "--d-model", help="override the model header's d_model")
VocabOpt = typer.Option(None, "--vocab", help="override the model header's vocab")


def load_spec(file: Optional[Path], expr: Optional[str], **settings) -> Spec:
    """The Spec of a file, of ``-`` (standard input) or of ``-e TEXT`` (exactly one of them)."""
    settings = {k: v for k, v in settings.items() if v is not None}
    if (file is None) == (expr is None):
        fail("give either a FILE or -e TEXT")
    if expr is not None:
        return archdsl.parse(expr, filename="<expr>", **settings)
    return load_file(file, **settings)


STDIN_NAME = "<stdin>"


def load_file(file: Path, **settings) -> Spec:
    """``archdsl.load``, where ``-`` reads the program from standard input."""
    if str(file) != "-":
        return archdsl.load(file, **settings)
    from archdsl.api import read_bounded

    stream = getattr(sys.stdin, "buffer", sys.stdin)
    data = read_bounded(stream, STDIN_NAME)
    return archdsl.parse(data, filename=STDIN_NAME, **settings)


def count_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


@app.command()
@reports_errors
def check(file: Optional[Path] = FileArg, expr: Optional[str] = ExprOpt) -> None:
    """Parse, resolve and lower a program; report problems as file:line:col.

    On a program with choices (a space of layouts): its choice sites and the number of layouts.
    """
    from archdsl.cli.space import print_check, space_or_none

    space = space_or_none(file, expr)
    if space is not None:
        print_check(space)
        return
    from archdsl.graph.lower import check_lowering

    spec = load_spec(file, expr)
    nodes = check_lowering(spec)  # what to_graph checks, without the networkx graph
    sublayers = sum(1 for _, a in nodes if a["kind"] in ("layer", "fork") and a.get("residual", True))
    console.print(f"ok: {sublayers} sub-layers, d_model={spec.model.d_model}, vocab={spec.model.vocab}", soft_wrap=True)


@app.command()
@reports_errors
def fmt(
    file: Optional[Path] = FileArg,
    expr: Optional[str] = ExprOpt,
    roll: bool = typer.Option(False, "--roll", help="also roll runs of equal items into Nx(...); never unrolls"),
    write: bool = typer.Option(False, "--write", "-w", help="rewrite the file in place"),
    canonical: bool = typer.Option(
        False, "--canonical", help="print the canonical text instead: lets expanded, defaults dropped"
    ),
) -> None:
    """Format a program: spacing, parameter order and repeats normalised; names, comments kept.

    --canonical prints the canonical text of the model instead. A program with choices prints
    as its canonical text, choices and let names kept.
    """
    from archdsl.cli.space import space_or_none

    space = space_or_none(file, expr)
    if space is not None:
        if write:
            fail("fmt --write does not rewrite a search space yet (it would drop its comments); print it with fmt")
        typer.echo(str(space), nl=False)
        return
    if canonical:
        if write:
            fail("--canonical prints the canonical text; it does not rewrite a file (drop --write)")
        from archdsl.syntax.printer import print_spec

        text = print_spec(load_spec(file, expr), roll=roll)
        typer.echo(text, nl=not text.endswith("\n"))
        return
    from archdsl.syntax.format import format_source

    if (file is None) == (expr is None):
        fail("give either a FILE or -e TEXT")
    if write and (file is None or str(file) == "-"):
        fail("--write needs a FILE")
    if expr is not None:
        source, name = expr, "<expr>"
    elif str(file) == "-":
        from archdsl.api import read_bounded

        source, name = read_bounded(getattr(sys.stdin, "buffer", sys.stdin), STDIN_NAME), STDIN_NAME
    else:
        from archdsl.api import read_source

        source, name = read_source(file), str(file)
    text = format_source(source, filename=name, roll=roll)
    if not write:
        typer.echo(text, nl=False)
        return
    if text.encode("utf-8") == source:
        console.print(f"{file} is already formatted", markup=False)
        return
    write_text(file, text)
    console.print(f"rewrote {file}", markup=False)


@app.command()
@reports_errors
def show(
    file: Optional[Path] = FileArg,
    expr: Optional[str] = ExprOpt,
    format: str = typer.Option("table", "--format", "-f", help="table, mermaid, dot, svg or png"),
    d_model: Optional[int] = DModelOpt,
    vocab: Optional[int] = VocabOpt,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="write the svg or png picture to FILE"),
) -> None:
    """Show the sub-layers with their parameter counts, or the graph as Mermaid or DOT text."""
    from archdsl.graph.export import to_dot, to_mermaid

    if format not in ("table", "mermaid", "dot", "svg", "png"):
        fail(f"--format must be table, mermaid, dot, svg or png, not '{format}'")
    if format in ("svg", "png") or out is not None:  # a picture: svg to stdout or --out, png to --out
        from archdsl.cli.space import space_or_none
        from archdsl.draw import show_picture

        # a program with choices draws as one of its layouts with the choice sites outlined
        space = space_or_none(file, expr) if d_model is None and vocab is None else None
        return show_picture(space or load_spec(file, expr, d_model=d_model, vocab=vocab), format, out)
    spec = load_spec(file, expr, d_model=d_model, vocab=vocab)
    graph = archdsl.to_graph(spec)
    if format == "mermaid":
        typer.echo(to_mermaid(graph), nl=False)
        return
    if format == "dot":
        typer.echo(to_dot(graph), nl=False)
        return
    table = show_table(spec, graph, file)
    if isinstance(table, str):
        typer.echo(table, nl=False)
    else:
        console.print(table)


def show_table(spec: Spec, graph, file: Optional[Path]):
    """The table of ``show``: counted analytically, never built."""
    from archdsl.cli.show_table import layer_table

    name = STDIN_NAME if str(file) == "-" else file or "expression"
    return layer_table(graph, f"{name}: d_model={spec.model.d_model} vocab={spec.model.vocab}")


@app.command()
@reports_errors
def layers() -> None:
    """List every registered layer type with its parameters, defaults and descriptions."""
    from rich.table import Table

    from archdsl.layers.registry import get_layer, list_layers
    from archdsl.spec.model import ModelSettings

    settings = ModelSettings()
    for name in list_layers():
        layer = get_layer(name)
        # a None default is either derived from the model (filled by resolve) or means "off"
        resolved = layer.Params().resolve(settings)
        table = Table(title=f"[bold]{name}[/bold]: {layer.description}", title_justify="left", expand=False)
        table.add_column("parameter")
        table.add_column(f"default (d_model={settings.d_model})")
        table.add_column("description")
        for field_name, info in layer.Params.model_fields.items():
            value = info.default
            if value is None:
                derived = getattr(resolved, field_name)
                default = "none" if derived is None else f"{_show(derived)} (derived)"
            else:
                default = _show(value)
            table.add_row(field_name, default, info.description or "")
        console.print(table)


def _show(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


@app.command()
@reports_errors
def build(
    file: Optional[Path] = FileArg,
    expr: Optional[str] = ExprOpt,
    d_model: Optional[int] = DModelOpt,
    vocab: Optional[int] = VocabOpt,
    seq: int = typer.Option(64, "--seq", help="tokens per sequence of the test forward pass"),
    batch: int = typer.Option(1, "--batch", help="sequences in the test forward pass"),
    tree: bool = typer.Option(True, "--tree/--no-tree", help="print the module tree"),
) -> None:
    """Build the PyTorch model, run one forward pass, print the module tree and parameter count."""
    import torch

    if seq < 1 or batch < 1:
        fail(f"--seq and --batch must be at least 1 (got --seq {seq}, --batch {batch})")
    spec = load_spec(file, expr, d_model=d_model, vocab=vocab)
    from archdsl.nn.memory import check_fits

    # the test forward pass: activations (an upper bound: what training would keep) and logits
    graph = archdsl.to_graph(spec)  # lowered once, for the cost and the build
    forward_bytes = archdsl.cost(graph, seq_len=seq, batch=batch, act_bytes=4).activation_memory
    check_fits(forward_bytes + batch * seq * spec.model.vocab * 4, f"a forward pass of {batch} x {seq} tokens")
    start = time.perf_counter()
    model = archdsl.build(graph)
    built = time.perf_counter() - start
    ids = torch.randint(0, spec.model.vocab, (batch, seq))
    start = time.perf_counter()
    with torch.no_grad():
        logits = model(ids)
    forward = time.perf_counter() - start
    if tree:
        console.print(str(model), markup=False, highlight=False)
    console.print(
        f"parameters: {count_params(model):,}  built in {built * 1e3:.0f} ms  "
        f"forward ({batch}x{seq} tokens) in {forward * 1e3:.0f} ms -> logits {tuple(logits.shape)}",
        soft_wrap=True,
    )
