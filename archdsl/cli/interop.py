"""``archdsl import`` and ``archdsl export``: published Hugging Face configs in and out.

archdsl import config.json                         # the layout as DSL text
archdsl import config.json --approximate --out m.arch
archdsl export examples/nemotron_h.arch --hf       # layer_types / hybrid_override_pattern as JSON
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from archdsl.cli.app import app, console, fail, reports_errors, write_text
from archdsl.cli.commands import ExprOpt, FileArg, load_spec
from archdsl.errors import ArchDSLError


@app.command("import")
@reports_errors
def import_command(
    config: Path = typer.Argument(..., help="a Hugging Face config.json, or - to read it from standard input"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="write the program to FILE instead of printing it"),
    approximate: bool = typer.Option(
        False,
        "--approximate",
        help="accept fields archdsl cannot express; each is written as a '# differs:' comment at the top",
    ),
) -> None:
    """Print the layout of a Hugging Face config as DSL text, rolled, with its model header.

    Families: llama, mistral, qwen3, qwen3_next, lfm2, mamba, mamba2, jamba, nemotron_h,
    zamba2, falcon_h1. A field archdsl cannot express stops the import with its name and value
    (unless --approximate); fields that do not change the architecture are ignored.
    """
    from archdsl.interop.hf_config import from_hf_config, read_config

    if str(config) == "-":
        try:
            data = json.loads(sys.stdin.read())
        except json.JSONDecodeError as exc:
            raise ArchDSLError(f"<stdin>:{exc.lineno}:{exc.colno}: malformed JSON: {exc.msg}") from None
        if not isinstance(data, dict):
            raise ArchDSLError("<stdin>: expected a JSON object of config fields")
        text = from_hf_config(data, approximate=approximate, name="<stdin>")
    else:
        text = from_hf_config(read_config(config), approximate=approximate, name=str(config))
    _emit(text, out)


@app.command("export")
@reports_errors
def export_command(
    file: Optional[Path] = FileArg,
    expr: Optional[str] = ExprOpt,
    hf: bool = typer.Option(False, "--hf", help="the Hugging Face layer_types / hybrid_override_pattern fields"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="write the JSON to FILE instead of printing it"),
) -> None:
    """Write a layout in another tool's terms; --hf: the Hugging Face config fields of its layers.

    layer_types (one entry per token mixer + feed-forward: full_attention, sliding_attention,
    linear_attention, conv) and Nemotron-H's hybrid_override_pattern (one character per
    sub-layer: M ssm, * attn, - mlp, E moe), whichever can express the layout.
    """
    if not hf:
        fail("choose what to export: --hf (the Hugging Face layer_types fields)")
    from archdsl.interop.hf_export import to_hf_layer_types

    fields = to_hf_layer_types(load_spec(file, expr))
    lines = [f"  {json.dumps(key)}: {json.dumps(value)}" for key, value in fields.items()]  # lists on one line
    _emit("{\n" + ",\n".join(lines) + "\n}\n", out)


def _emit(text: str, out: Optional[Path]) -> None:
    if out is None:
        typer.echo(text, nl=False)
        return
    write_text(out, text)
    console.print(f"wrote {out}", markup=False)
