"""A limit without @LENGTH holds at every length asked for, and every result names its length
(issue 14, item 1)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

import archdsl
from archdsl.cli import app
from archdsl.costing import Budget

LLAMA = Path(__file__).resolve().parents[2] / "examples" / "llama.arch"


def test_cli_checks_a_length_free_limit_at_every_seq():
    result = CliRunner().invoke(
        app, ["cost", str(LLAMA), "--seq", "2k,128k", "--budget", "train_flops/token<=1G state<=100MiB"]
    )
    assert result.exit_code == 1, result.output
    assert "budget: OVER" in result.output
    for row in ("train_flops/token<=1G at 2k", "train_flops/token<=1G at 128k", "state<=100MiB at 128k"):
        assert row in result.output


def test_check_at_several_lengths_from_python():
    spec = archdsl.load(LLAMA)
    budget = Budget.parse("train_flops/token<=1G state<=100MiB params<=1B")
    long = archdsl.cost(spec, seq_len=131072)
    for result in (
        budget.check(spec, seq_len=[2048, 131072]),
        budget.check([archdsl.cost(spec, seq_len=2048), long]),
    ):
        assert not result.ok
        got = {(limit.key, limit.at): value for limit, value in result.values}
        assert got[("train_flops/token", 131072)] == long.train_flops
        assert got[("state", 131072)] == long.state_bytes
        assert got[("params", None)] == long.params  # no length: measured once
        assert {str(v).split(":")[0] for v in result} == {"train_flops/token<=1G at 128k", "state<=100MiB at 128k"}


def test_one_length_works_as_before_and_names_its_length():
    spec = archdsl.load(LLAMA)
    result = Budget.parse("state<=100MiB").check(archdsl.cost(spec, seq_len=2048))
    assert result.ok and len(result.values) == 1
    limit, value = result.values[0]
    assert limit.at == 2048 and limit.label == "state<=100MiB at 2k" and value == 16 * 2**20
    assert not Budget.parse("state<=100MiB").check(spec, seq_len=131072)


def test_seq_len_may_be_written_as_text():
    spec = archdsl.load(LLAMA)
    result = Budget.parse("state<=100MiB").check(spec, seq_len="2k,128k")
    assert [limit.at for limit, _ in result.values] == [2048, 131072] and not result.ok
