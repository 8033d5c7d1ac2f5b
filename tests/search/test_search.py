"""The search end to end on a tiny recipe: what each trial stores, infeasible layouts never
built, failed trials, pruning, the ladder, resuming, workers and reproducibility."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

import archdsl
import archdsl.training
from archdsl.cli import app
from archdsl.search import search
from archdsl.search.ladder import LADDER_ATTR, Ladder
from archdsl.search.recipe import RecipeError
from archdsl.search.study import open_storage
from archdsl.syntax.printer import print_spec


def load(summary):
    return optuna.load_study(study_name=summary["study"], storage=open_storage(summary["storage"]))


def spec_of(trial):
    return archdsl.parse(trial.user_attrs["dsl"])


def test_every_trial_stores_layout_cost_metrics_and_status(tmp_path, tiny):
    recipe = tiny()
    study = load(search(recipe, out=tmp_path, display="quiet"))
    trials = study.get_trials()
    assert len(trials) == 4 and all(t.state == TrialState.COMPLETE for t in trials)
    space = archdsl.parse_space(recipe.space.text, d_model=16, vocab=32)
    for t in trials:
        assert t.user_attrs["status"] == "finished"
        # the stored text is the layout the sampler chose
        assert spec_of(t) == space.fix(t.params)
        # the objective values are the stored metric and an independent cost of that text
        state = archdsl.cost(spec_of(t), seq_len=16, context=1024).state_bytes
        assert t.values == [t.user_attrs["metrics"]["accuracy"], state]
        assert t.user_attrs["cost"]["params"] == archdsl.cost(spec_of(t), seq_len=16).params
        trained = set() if "same_as" in t.user_attrs else {"train_s"}  # a layout drawn again is not trained again
        assert t.user_attrs["steps"] == 12 and set(t.user_attrs["timing"]) == {"sample_s", "cost_s"} | trained
    # the baseline ran first, as written
    assert trials[0].user_attrs["baseline"] == "2x(attn heads=2)"
    assert trials[0].user_attrs["dsl"] == print_spec(archdsl.parse("2x(attn heads=2)", d_model=16, vocab=32), roll=True)
    assert study.user_attrs["recipe"] == recipe.to_toml_dict()


def test_infeasible_layouts_are_recorded_and_never_built(tmp_path, tiny, monkeypatch):
    trained = []
    real_train = archdsl.training.train

    def spy(spec, task, **kwargs):  # calls the real loop; remembers what it was asked to build
        trained.append(spec)
        return real_train(spec, task, **kwargs)

    monkeypatch.setattr("archdsl.training.train", spy)
    # no KV cache allowed: every layout with an attention layer is over the budget
    recipe = tiny(budget={"limits": "kv@1k<=0"}, study={"trials": 6, "baselines": ["2x(conv)"]})
    study = load(search(recipe, out=tmp_path, display="quiet"))
    infeasible = [t for t in study.trials if t.user_attrs.get("status") == "infeasible"]
    feasible = [t for t in study.trials if t.user_attrs.get("status") == "finished"]
    assert infeasible and feasible and len(infeasible) + len(feasible) == 6
    for t in infeasible:
        kv = archdsl.cost(spec_of(t), seq_len=16, context=1024).kv_bytes
        assert kv > 0 and t.state == TrialState.PRUNED and t.constraints == {"kv@1k<=0": kv}
        assert "metrics" not in t.user_attrs and "kv@1k<=0" in t.user_attrs["reason"]
    # each feasible layout trained once (a layout drawn again reuses its result), nothing else
    assert [archdsl.cost(s, seq_len=16, context=1024).kv_bytes for s in trained] == [0] * len(trained)
    assert sorted(map(str, trained)) == sorted({str(spec_of(t)) for t in feasible})
    assert all(t.constraints == {"kv@1k<=0": 0.0} for t in feasible)


def test_a_layout_proposed_again_reuses_its_result(tmp_path, tiny, monkeypatch):
    """A space of two layouts and five trials: each layout is trained once; a trial that draws
    one again stores the first trial's metrics and values (and its number), trains nothing, and
    the report's front lists the layout once."""
    from archdsl.search.trials import best_trials

    trained = []
    real_train = archdsl.training.train

    def spy(spec, task, **kwargs):
        trained.append(str(spec))
        return real_train(spec, task, **kwargs)

    monkeypatch.setattr("archdsl.training.train", spy)
    recipe = tiny(
        space={"text": "2x({attn heads=2, conv})"}, study={"trials": 5, "baselines": None, "sampler": "random"}
    )
    study = load(search(recipe, out=tmp_path, display="quiet"))
    trials = study.get_trials()
    assert len(trials) == 5 and all(t.user_attrs["status"] == "finished" for t in trials)
    assert len(trained) == len(set(trained)) == len({t.user_attrs["dsl"] for t in trials})
    first = {}
    for t in trials:
        dsl = t.user_attrs["dsl"]
        if dsl not in first:
            first[dsl] = t
            assert "same_as" not in t.user_attrs and "train_s" in t.user_attrs["timing"]
            continue
        earlier = first[dsl]
        assert t.user_attrs["same_as"] == earlier.number and "train_s" not in t.user_attrs["timing"]
        assert t.values == earlier.values and t.user_attrs["metrics"] == earlier.user_attrs["metrics"]
    assert len(first) < 5  # five draws from two layouts: some layout came again
    assert {t.number for t in best_trials(study)} <= {t.number for t in first.values()}


