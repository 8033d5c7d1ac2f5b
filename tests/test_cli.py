"""The ``archdsl`` command end to end (typer's runner, the real commands)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from archdsl.cli import app

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def test_check_expression():
    result = run("check", "-e", "4x(ssm) 1x(attn window=512)")
    assert result.exit_code == 0, result.output
    assert "ok: 5 sub-layers" in result.output


def test_check_reports_location_and_caret_without_traceback():
    result = run("check", "-e", "4x(ssm) atn window=512")
    assert result.exit_code == 1
    assert "<expr>:1:9: error: unknown layer 'atn' (did you mean 'attn'?)" in result.output
    assert "    4x(ssm) atn window=512\n            ^^^" in result.output
    assert "Traceback" not in result.output


def test_check_file_error_names_the_file(tmp_path):
    path = tmp_path / "bad.arch"
    path.write_text("model d_model=256\n\n2x(ssm attn heads=5)\n")
    result = run("check", str(path))
    assert result.exit_code == 1
    assert f"{path}:3:19: error: layer 'attn'" in result.output


def test_missing_file_is_a_clear_error(tmp_path):
    result = run("check", str(tmp_path / "nope.arch"))
    assert result.exit_code == 1 and "cannot read" in result.output and "Traceback" not in result.output


def test_show_table_counts_parameters():
    result = run("show", str(EXAMPLES / "zamba2.arch"))
    assert result.exit_code == 0, result.output
    assert "(same weights)" in result.output and "total" in result.output


def test_show_mermaid_and_dot():
    mermaid = run("show", str(EXAMPLES / "hymba.arch"), "--format", "mermaid")
    dot = run("show", str(EXAMPLES / "hymba.arch"), "--format", "dot")
    assert mermaid.exit_code == 0 and mermaid.output.startswith("flowchart TD")
    assert dot.exit_code == 0 and dot.output.startswith("digraph archdsl {")
    assert run("show", str(EXAMPLES / "hymba.arch"), "--format", "gif").exit_code == 2


def test_fmt_roll():
    result = run("fmt", "--roll", "-e", "ssm ssm ssm attn ssm ssm ssm attn")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "2x(3x(ssm) attn)"


def test_build_runs_a_forward_pass():
    result = run("build", str(EXAMPLES / "jamba.arch"), "--d-model", "256", "--vocab", "1000", "--seq", "8")
    assert result.exit_code == 0, result.output
    assert "ArchModel(" in result.output and "logits (1, 8, 1000)" in result.output


def test_layers_lists_parameters_with_descriptions():
    result = run("layers")
    assert result.exit_code == 0
    for name in ("attn", "mlp", "ssm", "window", "kv_heads", "state"):
        assert name in result.output


def test_neither_file_nor_expression():
    result = run("check")
    assert result.exit_code == 2 and "give either a FILE or -e TEXT" in result.output


def test_fmt_write_keeps_the_opening_comments(tmp_path):
    path = tmp_path / "m.arch"
    path.write_text("# Source: a paper, 2024\n# second line\n\nmodel d_model=64 vocab=10\nlet b = ssm mlp\n2x( b )\n")
    result = run("fmt", "--write", str(path))
    assert result.exit_code == 0, result.output
    assert (
        path.read_text()
        == "# Source: a paper, 2024\n# second line\n\nmodel d_model=64 vocab=10\nlet b = ssm mlp\n2x(b)\n"
    )


def test_cost_plot_to_a_missing_folder_is_a_clear_error(tmp_path):
    result = run("cost", "-e", "ssm", "--seq", "2k", "--plot", str(tmp_path / "no" / "such" / "x.png"))
    assert result.exit_code == 1 and "error: cannot write the plot to" in result.output
