"""Search spaces: every kind of choice, sampled through Optuna, fixed, matched and counted; the
count checked against a brute-force enumeration of the parameter sets."""

from __future__ import annotations

import itertools

import optuna
import pytest

import archdsl
from archdsl.errors import ArchDSLError, DSLSyntaxError
from archdsl.space import InfeasibleError, SpaceError

optuna.logging.set_verbosity(optuna.logging.WARNING)

HEAD = "model d_model=64 vocab=100\n"


def brute_force(space) -> list[dict]:
    """Every parameter set, by trying every combination of every site's values and keeping
    those the space itself reports as drawn (independent of the space's own enumeration)."""
    sites = space.sites
    values = []
    for site in sites:
        if site.kind == "float":
            n = round((site.high - site.low) / site.step) + 1
            values.append([site.low + i * site.step for i in range(n)])
        else:
            values.append(list(site.options))
    found = set()
    for combo in itertools.product(*values):
        params = dict(zip((s.name for s in sites), combo))
        trial = optuna.trial.FixedTrial(params)
        seen = {}
        real = trial.suggest_categorical, trial.suggest_int, trial.suggest_float

        def record(fn, seen=seen):
            def wrapped(name, *args, **kwargs):
                seen[name] = fn(name, *args, **kwargs)
                return seen[name]

            return wrapped

        trial.suggest_categorical, trial.suggest_int, trial.suggest_float = (record(f) for f in real)
        try:
            space.sample(trial)
        except InfeasibleError:
            pass
        found.add(tuple(sorted(seen.items(), key=lambda kv: kv[0])))
    return [dict(p) for p in found]


SPACES = {
    "value": "attn window={16, 32, 64} mlp",
    "count": "{1, 2, 3}x(ssm mlp)",
    "layer": "{ssm, attn window=16, gdn mlp} mlp",
    "int-range": "ssm state={16..64 step=16}",
    "float-grid": "model norm_eps={0.0001..0.0004 step=0.0001}\nssm",
    "nested": "{ssm, attn window={16, 32}} mlp",
    "named": "let mixer = {ssm, conv}\nmixer mlp mixer",
    "named-in-option": "let w = {16, 32}\n{ssm, attn window=w} attn window=w",
    "named-only-in-option": "let mixer = {ssm, conv}\n{attn, mixer} mlp",
    "each": "2x each({ssm, conv} mlp)",
    "each-count": "{1, 2}x each({ssm, conv})",
    "each-shared": "2x each(shared({attn, gdn}) {ssm, conv})",
    "shared-let": "let g = shared({attn, gdn} mlp)\n2x(ssm g)",
    "parallel": "({attn, gdn} | ssm state={16, 32}) mlp",
    "header": "model d_model={64, 128} vocab=100\nssm",
}


@pytest.mark.parametrize("text", list(SPACES.values()), ids=list(SPACES))
def test_size_equals_brute_force_and_every_layout_fixes(text):
    space = archdsl.parse_space(text if text.startswith("model") else HEAD + text)
    points = brute_force(space)
    assert space.size == len(points)
    listed = list(space._iter(limit=1000, what="list"))
    key = lambda p: repr(sorted(p.items()))
    assert sorted(map(key, (p for p, _ in listed))) == sorted(map(key, points))
    for params in points:
        spec = space.fix(params)
        assert archdsl.parse(str(spec)) == spec  # a sampled layout is plain DSL
        assert space.fix(space.match(spec)) == spec


def test_every_kind_of_choice_samples_through_optuna():
    text = "model d_model=64 vocab=100 norm_eps={1e-6..1e-4 log}\n" + (
        "let mixer = {ssm state={16..64 step=16}, attn window={16, 32}, gdn, moe experts={2..16 log}}\n"
        "let w = {128, 256}\n"
        "{1, 2}x(mixer mlp hidden=w) 2x each({conv, rglru}) attn window=w"
    )
    space = archdsl.parse_space(text)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        spec = space.sample(trial)
        assert space.fix(trial.params) == spec  # the same params give the same Spec
        assert set(trial.params) <= {s.name for s in space.sites}
        if trial.params["mixer"] != "attn":
            assert "mixer.attn.window" not in trial.params  # conditional: drawn only when active
        seen.add(str(spec))
        assert 1e-6 <= spec.model.norm_eps <= 1e-4 and spec.model.norm_eps == trial.params["model.norm_eps"]
        study.tell(trial, 0.0)
    assert len(seen) > 10
    kinds = {site.name: type(site.distribution).__name__ for site in space.sites}
    assert kinds["model.norm_eps"] == "FloatDistribution" and space.sites[0].distribution.log
    assert kinds["mixer.moe.experts"] == "IntDistribution" and kinds["mixer"] == "CategoricalDistribution"


