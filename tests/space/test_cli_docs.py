"""The space commands end to end, the README's search-space snippet, the example spaces, and a
real Optuna study on a stored database (no "dynamic value space" error, names stable)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

import archdsl
from archdsl.cli import app
from archdsl.space.space import layout_key

ROOT = Path(__file__).resolve().parents[2]
SPACES = sorted((ROOT / "examples" / "spaces").glob("*.arch"))
HYBRID = ROOT / "examples" / "spaces" / "hybrid.arch"
runner = CliRunner()
optuna.logging.set_verbosity(optuna.logging.WARNING)


def run(*args: str):
    return runner.invoke(app, list(args))


def test_check_prints_the_sites_and_the_size():
    result = run("check", str(HYBRID))
    assert result.exit_code == 0, result.output
    assert "search space: 3 choice sites, 15 layouts" in result.output
    for name in ("mixer", "mixer.attn.window", "repeat"):
        assert name in result.output
    assert "mixer=attn" in result.output  # when the nested site is drawn


def test_check_of_a_bad_space_is_positioned():
    result = run("check", "-e", "{ssm, atn} mlp")
    assert result.exit_code == 1
    assert "<expr>:1:7: error: unknown layer 'atn' (did you mean 'attn'?)" in result.output
    assert "Traceback" not in result.output


def test_fmt_keeps_the_choices():
    result = run("fmt", "-e", "let m = {ssm,attn   window={64,256}}\n{2,4}x( m mlp )")
    assert result.exit_code == 0, result.output
    assert result.output == "let m = {ssm, attn window={64, 256}}\n{2, 4}x(m mlp)\n"
    assert archdsl.parse_space(result.output) == archdsl.parse_space(
        "let m = {ssm, attn window={64, 256}}\n{2, 4}x(m mlp)"
    )


def test_sample_prints_a_plain_layout_that_the_params_give_back():
    result = run("sample", str(HYBRID), "--seed", "3")
    assert result.exit_code == 0, result.output
    first, *rest = result.output.splitlines()
    params = json.loads(first.removeprefix("# params: "))
    spec = archdsl.parse("\n".join(rest))  # plain DSL
    space = archdsl.load_space(HYBRID)
    assert layout_key(space.fix(params)) == layout_key(spec)
    assert run("sample", str(HYBRID), "--seed", "3").output == result.output  # the seed decides


def test_sample_all_lists_every_layout_and_refuses_past_the_limit():
    result = run("sample", str(HYBRID), "--all")
    assert result.exit_code == 0, result.output
    assert result.output.count("# params:") == 15
    refused = run("sample", str(HYBRID), "--all", "--limit", "10")
    assert refused.exit_code == 1
    assert "the space has 15 layouts, more than --limit 10" in refused.output


def test_sample_all_under_a_budget_counts_what_fits():
    result = run("sample", str(HYBRID), "--all", "--budget", "params<=3M")
    assert result.exit_code == 0, result.output
    space = archdsl.load_space(HYBRID)
    fits = [layout for layout in space.layouts() if archdsl.cost(layout.spec).params <= 3e6]
    assert f"{len(fits)} of 15 layouts within the budget" in result.output
    assert result.output.count("# params:") == len(fits)


def test_readme_search_space_snippet_runs(monkeypatch):
    monkeypatch.chdir(ROOT)
    section = (ROOT / "README.md").read_text().split("## Search spaces", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert namespace["study"].best_trial.state == optuna.trial.TrialState.COMPLETE


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_example_spaces_round_trip_and_sample(path):
    space = archdsl.load_space(path)
    assert archdsl.parse_space(str(space)) == space
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        trial = study.ask()
        spec = space.sample(trial)
        assert space.fix(trial.params) == spec
        archdsl.to_graph(spec)
        study.tell(trial, 0.0)


def test_a_tpe_study_never_meets_a_dynamic_value_space():
    """Every trial of a study samples the space with TPE; conditional and per-copy sites come and
    go between trials, each name always with the same distribution (Optuna's storages check a
    name's distribution against earlier trials' and raise otherwise)."""
    space = archdsl.load_space(ROOT / "examples" / "spaces" / "per_copy.arch")
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=5, multivariate=True))

    def objective(trial):
        return archdsl.cost(space.sample(trial)).params

    study.optimize(objective, n_trials=15)
    distributions = {site.name: site.distribution for site in space.sites}
    for trial in study.trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        for name, distribution in trial.distributions.items():
            assert distribution == distributions[name]
        assert archdsl.cost(space.fix(trial.params)).params == trial.value


def test_fmt_of_a_plain_each_repeat_and_of_a_space_from_stdin():
    assert run("fmt", "-e", "4x  each( ssm )").output == "4x each(ssm)\n"
    result = runner.invoke(app, ["check", "-"], input="{ssm, attn} mlp\n")
    assert result.exit_code == 0, result.output
    assert "search space: 1 choice sites, 2 layouts" in result.output
    plain = runner.invoke(app, ["check", "-"], input="ssm mlp\n")
    assert plain.exit_code == 0 and "ok: 2 sub-layers" in plain.output
    refused = run("fmt", "--write", str(HYBRID))
    assert refused.exit_code == 2 and "does not rewrite a search space yet" in refused.output
