"""``archdsl report`` on a study whose trials are written by hand (the search itself is tested
in test_search.py): the Pareto front against a brute-force check, the PNG, the self-contained
HTML page with baselines marked, and .arch files that ``archdsl check`` accepts."""

from __future__ import annotations

import re

import optuna
from optuna.trial import TrialState, create_trial
from typer.testing import CliRunner

import archdsl
from archdsl.cli import app
from archdsl.search.report import build_report
from archdsl.search.study import open_storage
from archdsl.syntax.printer import print_spec

runner = CliRunner()
LAYOUTS = ["4x(attn)", "4x(ssm)", "3x(ssm) attn", "2x(ssm attn)", "ssm 3x(attn)", "4x(conv)"]
VALUES = [(0.95, 4.0), (0.40, 1.0), (0.90, 2.0), (0.85, 2.5), (0.50, 3.5), (0.30, 0.5)]


def _dsl(text):
    return print_spec(archdsl.parse(text, d_model=32, vocab=64), roll=True)


def make_study(folder, name="demo"):
    storage = open_storage(folder / "study.log")
    study = optuna.create_study(study_name=name, storage=storage, directions=["maximize", "minimize"])
    study.set_user_attr("objectives", [{"name": "accuracy"}, {"name": "state@4k"}])
    study.set_user_attr("recipe", {"study": {"name": name}})
    for i, (text, values) in enumerate(zip(LAYOUTS, VALUES)):
        attrs = {"dsl": _dsl(text), "status": "finished", "metrics": {"accuracy": values[0], "loss": 1 - values[0]},
                 "cost_values": {"state@4k": values[1]}}  # fmt: skip
        if i < 2:
            attrs["baseline"] = text
        study.add_trial(
            create_trial(values=list(values), user_attrs=attrs, system_attrs={"constraints:params<=1M": -0.5})
        )
    over = {
        "dsl": _dsl("8x(attn)"),
        "status": "infeasible",
        "reason": "over budget: params<=1M: measured 2M (2x the limit)",
    }
    study.add_trial(
        create_trial(state=TrialState.PRUNED, user_attrs=over, system_attrs={"constraints:params<=1M": 1.0})
    )
    study.add_trial(
        create_trial(state=TrialState.FAIL, user_attrs={"status": "failed", "reason": "diverged: loss is nan"})
    )
    return study


def brute_front(points):
    """Maximise the first value, minimise the second."""
    return {
        i for i, (a, s) in enumerate(points)
        if not any(b >= a and t <= s and (b > a or t < s) for j, (b, t) in enumerate(points) if j != i)
    }  # fmt: skip


def test_front_and_counts_match_brute_force(tmp_path):
    report = build_report(make_study(tmp_path))
    assert {r.number for r in report.best} == brute_front(VALUES) == {0, 1, 2, 5}
    assert report.counts == {"running": 0, "finished": 6, "pruned": 0, "infeasible": 1, "failed": 1}
    assert [r.baseline for r in report.baselines] == ["4x(attn)", "4x(ssm)"]
    assert report.objectives == ["accuracy", "state@4k"] and report.directions == ["maximize", "minimize"]


def test_report_command_writes_png_html_and_checkable_arch_files(tmp_path):
    make_study(tmp_path)
    result = runner.invoke(app, ["report", str(tmp_path), "--top", "3"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "3x(ssm) attn" in result.output and "[baseline]" in result.output
    out = tmp_path / "report"
    png = (out / "pareto.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    page = (out / "report.html").read_text()
    # self-contained: the figure is inlined, nothing is fetched
    assert "data:image/png;base64," in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert page.count('class="tag baseline"') >= 2 and "over budget: params&lt;=1M" in page
    arch = sorted(out.glob("best/*.arch"))
    assert [p.name for p in arch] == ["trial-0.arch", "trial-1.arch", "trial-2.arch"]
    for path in arch:
        check = runner.invoke(app, ["check", str(path)])
        assert check.exit_code == 0, check.output
    assert archdsl.load(out / "best" / "trial-2.arch") == archdsl.parse("3x(ssm) attn", d_model=32, vocab=64)
    # a picture beside each best layout, and on the page one per best layout and baseline
    import xml.etree.ElementTree as ET

    svg = ET.fromstring((out / "best" / "trial-2.svg").read_text())
    types = [e.get("data-type") for e in svg.iter() if e.get("data-type") and e.get("data-node")]
    assert types == ["ssm", "ssm", "ssm", "attn"]
    assert page.count("<figure class='layout'><svg") == 3  # trials 0, 1, 2; the baselines 0, 1 among them
    assert (
        (out / "best" / "trial-0.arch")
        .read_text()
        .startswith("# archdsl search, study 'demo', trial 0: accuracy = 0.95, state@4k = 4\n# baseline: 4x(attn)\n")
    )


def test_report_json_and_errors(tmp_path):
    make_study(tmp_path, name="a")
    make_study(tmp_path, name="b")
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 1 and "holds 2 studies (a, b); choose with --study" in result.output
    result = runner.invoke(app, ["report", str(tmp_path), "--study", "b", "--json", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert '"study": "b"' in result.output and (tmp_path / "r" / "report.html").exists()
    result = runner.invoke(app, ["report", str(tmp_path / "nothing")])
    assert result.exit_code == 1 and "no study storage at" in result.output and "Traceback" not in result.output


def test_live_panel_shows_progress_counts_and_front(tmp_path):
    from rich.console import Console

    from archdsl.search.display import Monitor

    monitor = Monitor(make_study(tmp_path), objectives=["accuracy", "state@4k"], first=0, planned=10, workers=2,
                      deadline=None)  # fmt: skip
    console = Console(width=120, record=True, color_system=None)
    console.print(monitor)
    text = console.export_text()
    assert "trial 8 of 10" in text and "(study: 8 trials, 2 workers)" in text
    assert "running 0   finished 6   pruned 0   infeasible 1   failed 1" in text
    front = [line.split()[0:2] for line in text.splitlines() if "x(" in line]
    assert front == [["│", "0"], ["│", "2"], ["│", "1"], ["│", "5"]]  # the front, best accuracy first
    assert "4x(attn) (baseline)" in text and "4B" in text  # state shown in bytes


def test_live_panel_is_as_wide_as_its_content_in_a_pipe(tmp_path):
    """A pipe or CI log has an unbounded console: the panel must not stretch to fill it."""
    from rich.console import Console

    from archdsl.search.display import Monitor

    monitor = Monitor(make_study(tmp_path), objectives=["accuracy", "state@4k"], first=0, planned=10, workers=2,
                      deadline=None)  # fmt: skip
    console = Console(width=5000, record=True, color_system=None)
    console.print(monitor)
    assert max(len(line) for line in console.export_text().splitlines()) < 160