def test_site_names_and_conditions():
    space = archdsl.parse_space(
        "let mixer = {ssm, attn window={64, 256}}\n{2, 4}x(mixer mlp hidden={128, 256}) 2x each({mlp, moe}) attn window={64, 128}"
    )
    names = [(s.name, s.condition) for s in space.sites]
    assert names == [
        ("mixer", None),
        ("mixer.attn.window", "mixer=attn"),
        ("repeat", None),
        ("mlp.hidden", None),
        ("{mlp,moe}[0]", None),
        ("{mlp,moe}[1]", None),
        ("attn.window", None),
    ]


def test_names_do_not_change_when_unrelated_text_changes():
    before = archdsl.parse_space("let m = {ssm, attn}\n{2, 4}x(m mlp) attn window={64, 128}")
    after = archdsl.parse_space(
        "model d_model=256  # a comment\nlet extra = gdn mlp\nlet m = {ssm, attn}\n"
        "conv extra {2, 4}x(mlp m mlp) ssm\n  attn window={64, 128} mlp"
    )
    assert [(s.name, s.options) for s in before.sites] == [(s.name, s.options) for s in after.sites]


def test_per_copy_draws_differ_and_plain_repeat_copies_one_decision():
    one = archdsl.parse_space(HEAD + "4x({ssm, conv})")
    each = archdsl.parse_space(HEAD + "4x each({ssm, conv})")
    assert one.size == 2 and each.size == 16
    spec = each.fix({f"{{ssm,conv}}[{i}]": t for i, t in enumerate(["ssm", "conv", "conv", "ssm"])})
    assert [layer.type for layer in spec.layers()] == ["ssm", "conv", "conv", "ssm"]


def test_shared_inside_each_is_one_set_of_weights():
    space = archdsl.parse_space(HEAD + "3x each(shared(attn) {ssm, conv})")
    spec = space.fix({"{ssm,conv}[0]": "ssm", "{ssm,conv}[1]": "conv", "{ssm,conv}[2]": "ssm"})
    # the same model as one named group used three times (Spec equality ignores group names)
    assert spec == archdsl.parse(HEAD + "let g = shared(attn)\ng ssm g conv g ssm")
    three = archdsl.parse(HEAD + "shared(attn) ssm shared(attn) conv shared(attn) ssm")
    assert archdsl.cost(spec).params < archdsl.cost(three).params


def test_plain_program_is_a_space_of_size_one():
    space = archdsl.parse_space(HEAD + "4x(ssm) attn")
    assert space.size == 1 and space.sites == []
    trial = optuna.trial.FixedTrial({})
    assert space.sample(trial) == archdsl.parse(HEAD + "4x(ssm) attn")


def test_parse_refuses_choices_with_position():
    with pytest.raises(DSLSyntaxError, match="use archdsl.parse_space|read it with archdsl.parse_space") as info:
        archdsl.parse("ssm\nattn window={64, 128}")
    assert (info.value.span.line, info.value.span.column) == (2, 13)


def test_infeasible_combination_names_sites_and_values():
    # each option builds with the others' first options; heads=4 with kv_heads=8 does not
    space = archdsl.parse_space(HEAD + "ssm attn heads={8, 4} kv_heads={2, 8}")
    assert space.fix({"attn.heads": 4, "attn.kv_heads": 2}).layers()[1].params.heads == 4
    with pytest.raises(InfeasibleError) as info:
        space.fix({"attn.heads": 4, "attn.kv_heads": 8})
    message = str(info.value)
    assert "attn.heads=4" in message and "attn.kv_heads=8" in message
    assert info.value.sites == ("attn.heads", "attn.kv_heads")
    listed = list(space.layouts())
    assert [layout.error is not None for layout in listed] == [False, False, False, True]
    assert "kv_heads" in listed[-1].error and listed[-1].params == {"attn.heads": 4, "attn.kv_heads": 8}
    assert len(list(space.layouts(budget="params<=10M"))) == 3  # under a budget: skipped
    assert isinstance(info.value, ArchDSLError)