def test_failed_trials_end_with_reason_and_the_study_goes_on(tmp_path, tiny):
    # 2 heads cannot share 4 key-value heads: that draw cannot be built; a huge lr diverges
    recipe = tiny(space={"text": "attn heads={4, 2} kv_heads={2, 4} conv"}, study={"trials": 6, "baselines": None})
    study = load(search(recipe, out=tmp_path / "a", display="quiet"))
    failed = [t for t in study.trials if t.user_attrs.get("status") == "failed"]
    assert failed and all(t.state == TrialState.FAIL for t in failed)
    for t in study.trials:
        bad = t.params == {"attn.heads": 2, "attn.kv_heads": 4}
        assert (t in failed) == bad
        if bad:
            assert t.user_attrs["reason"].startswith("cannot sample:") and "kv_heads" in t.user_attrs["reason"]
    assert len(study.trials) == 6

    diverging = tiny(train={"lr": 1e6, "grad_clip": None}, study={"trials": 2, "baselines": None})
    study = load(search(diverging, out=tmp_path / "b", display="quiet"))
    assert [t.user_attrs["status"] for t in study.trials] == ["failed", "failed"]
    assert all(t.user_attrs["reason"].startswith("diverged:") for t in study.trials)


@pytest.mark.parametrize("pruner", ["median", "successive_halving", "hyperband"])
def test_single_objective_pruners_act_through_the_train_callback(tmp_path, tiny, pruner):
    # three strong layouts (with attention) first, then random draws, most of them weaker
    strong = [
        "2x(attn heads=2)",
        "attn heads=2 ssm state=8 head_dim=8 chunk=16",
        "ssm state=8 head_dim=8 chunk=16 attn heads=2",
    ]
    recipe = tiny(
        study={"objectives": ["loss"], "trials": 6, "pruner": pruner, "baselines": strong, "sampler": "random"},
        train={"steps": 8, "eval_every": 2},
    )
    study = load(search(recipe, out=tmp_path, display="quiet"))
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    finished = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert pruned and finished
    for t in finished:  # every evaluation was reported, the last is the final metric's step
        assert sorted(t.intermediate_values) == [2, 4, 6, 8]
    for t in pruned:
        step = max(t.intermediate_values)
        assert t.user_attrs["status"] == "pruned" and t.user_attrs["steps"] == step < 8
        assert t.user_attrs["reason"] == f"pruned at step {step}: loss = {t.intermediate_values[step]:.4g}"
        if pruner == "median":  # the median rule, against the finished trials that came before
            before = [o.intermediate_values[step] for o in finished if o.number < t.number]
            assert t.intermediate_values[step] > statistics.median(before)


def test_ladder_stops_dominated_trials_by_the_rule_and_saves_steps(tmp_path, tiny):
    recipe = tiny(
        train={"steps": None, "eval_every": None},
        ladder={"stages": [4, 8, 12], "keep": 0.34, "min_trials": 2},
        study={"trials": 10},  # TPE draws some layouts again (their results are reused, no stages)
    )
    study = load(search(recipe, out=tmp_path, display="quiet"))
    trials = study.trials
    stopped = [t for t in trials if t.user_attrs.get("status") == "stopped"]
    assert stopped, "the ladder stopped nothing"
    ladder = Ladder([4, 8, 12], keep=0.34, min_trials=2, directions=["maximize", "minimize"])
    for t in trials:
        if "same_as" in t.user_attrs:  # a layout drawn again reuses its result: no stages of its own
            assert LADDER_ATTR not in t.user_attrs and trials[t.user_attrs["same_as"]].state == TrialState.COMPLETE
            continue
        record = t.user_attrs[LADDER_ATTR]
        for stage_text, values in record.items():
            stage = int(stage_text)
            # one worker: the trials before this one had all reached their stages already
            others = [o.user_attrs[LADDER_ATTR][stage_text] for o in trials[: t.number]
                      if stage_text in o.user_attrs.get(LADDER_ATTR, {})]  # fmt: skip
            went_on = str(stage + 1) in record or t.state == TrialState.COMPLETE
            assert went_on == (ladder.goes_on(values, others) or bool(t.user_attrs.get("baseline")))
        if t in stopped:
            assert t.state == TrialState.PRUNED and t.user_attrs["steps"] in (4, 8)
            assert t.user_attrs["reason"].startswith("ladder: stopped after stage")
        else:
            assert t.user_attrs["steps"] == 12
    assert sum(t.user_attrs["steps"] for t in trials) < 12 * len(trials)


