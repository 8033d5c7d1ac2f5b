"""The objective's parts that need no training: constraints, objective names, settings checked up front."""

from __future__ import annotations

import pytest

from archdsl.costing.budget import Budget
from archdsl.search.objective import SearchObjective, constraint_value
from archdsl.search.recipe import RecipeError


@pytest.mark.parametrize(
    "limit, value, expected",
    [
        ("params<=10", 5, -0.5),
        ("params<=10", 15, 0.5),  # 50 % over
        ("params<10", 10, 1e-12),  # broken at equality: positive, never 0 (Optuna's "feasible")
        ("params>=10", 5, 0.5),
        ("params>=10", 20, -1.0),
        ("params==10", 10, 0.0),
        ("params==10", 11, 0.1),
        ("kv@1k<=0", 4096, 4096.0),  # a zero limit: the excess itself
    ],
)
def test_constraint_values_are_positive_exactly_when_the_limit_breaks(limit, value, expected):
    parsed = Budget.parse(limit).limits[0]
    assert constraint_value(parsed, value) == pytest.approx(expected)
    assert (constraint_value(parsed, value) > 0) == (not parsed.holds(value))


def test_objective_directions_come_from_the_recipe_the_task_or_cost(tiny):
    objective = SearchObjective(tiny(study={"objectives": ["loss", "accuracy", "params", "train_flops/token@2k"]}))
    assert [(o.name, o.direction, o.kind) for o in objective.objectives] == [
        ("loss", "minimize", "metric"),
        ("accuracy", "maximize", "metric"),
        ("params", "minimize", "cost"),
        ("train_flops/token@2k", "minimize", "cost"),
    ]


@pytest.mark.parametrize(
    "sections, message",
    [
        ({"study": {"objectives": ["acuracy"]}}, r"tiny\.toml: error: \[study\] objectives: unknown objective 'acuracy'; expected a metric of task 'mqar' \(loss, accuracy\) or a cost key \(params, "),
        ({"study": {"objectives": ["state@2q"]}}, r"\[study\] objectives: 'state@2q': '2q' is not a length"),
        ({"train": {"stpes": 3}}, r"tiny\.toml: error: \[train\] train\(\) has no setting 'stpes' \(did you mean 'steps'\?\)"),
        ({"train": {"seed": 3}}, r"\[train\]: 'seed' cannot be set here: each trial's seed comes from \[study\] seed"),
        ({"task": {"pairs": 100}}, r"tiny\.toml: error: \[task\] .*pairs"),
        ({"task": {"name": "mqr"}}, r"\[task\] .*mqr"),
        ({"ladder": {"stages": [5, 12]}, "train": {"steps": None, "eval_every": 4}}, r"\[train\] eval_every = 4 must divide every ladder stage \[5, 12\]"),
    ],
)  # fmt: skip
def test_bad_settings_fail_before_any_trial(tiny, sections, message):
    with pytest.raises(RecipeError, match=message):
        SearchObjective(tiny(**sections))


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # the retry callback's own
def test_a_retried_trial_sets_its_constraints_once(tiny):
    """Optuna's retry callback copies a failed trial's system attributes, constraints included,
    into the trial that runs its layout again; setting them a second time makes Optuna warn on
    every resumed search (and keep the first value), so the objective leaves them be."""
    import warnings

    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from optuna.trial import TrialState

    objective = SearchObjective(tiny(budget={"limits": "params<=10"}))  # every layout is over
    study = optuna.create_study(directions=[o.direction for o in objective.objectives])
    first = study.ask()
    with pytest.raises(optuna.TrialPruned):
        objective(first)
    study.tell(first, state=TrialState.FAIL)  # as a worker lost mid-trial leaves it
    RetryHeartbeatStaleTrialCallback()(study, study.trials[0])
    again = study.ask()
    assert again.number == 1 and again.params == first.params
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(optuna.TrialPruned):
            objective(again)
    assert study.trials[1].constraints == study.trials[0].constraints and study.trials[0].constraints["params<=10"] > 0