def test_fix_reports_missing_unknown_and_bad_values():
    space = archdsl.parse_space(HEAD + "let mixer = {ssm, attn}\nmixer")
    with pytest.raises(SpaceError, match="no value for the choice site 'mixer'"):
        space.fix({})
    with pytest.raises(SpaceError, match="did you mean 'mixer'"):
        space.fix({"mixr": "ssm"})
    with pytest.raises(SpaceError, match="'gdn' is not an option|gdn is not an option"):
        space.fix({"mixer": "gdn"})


def test_match_refuses_a_layout_outside_the_space():
    space = archdsl.parse_space(HEAD + "{2, 4}x(ssm)")
    assert space.match(archdsl.parse(HEAD + "ssm ssm ssm ssm")) == {"repeat": 4}
    with pytest.raises(SpaceError, match="not a point of the search space"):
        space.match(archdsl.parse(HEAD + "3x(ssm)"))


def test_sample_with_a_budget_refuses_a_layout_over_it():
    from archdsl.space import OverBudgetError

    space = archdsl.parse_space(HEAD + "{1, 8}x(attn mlp)")
    small = space.sample(optuna.trial.FixedTrial({"repeat": 1}), budget="params<=100K")
    assert archdsl.cost(small).params <= 100_000
    with pytest.raises(OverBudgetError) as info:
        space.sample(optuna.trial.FixedTrial({"repeat": 8}), budget=archdsl.Budget.parse("params<=100K"))
    assert info.value.params == {"repeat": 8}
    assert not info.value.check.ok and "params<=100K" in str(info.value)
    assert info.value.spec == space.fix({"repeat": 8})


def test_layouts_under_a_budget_are_those_the_budget_allows():
    from archdsl.space.enumerate import Tally

    space = archdsl.parse_space(HEAD + "{1, 2, 4}x({ssm, attn, conv} mlp hidden={64, 256})")
    budget = archdsl.Budget.parse("params<=150K state@4k<=256KiB")
    everything = list(space.layouts())
    assert len(everything) == space.size == 18
    expected = [layout.params for layout in everything if budget.check(layout.spec).ok]
    tally = Tally()
    within = list(space.layouts(budget, tally=tally))
    assert [layout.params for layout in within] == expected
    assert 0 < len(expected) < 18 and (tally.total, tally.within, tally.over) == (18, len(expected), 18 - len(expected))
    for layout in within:
        assert layout.cost.params == archdsl.cost(space.fix(layout.params)).params


def test_size_is_exact_for_spaces_too_large_to_list():
    assert archdsl.parse_space(HEAD + "100x each({ssm, attn, conv})").size == 3**100
    assert archdsl.parse_space(HEAD + "{1..300}x each({ssm, conv})").size == sum(2**c for c in range(1, 301))
    assert archdsl.parse_space(HEAD + "ssm state={16..1024 step=16} attn window={1..4096}").size == 64 * 4096
    assert archdsl.parse_space("model norm_eps={1e-6..1e-4 log}\nssm").size == float("inf")
    with pytest.raises(SpaceError, match=f"cannot list {2**100:,} layouts: the limit is 100,000"):
        next(iter(archdsl.parse_space(HEAD + "100x each({ssm, conv})").layouts()))


def test_keyword_settings_override_the_header_and_its_choices():
    space = archdsl.parse_space("model d_model={64, 128} vocab=100\n{ssm, conv}", d_model=64)
    assert [s.name for s in space.sites] == ["{ssm,conv}"] and space.size == 2
    assert space.fix({"{ssm,conv}": "ssm"}).model.d_model == 64
    assert archdsl.parse_space(str(space)) == space
