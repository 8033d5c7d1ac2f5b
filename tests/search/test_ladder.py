"""The fidelity ladder's rule, against brute-force definitions, and its decision through a real study."""

from __future__ import annotations

import itertools
import math
import random

import optuna
import pytest

from archdsl.search.ladder import LADDER_ATTR, Ladder, dominates, pareto_layers


def _brute_layers(points):
    """Peel fronts by the definition: a point is in layer k when nothing outside layers < k dominates it."""
    layers, left, depth = {}, list(range(len(points))), 0
    while left:
        front = [i for i in left if all(not dominates(points[j], points[i]) for j in left)]
        layers.update({i: depth for i in front})
        left = [i for i in left if i not in front]
        depth += 1
    return [layers[i] for i in range(len(points))]


@pytest.mark.parametrize("seed", range(5))
def test_pareto_layers_match_brute_force(seed):
    rng = random.Random(seed)
    points = [[rng.randint(0, 5), rng.randint(0, 5)] for _ in range(25)]  # ties on purpose
    layers = pareto_layers(points)
    assert layers == _brute_layers(points)
    for i, j in itertools.permutations(range(len(points)), 2):
        if dominates(points[i], points[j]):
            assert layers[i] < layers[j]


def test_stages():
    ladder = Ladder([100, 400, 1600], keep=0.5, min_trials=1, directions=["maximize"])
    assert [ladder.stage_at(s) for s in (100, 200, 400, 1600)] == [0, None, 1, None]


def test_goes_on_keeps_the_best_fraction_in_both_directions():
    # maximise accuracy, minimise state: (0.9, 1) dominates everything, (0.1, 9) nothing
    ladder = Ladder([10, 20], keep=0.25, min_trials=1, directions=["maximize", "minimize"])
    others = [[0.5, 5.0], [0.6, 4.0], [0.4, 6.0]]
    assert ladder.goes_on([0.9, 1.0], others)
    assert not ladder.goes_on([0.1, 9.0], others)
    # a trade-off point is on the front with (0.6, 4): it goes on, as the whole front does
    assert ladder.goes_on([0.3, 1.0], others)


def test_goes_on_fraction_counts_trials_in_better_layers():
    ladder = Ladder([10, 20], keep=0.5, min_trials=1, directions=["minimize"])
    others = [[float(v)] for v in range(1, 10)]  # 1..9; with ours 10 points, 5 go on
    kept = [v for v in range(11) if ladder.goes_on([v - 0.5], others)]
    assert kept == [0, 1, 2, 3, 4, 5]  # values -0.5 .. 4.5 have at most 4 better trials ahead
    assert math.ceil(0.5 * 10) == 5


def test_min_trials_lets_early_trials_through():
    ladder = Ladder([10, 20], keep=0.1, min_trials=4, directions=["minimize"])
    assert ladder.goes_on([100.0], [[1.0], [2.0]])  # 3 trials at the stage: too few to judge
    assert not ladder.goes_on([100.0], [[1.0], [2.0], [3.0]])


def test_decide_reads_other_trials_from_the_study():
    study = optuna.create_study(directions=["maximize", "minimize"])
    for acc in (0.5, 0.6, 0.7, 0.8):
        trial = optuna.trial.create_trial(
            values=[acc, 1.0], user_attrs={LADDER_ATTR: {"0": [acc, 1.0]}}, state=optuna.trial.TrialState.COMPLETE
        )
        study.add_trial(trial)
    ladder = Ladder([10, 20], keep=0.4, min_trials=2, directions=["maximize", "minimize"])
    good, bad = study.ask(), study.ask()
    assert ladder.decide(good, 0, [0.9, 1.0]) is None
    assert good.user_attrs[LADDER_ATTR] == {"0": [0.9, 1.0]}
    reason = ladder.decide(bad, 0, [0.1, 1.0])
    assert reason == "ladder: stopped after stage 1 of 2 (10 steps): not among the best 3 of the 6 trials there"
    baseline = study.ask()
    baseline.set_user_attr("baseline", "4x(ssm)")
    assert ladder.decide(baseline, 0, [0.0, 9.0]) is None  # baselines always run to the end