def test_rerun_continues_the_study_and_a_different_recipe_is_refused(tmp_path, tiny):
    recipe = tiny(study={"trials": 2})
    first = load(search(recipe, out=tmp_path, display="quiet")).trials
    again = load(search(recipe, out=tmp_path, display="quiet", trials=2)).trials
    assert len(again) == 4
    assert [(t.params, t.values, t.user_attrs) for t in again[:2]] == [
        (t.params, t.values, t.user_attrs) for t in first
    ]
    assert sum(1 for t in again if t.user_attrs.get("baseline")) == 1  # enqueued once
    # joining needs only the run folder: the recipe comes from the study
    joined = load(search(None, out=tmp_path, display="quiet", trials=1)).trials
    assert len(joined) == 5
    with pytest.raises(RecipeError, match=r"was run with a different recipe \(it differs in \[space\]\)"):
        search(tiny(space={"d_model": 32}), out=tmp_path, display="quiet")


def test_a_trial_lost_with_its_worker_is_queued_again(tmp_path, tiny):
    recipe = tiny(study={"trials": 1, "baselines": None})
    study = load(search(recipe, out=tmp_path, display="quiet"))
    # a worker that died mid-trial: its trial stays RUNNING with the worker's (now dead) pid
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    lost = study.ask({"{attn,ssm,conv}[0]": optuna.distributions.CategoricalDistribution(["attn", "ssm", "conv"]),
                      "{attn,ssm,conv}[1]": optuna.distributions.CategoricalDistribution(["attn", "ssm", "conv"])})  # fmt: skip
    lost.set_user_attr("worker", f"{os.uname().nodename}:{dead.stdout.strip()}")
    trials = load(search(recipe, out=tmp_path, display="quiet")).trials
    assert trials[lost.number].state == TrialState.FAIL
    assert trials[-1].params == lost.params and trials[-1].state == TrialState.COMPLETE


def test_same_recipe_and_seed_give_the_same_trials_and_metrics(tmp_path, tiny):
    recipe = tiny(study={"trials": 3})
    runs = [load(search(recipe, out=tmp_path / name, display="quiet")).trials for name in ("a", "b")]
    keys = ("dsl", "metrics", "cost_values", "steps")
    a, b = ([(t.params, t.values, [t.user_attrs[k] for k in keys]) for t in trials] for trials in runs)
    assert a == b
    other = load(search(recipe, out=tmp_path / "c", display="quiet", seed=1)).trials
    assert [t.user_attrs["metrics"] for t in other] != [t.user_attrs["metrics"] for t in runs[0]]


def test_by_default_one_worker_process_per_core_shares_the_study(tmp_path, tiny, monkeypatch):
    """No ``workers`` in the recipe or on the command line: one single-threaded process per core
    (measured faster than one process on every core, benchmarks/README.md)."""
    monkeypatch.setattr(os, "cpu_count", lambda: 2)  # the same two workers on any machine
    recipe = tiny(study={"trials": 3, "workers": None})
    summary = search(recipe, out=tmp_path, display="quiet")
    study = load(summary)
    assert summary["workers"] == 2
    assert len(study.trials) == 3 and all(t.state == TrialState.COMPLETE for t in study.trials)
    workers = {t.user_attrs["worker"] for t in study.trials}
    assert len(workers) == 2 and not any(w.endswith(f":{os.getpid()}") for w in workers)


def test_cli_search_json_lines_then_report(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TOML)
    runner = CliRunner()
    out = runner.invoke(app, ["search", str(path), "--out", str(tmp_path / "run"), "--json", "--trials", "2"])
    assert out.exit_code == 0, out.output
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [x["event"] for x in lines] == ["trial", "trial", "done"]
    assert lines[0]["baseline"] == "2x(attn heads=2)" and lines[0]["status"] == "finished"
    assert lines[-1]["counts"]["finished"] == 2
    report = runner.invoke(app, ["report", str(tmp_path / "run")])
    assert report.exit_code == 0, report.output
    assert (tmp_path / "run" / "report" / "report.html").exists()
    bad = runner.invoke(app, ["search", str(path), "--workers", "0"])
    assert bad.exit_code == 2 and "--workers must be a positive number" in bad.output and "Traceback" not in bad.output
    bad = runner.invoke(app, ["search", str(tmp_path / "nope.toml")])
    assert bad.exit_code == 1 and "nope.toml: error: cannot read the recipe" in bad.output


TOML = """
[space]
text = "2x each({attn heads=2, ssm state=8 head_dim=8 chunk=16, conv})"
d_model = 16
[task]
name = "mqar"
seq_len = 16
pairs = 2
vocab = 32
test_examples = 64
[train]
steps = 8
batch = 8
[study]
objectives = { accuracy = "max", "state@1k" = "min" }
baselines = ["2x(attn heads=2)"]
"""


def test_any_optuna_storage_url_and_the_timeout(tmp_path, tiny):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    summary = search(tiny(study={"trials": 5}), out=tmp_path, storage=url, display="quiet", timeout=0.001)
    assert summary["storage"] == url and not (tmp_path / "study.log").exists()
    # the deadline passed during the first trial: no other trial started
    assert [t.state for t in load(summary).trials] == [TrialState.COMPLETE]
    assert load(summary).user_attrs["recipe"]["study"]["trials"] == 5
