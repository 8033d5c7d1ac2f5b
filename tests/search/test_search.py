"""The search end to end on a tiny recipe: what each trial stores, infeasible layouts never
built, failed trials, pruning, the ladder, resuming, workers and reproducibility."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

import archdsl
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
        assert t.user_attrs["steps"] == 12 and set(t.user_attrs["timing"]) == {"sample_s", "cost_s", "train_s"}
    # the baseline ran first, as written
    assert trials[0].user_attrs["baseline"] == "2x(attn heads=2)"
    assert trials[0].user_attrs["dsl"] == print_spec(archdsl.parse("2x(attn heads=2)", d_model=16, vocab=32), roll=True)
    assert study.user_attrs["recipe"] == recipe.to_toml_dict()


def test_infeasible_layouts_are_recorded_and_never_built(tmp_path, tiny, monkeypatch):
    trained = []
    real_train = archdsl.train.train

    def spy(spec, task, **kwargs):  # calls the real loop; remembers what it was asked to build
        trained.append(spec)
        return real_train(spec, task, **kwargs)

    monkeypatch.setattr("archdsl.train.train", spy)
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
    assert [archdsl.cost(s, seq_len=16, context=1024).kv_bytes for s in trained] == [0] * len(feasible)
    assert sorted(map(str, trained)) == sorted(str(spec_of(t)) for t in feasible)
    assert all(t.constraints == {"kv@1k<=0": 0.0} for t in feasible)


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
