"""``archdsl train`` and ``archdsl tasks``: train one layout on a task, list the tasks.

archdsl train examples/jamba.arch --d-model 64 --task mqar --steps 500
archdsl train -e "2x(attn mlp)" --d-model 64 --task mad/in_context_recall --json
archdsl train examples/samba.arch --d-model 128 --task text:notes.txt --steps 2000 --save out/samba
archdsl train -e "2x(attn)" --d-model 64 --task mqar pairs=16 seq_len=128 vocab=8192
archdsl tasks
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from archdsl.cli.app import app, console, error_console, fail, reports_errors
from archdsl.cli.commands import load_spec
from archdsl.errors import ArchDSLError

if TYPE_CHECKING:
    from rich.table import Table


def split_arguments(arguments: list[str]) -> tuple[Optional[Path], dict[str, str]]:
    """The .arch file (at most one) and the ``key=value`` task settings among the arguments."""
    files, settings = [], {}
    for item in arguments:
        if "=" in item:
            key, _, value = item.partition("=")
            if not key or key in settings:
                raise ArchDSLError(f"task setting '{item}': expected key=value, each key once")
            settings[key] = value
        else:
            files.append(item)
    if len(files) > 1:
        fail(f"give one FILE, not {len(files)} ({', '.join(files)}); task settings are written key=value")
    return (Path(files[0]) if files else None), settings


@app.command("train")
@reports_errors
def train_command(
    arguments: Optional[list[str]] = typer.Argument(
        None, help="an .arch file, then task settings as key=value (e.g. pairs=16)", show_default=False
    ),
    expr: Optional[str] = typer.Option(None, "-e", "--expr", help="program text instead of a file"),
    task_name: str = typer.Option("mqar", "--task", help="mqar, mad/<name>, or text:PATH (see `archdsl tasks`)"),
    d_model: Optional[int] = typer.Option(None, "--d-model", help="override the model header's d_model"),
    vocab: Optional[int] = typer.Option(None, "--vocab", help="model vocabulary (default: the task's)"),
    steps: int = typer.Option(1000, "--steps", help="optimizer steps"),
    batch: int = typer.Option(32, "--batch", help="sequences per step"),
    lr: float = typer.Option(1e-3, "--lr", help="peak learning rate (warm-up, then cosine)"),
    weight_decay: float = typer.Option(0.1, "--weight-decay", help="AdamW decay of matrices"),
    warmup: Optional[int] = typer.Option(None, "--warmup", help="warm-up steps (default: 10% of the steps)"),
    seed: int = typer.Option(0, "--seed", help="seeds the weights and the training batches"),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, ..."),
    dtype: Optional[str] = typer.Option(
        None, "--dtype", help="float32 or bfloat16 (default: bf16 on CUDA, fp32 on CPU)"
    ),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", help="evaluate every K steps (default: 10 times)"),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads"),
    compile_model: bool = typer.Option(False, "--compile", help="torch.compile the model"),
    as_json: bool = typer.Option(False, "--json", help="print the result as one JSON line"),
    save: Optional[Path] = typer.Option(None, "--save", help="write weights, .arch, settings and result here"),
) -> None:
    """Train a layout on a task and report its test metrics (loss, accuracy or bits per byte)."""
    from archdsl.tasks import get_task
    from archdsl.training import save_run, train

    file, task_settings = split_arguments(arguments or [])
    spec = load_spec(file, expr, d_model=d_model)
    task = get_task(task_name, **task_settings)
    settings = {
        "steps": steps,
        "batch": batch,
        "lr": lr,
        "weight_decay": weight_decay,
        "warmup": warmup,
        "seed": seed,
        "device": device,
        "dtype": dtype,
        "eval_every": eval_every,
        "threads": threads,
        "compile": compile_model,
        "vocab": vocab,
    }
    out = error_console if as_json else console
    if as_json:
        result = train(spec, task, **settings)
    else:
        out.print(
            f"training {spec.source_name or 'the program'} on {task.label}: {steps} steps of {batch} x {task.seq_len} tokens"
        )
        result = _train_with_progress(spec, task, settings)
    if save is not None:
        save_run(result, save, task.settings.model_dump(mode="json"))
    if as_json:
        typer.echo(json.dumps(result.to_dict(), separators=(",", ":")))
    else:
        console.print(_summary(result))
        if save is not None:
            console.print(f"saved to {save}/ (model.safetensors, model.arch, settings.json, result.json)")
    if result.status == "diverged":
        raise typer.Exit(code=1)


def _train_with_progress(spec, task, settings):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from archdsl.training import train

    main = task.main_metric
    columns = [
        TextColumn("[bold]step"),
        MofNCompleteColumn(),
        BarColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn(f"{main} {{task.fields[metric]}}"),
        TextColumn("{task.fields[speed]} tok/s"),
        TimeRemainingColumn(),
    ]
    tokens = settings["batch"] * task.seq_len
    with Progress(*columns, console=console, transient=False) as bar:
        row = bar.add_task("train", total=settings["steps"], loss="-", metric="-", speed="-")
        first: list[float] = []  # when step 1 ended: the speed leaves out start-up (imports, build)

        def on_step(step: int, loss: float) -> None:
            now = time.perf_counter()
            if not first:
                first.append(now)
            speed = (step - 1) * tokens / (now - first[0]) if step > 1 else 0.0
            bar.update(row, completed=step, loss=f"{loss:.3f}", speed=f"{speed:,.0f}")

        def on_eval(event) -> None:
            bar.update(row, metric=f"{event.metrics[main]:.3f}")

        return train(spec, task, callback=on_eval, progress=on_step, **settings)


def _summary(result) -> Table:
    from rich.table import Table

    table = Table(title=f"{result.task}: {result.status}" + (f" ({result.reason})" if result.reason else ""))
    table.add_column("metric")
    table.add_column("final", justify="right")
    table.add_column("best", justify="right")
    for name, value in result.metrics.items():
        best = result.best.get(name)
        table.add_row(name, f"{value:.4f}", "-" if best is None else f"{best:.4f}")
    table.caption = (
        f"{result.steps} steps, {result.params:,} parameters, {result.tokens_per_s:,.0f} tokens/s, "
        f"peak memory {result.peak_mem_bytes / 2**20:,.0f} MiB, {result.wall_s:.1f} s"
    )
    return table


@app.command("tasks")
@reports_errors
def tasks_command(as_json: bool = typer.Option(False, "--json", help="print the tasks as JSON")) -> None:
    """Every task, its metrics, its settings and their defaults (set them as key=value)."""
    from rich.table import Table

    from archdsl.tasks import list_tasks

    listing = {}
    for name, cls in list_tasks().items():
        shown = "text:PATH" if name == "text" else name
        fields = {
            key: {"default": field.default, "description": field.description or ""}
            for key, field in cls.Settings.model_fields.items()
        }
        listing[shown] = {
            "description": cls.description,
            "metrics": cls.metrics,
            "main": cls.main_metric,
            "settings": fields,
        }
    if as_json:
        typer.echo(json.dumps(listing, indent=2, default=str))
        return
    for name, info in listing.items():
        metrics = ", ".join(f"{m} ({d})" for m, d in info["metrics"].items())
        table = Table(title=f"{name}: {info['description']}", caption=f"metrics: {metrics}; main: {info['main']}")
        table.add_column("setting")
        table.add_column("default", justify="right")
        table.add_column("meaning")
        for key, field in info["settings"].items():
            default = field["default"]
            table.add_row(
                key, "required" if repr(default) == "PydanticUndefined" else str(default), field["description"]
            )
        console.print(table)
