"""show counts without building, tables are complete in a pipe, FIFOs and stdin (issue 14, item 5)."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import archdsl
from archdsl.cli import app
from archdsl.errors import LimitError
from archdsl.syntax import parser

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
runner = CliRunner()


def run(*args: str, **kwargs):
    return runner.invoke(app, list(args), **kwargs)


def _rows(output: str) -> dict[str, str]:
    """'#' column -> parameters column of show's table."""
    out = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 4 and cells[0].isdigit():
            out[cells[0]] = cells[3]
        elif len(cells) == 4 and cells[1] in ("total", "non-embedding"):
            out[cells[1]] = cells[3]
    return out


@pytest.mark.parametrize("example", ["zamba2.arch", "hymba.arch", "jamba.arch"])
def test_show_counts_what_the_built_model_holds_without_building_it(example, monkeypatch):
    spec = archdsl.load(EXAMPLES / example)
    with torch.device("meta"):
        model = archdsl.build(spec)  # the reference: the real modules' parameters
    monkeypatch.setattr(archdsl, "build", lambda *a, **k: pytest.fail("show built the model"))
    result = run("show", str(EXAMPLES / example))
    assert result.exit_code == 0, result.output
    rows, seen = _rows(result.output), set()
    for i, layer in enumerate(model.layers):
        expected = "(same weights)" if id(layer) in seen else f"{sum(p.numel() for p in layer.parameters()):,}"
        seen.add(id(layer))
        assert rows[str(i)] == expected, (i, rows[str(i)])
    total = sum(p.numel() for p in model.parameters())
    vocab = model.embed.weight.numel() + (0 if spec.model.tie_embeddings else model.lm_head.weight.numel())
    assert rows["total"] == f"{total:,}" and rows["non-embedding"] == f"{total - vocab:,}"


def test_show_names_every_layer_of_a_branch():
    result = run("show", "-e", "(attn | conv mlp) mlp", "--d-model", "64", "--vocab", "10")
    assert result.exit_code == 0 and "(attn | conv mlp)" in result.output, result.output


def test_show_past_the_rich_limit_prints_plain_aligned_rows(monkeypatch):
    import archdsl.cli.show_table as show_table

    monkeypatch.setattr(show_table, "RICH_ROWS", 3)
    result = run("show", "-e", "4x(ssm) attn", "--d-model", "64", "--vocab", "10")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert re.match(r"\s*4\s+attn\s+[\d,]+$", lines[7]), result.output
    assert lines[-2].split()[0] == "total"


def test_tables_are_complete_when_stdout_is_not_a_terminal():
    result = run("cost", str(EXAMPLES / "llama.arch"), str(EXAMPLES / "jamba.arch"), "--seq", "2k,8k,32k,128k")
    assert result.exit_code == 0
    assert "…" not in result.output and "recurrent" in result.output and "decode" in result.output


def test_a_program_with_too_many_calls_is_refused_while_it_streams(monkeypatch):
    monkeypatch.setattr(parser, "MAX_SUBLAYERS", 10)
    with pytest.raises(LimitError, match="more than 10 layer calls") as info:
        parser.parse_program("let a = ssm state=x\n" + "ssm " * 11)
    assert (info.value.span.line, info.value.span.column) == (2, 37)  # the eleventh call; `x` is a value


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_fifo_without_writer_does_not_hang(tmp_path):
    fifo = tmp_path / "pipe.arch"
    os.mkfifo(fifo)
    outcome = []

    def load():
        try:
            archdsl.load(fifo)
        except archdsl.ArchDSLError as err:
            outcome.append(str(err))

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(timeout=20)
    assert outcome and "named pipe with nothing written to it" in outcome[0]


def test_dash_reads_the_program_from_stdin():
    assert "ok: 2 sub-layers" in run("check", "-", input="ssm mlp\n").output
    assert run("fmt", "-", input="ssm   mlp\n").output == "ssm mlp\n"
    assert "(attn | ssm)" in run("show", "-", input="(attn | ssm)").output
    cost = run("cost", "-", str(EXAMPLES / "llama.arch"), "--seq", "2k", "--json", input="ssm")
    assert cost.exit_code == 0 and '"name": "<stdin>"' in cost.output
    bad = run("check", "-", input="ssm atn")
    assert bad.exit_code == 1 and bad.output.startswith("<stdin>:1:5: error: unknown layer 'atn'")
