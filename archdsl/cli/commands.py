"""check, fmt, show, layers, build: the commands of the core pipeline."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

import archdsl
from archdsl.cli.app import app, console, fail, reports_errors
from archdsl.errors import ArchDSLError
from archdsl.spec.model import Spec

FileArg = typer.Argument(None, help="an .arch file", show_default=False)
ExprOpt = typer.Option(None, "-e", "--expr", help="program text instead of a file, e.g. '4x(ssm) attn mlp'")
DModelOpt = typer.Option(None, "--d-model", help="override the model header's d_model")
VocabOpt = typer.Option(None, "--vocab", help="override the model header's vocab")


def load_spec(file: Optional[Path], expr: Optional[str], **settings) -> Spec:
    """The Spec of a file or of ``-e TEXT`` (exactly one of them)."""
    settings = {k: v for k, v in settings.items() if v is not None}
    if (file is None) == (expr is None):
        fail("give either a FILE or -e TEXT")
    if expr is not None:
        return archdsl.parse(expr, filename="<expr>", **settings)
    return archdsl.load(file, **settings)


def count_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


@app.command()
@reports_errors
def check(file: Optional[Path] = FileArg, expr: Optional[str] = ExprOpt) -> None:
    """Parse, resolve and lower a program; report problems as file:line:col. On a search space:
    its choice sites and the number of layouts."""
    from archdsl.cli.space import print_check, space_or_none

    space = space_or_none(file, expr)
    if space is not None:
        print_check(space)
        return
    spec = load_spec(file, expr)
    graph = archdsl.to_graph(spec)
    sublayers = sum(1 for _, a in graph.nodes(data=True) if a["kind"] in ("layer", "fork") and a.get("residual", True))
    console.print(f"ok: {sublayers} sub-layers, d_model={spec.model.d_model}, vocab={spec.model.vocab}", soft_wrap=True)


@app.command()
@reports_errors
def fmt(
    file: Optional[Path] = FileArg,
    expr: Optional[str] = ExprOpt,
    roll: bool = typer.Option(False, "--roll", help="re-roll repeats into the shortest Nx(...) form"),
    write: bool = typer.Option(False, "--write", "-w", help="rewrite the file in place"),
) -> None:
    """Print the canonical text of a program (of a search space: choices kept)."""
    from archdsl.cli.space import space_or_none
    from archdsl.syntax.printer import print_spec

    space = space_or_none(file, expr)
    text = str(space) if space is not None else print_spec(load_spec(file, expr), roll=roll)
    if write:
        if file is None:
            fail("--write needs a FILE")
        # keep the file's opening comment block (the examples cite their sources there); the
        # canonical text itself has no comments and expands every let but the shared groups
        try:
            original = file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ArchDSLError(f"cannot read '{file}': {exc}") from None
        header = []
        for line in original:
            if line.strip() and not line.lstrip().startswith("#"):
                break
            header.append(line)
        while header and not header[-1].strip():
            header.pop()
        try:
            file.write_text("\n".join(header) + ("\n" if header else "") + text, encoding="utf-8")
        except OSError as exc:
            raise ArchDSLError(f"cannot write '{file}': {exc.strerror or exc}") from None
        kept = "choices and let names kept" if space is not None else "let names other than shared groups expanded"
        console.print(f"rewrote {file} (opening comments kept; {kept})")
    else:
        typer.echo(text, nl=not text.endswith("\n"))


@app.command()
@reports_errors
def show(
    file: Optional[Path] = FileArg,
    expr: Optional[str] = ExprOpt,
    format: str = typer.Option("table", "--format", "-f", help="table, mermaid or dot"),
    d_model: Optional[int] = DModelOpt,
    vocab: Optional[int] = VocabOpt,
) -> None:
    """Show the sub-layers with their parameter counts, or the graph as Mermaid or DOT text."""
    from archdsl.graph.export import node_label, to_dot, to_mermaid

    if format not in ("table", "mermaid", "dot"):
        fail(f"--format must be table, mermaid or dot, not '{format}'")
    spec = load_spec(file, expr, d_model=d_model, vocab=vocab)
    graph = archdsl.to_graph(spec)
    if format == "mermaid":
        typer.echo(to_mermaid(graph), nl=False)
        return
    if format == "dot":
        typer.echo(to_dot(graph), nl=False)
        return
    import torch

    with torch.device("meta"):  # shapes only: counts parameters of any size instantly
        model = archdsl.build(graph)
    table = Table(title=f"{file or 'expression'}: d_model={spec.model.d_model} vocab={spec.model.vocab}")
    for column, justify in (("#", "right"), ("sub-layer", "left"), ("shared", "left"), ("parameters", "right")):
        table.add_column(column, justify=justify)
    seen: set[int] = set()
    layer_nodes = [n for n, a in graph.nodes(data=True) if a["kind"] in ("layer", "fork") and a.get("residual", True)]
    for node_id, module in zip(layer_nodes, model.layers):
        attrs = graph.nodes[node_id]
        if attrs["kind"] == "fork":
            branches = [node_label(graph, b).split(" [")[0] for b in graph.successors(node_id)]
            label = "(" + " | ".join(branches) + ")"
        else:
            label = node_label(graph, node_id).split(" [")[0]
        fresh = id(module) not in seen
        seen.add(id(module))
        params = f"{count_params(module):,}" if fresh else "(same weights)"
        table.add_row(str(attrs["index"]), label, attrs.get("group") or "", params)
    embed = model.embed.weight.numel()
    head = 0 if spec.model.tie_embeddings else model.lm_head.weight.numel()
    total = count_params(model)
    table.add_section()
    table.add_row(
        "",
        "embedding + final norm + LM head" + (" (tied)" if spec.model.tie_embeddings else ""),
        "",
        f"{embed + head + spec.model.d_model:,}",
    )
    table.add_row("", "total", "", f"{total:,}")
    table.add_row("", "non-embedding", "", f"{total - embed - head:,}")
    console.print(table)


@app.command()
@reports_errors
def layers() -> None:
    """List every registered layer type with its parameters, defaults and descriptions."""
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
