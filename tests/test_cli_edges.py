"""Odd input at the command line ends in one clear line, never a traceback (issue 14)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import archdsl.cli.commands
from archdsl.cli import app

runner = CliRunner()


def run(*args: str, **kwargs):
    return runner.invoke(app, list(args), **kwargs)


def test_an_unexpected_exception_is_one_line_with_a_pointer_to_report_it(monkeypatch):
    def broken(spec):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(archdsl.cli.commands.archdsl, "to_graph", broken)
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
