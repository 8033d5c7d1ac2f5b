"""What the tool says is what it does (issue 14, item 6)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.figure
import tomllib
from typer.testing import CliRunner

import archdsl
from archdsl.cli import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def test_plot_writes_exactly_the_path_it_names(tmp_path):
    target = tmp_path / "noext"
    result = runner.invoke(app, ["cost", "-e", "ssm", "--seq", "2k", "--plot", str(target)])
    assert result.exit_code == 0 and f"wrote {target}" in result.output
    assert target.read_bytes().startswith(b"\x89PNG") and not (tmp_path / "noext.png").exists()


def test_cost_keeps_a_file_named_twice():
    llama = str(ROOT / "examples" / "llama.arch")
    result = runner.invoke(app, ["cost", llama, llama, "--seq", "2k", "--json"])
    assert result.exit_code == 0
    assert [m["name"] for m in json.loads(result.output)["models"]] == [llama, llama]


def test_the_package_does_not_promise_a_command_that_does_not_exist():
    description = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["description"]
    if "search" not in {c.name for c in app.registered_commands}:
        assert "search" not in description.replace("(search in progress)", "")
        assert "search" not in runner.invoke(app, ["--help"]).output


def test_the_ssm_flops_step_is_real_and_marked_in_the_plot(tmp_path, monkeypatch):
    from archdsl.costing.plot import algorithm_switches, plot_costs

    graph = archdsl.to_graph(archdsl.parse("ssm", d_model=64, vocab=10))
    (switch,) = algorithm_switches(graph)
    assert switch == 33025  # 258 chunks of 128 (the default chunk of 256 runs as 128 here) + 1
    before, after = (archdsl.cost(graph, seq_len=n).train_flops for n in (switch - 1, switch))
    assert after < before  # the formula counts what runs: the chunk pass becomes a loop
    figures = []
    original = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(
        matplotlib.figure.Figure, "savefig", lambda self, *a, **k: (figures.append(self), original(self, *a, **k))
    )
    plot_costs({"ssm": graph}, [2048, 131072], tmp_path / "c.png")
    texts = [t.get_text() for ax in figures[0].axes for t in ax.texts]
    assert any("matrix product to a loop" in t and "33,025" in t for t in texts), texts
    # both sides of the switch are drawn, so the step reads as a step
    xs = figures[0].axes[0].lines[0].get_xdata()
    assert switch - 1 in xs and switch in xs
