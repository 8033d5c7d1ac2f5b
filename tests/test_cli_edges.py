"""Odd input at the command line ends in one clear line, never a traceback (issue 14)."""

from __future__ import annotations

import importlib

import pytest
from typer.testing import CliRunner

from archdsl.cli import app

runner = CliRunner()


def run(*args: str, **kwargs):
    return runner.invoke(app, list(args), **kwargs)


def test_an_unexpected_exception_is_one_line_with_a_pointer_to_report_it(monkeypatch):
    def broken(spec):
        raise RuntimeError("boom\nsecond line")

    # what check runs after resolving (the module: archdsl.graph.lower is also the function's name)
    monkeypatch.setattr(importlib.import_module("archdsl.graph.lower"), "check_lowering", broken)
    result = run("check", "-e", "ssm")
    assert result.exit_code == 1
    assert result.output.startswith("error: internal error: RuntimeError: boom second line (please report at ")
    assert result.output.count("\n") == 1 and "Traceback" not in result.output


def test_archdsl_errors_keep_their_located_message():
    result = run("check", "-e", "atn")
    assert result.exit_code == 1 and result.output.startswith("<expr>:1:1: error: unknown layer 'atn'")


@pytest.mark.parametrize(
    "seq, message",
    [
        pytest.param("9" * 400, "far too long for a length", id="400-digits"),
        pytest.param("99999999999999999999", "more than the limit of 4096M", id="absurd"),
        pytest.param("\uff11\uff12\uff18k", "is not a length", id="fullwidth-digits"),
        pytest.param("0.3", "not a positive whole number", id="fraction"),
        pytest.param("2k,,8k", "empty length", id="empty"),
    ],
)
def test_bad_seq_values_are_refused(seq, message):
    result = run("cost", "-e", "ssm", "--seq", seq)
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output, result.output


def test_seq_lengths_are_exact():
    result = run("cost", "-e", "ssm", "--seq", "1.5k,1048577", "--json")
    assert result.exit_code == 0 and '"seq": [\n    1536,\n    1048577\n  ]' in result.output


@pytest.mark.parametrize(
    "args, code, message",
    [
        pytest.param(["cost", "-e", "ssm", "--batch", "9" * 30], 2, "less than or equal to 1048576", id="huge-batch"),
        pytest.param(["cost", "-e", "ssm", "--budget", " "], 2, "--budget is empty", id="empty-budget"),
        pytest.param(["cost", "-e", "ssm", "--plot", ""], 2, "--plot needs a file name", id="empty-plot"),
        pytest.param(["build", "-e", "ssm", "--seq", "9" * 31], 1, "seq_len=a number of 31 digits", id="huge-build"),
        pytest.param(["fmt", "-e", "ssm", "--write"], 2, "--write needs a FILE", id="fmt-write-expr"),
        pytest.param(["fmt", "x.arch", "--write", "--canonical"], 2, "drop --write", id="fmt-canonical-write"),
    ],
)
def test_odd_options_are_refused_in_one_line(args, code, message):
    result = run(*args)
    assert result.exit_code == code and message in result.output, result.output


def test_a_plot_into_a_missing_folder_is_refused_before_the_tables(tmp_path):
    result = run("cost", "-e", "ssm", "--seq", "2k", "--plot", str(tmp_path / "no" / "x.png"))
    assert result.exit_code == 1 and result.output.startswith("error: cannot write the plot to")


def test_cost_compares_several_expressions():
    result = run("cost", "-e", "ssm", "-e", "attn", "--seq", "2k", "--json")
    assert result.exit_code == 0 and '"name": "<expr1>"' in result.output and '"name": "<expr2>"' in result.output


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and result.output.startswith("archdsl ")
