"""Recipes: the shipped ones validate; each kind of mistake names the file, the key and the form."""

from __future__ import annotations

from pathlib import Path

import pytest

from archdsl.search.recipe import RecipeError, load_recipe, parse_duration, parse_recipe

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "search").glob("*.toml"))

MINIMAL = """
[space]
text = "{2, 4}x(ssm)"
[task]
name = "mqar"
[study]
objectives = ["accuracy"]
"""


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_shipped_recipes_are_valid(path):
    recipe = load_recipe(path)
    assert recipe.objectives()
    assert recipe.space_text()[0].strip()


def test_minimal_recipe_defaults():
    recipe = parse_recipe(MINIMAL, filename="r.toml")
    assert recipe.name == "r"  # the file's stem
    assert recipe.study.sampler == "tpe" and recipe.study.trials == 20 and recipe.study.workers is None
    assert [o.name for o in recipe.objectives()] == ["accuracy"] and recipe.objectives()[0].direction is None
    assert recipe.budget.limits == "" and recipe.ladder is None


def test_objectives_as_a_table_keep_order_and_directions():
    text = MINIMAL.replace('objectives = ["accuracy"]', 'objectives = { accuracy = "max", "state@4k" = "minimize" }')
    recipe = parse_recipe(text, filename="r.toml")
    assert [(o.name, o.direction) for o in recipe.objectives()] == [("accuracy", "maximize"), ("state@4k", "minimize")]


def test_task_and_train_settings_pass_through():
    text = MINIMAL + "[train]\nsteps = 50\nlr = 0.003\n"
    recipe = parse_recipe(text.replace('name = "mqar"', 'name = "mqar"\npairs = 4'), filename="r.toml")
    assert recipe.task.settings() == {"pairs": 4}
    assert recipe.train.settings() == {"lr": 0.003, "steps": 50}


def test_space_file_is_read_relative_to_the_recipe_and_inlined(tmp_path):
    (tmp_path / "space.arch").write_text("{ssm, attn}\n")
    path = tmp_path / "r.toml"
    path.write_text(MINIMAL.replace('text = "{2, 4}x(ssm)"', 'file = "space.arch"'))
    recipe = load_recipe(path)
    assert recipe.space_text() == ("{ssm, attn}\n", str(tmp_path / "space.arch"))
    assert recipe.to_toml_dict()["space"] == {"text": "{ssm, attn}\n"}


@pytest.mark.parametrize(
    "change, message",
    [
        pytest.param(
            ("[study]", "[study]\nstpes = 3"),
            r"r\.toml: error: invalid recipe: \[study\] stpes: unknown key; expected one of: name, objectives",
            id="unknown-key",
        ),
        pytest.param(
            ('name = "mqar"', ""), r"\[task\] name: missing; expected a task of `archdsl tasks`", id="missing-key"
        ),
        pytest.param(
            ('objectives = ["accuracy"]', 'objectives = ["accuracy"]\nsampler = "tpx"'),
            r"\[study\] sampler: Input should be 'tpe', 'nsgaii', 'gp' or 'random' \(got 'tpx'\)",
            id="bad-sampler",
        ),
        pytest.param(
            ('objectives = ["accuracy"]', 'objectives = ["accuracy"]\ntrials = 0'),
            r"\[study\] trials: Input should be greater than 0 \(got 0\); expected trials to add",
            id="zero-trials",
        ),
        pytest.param(
            ('objectives = ["accuracy"]', 'objectives = {accuracy = "up"}'),
            r"direction of 'accuracy' must be 'max' or 'min'",
            id="bad-direction",
        ),
        pytest.param(
            ('objectives = ["accuracy"]', "objectives = []"),
            r"\[study\] objectives: expected one or more objectives",
            id="no-objectives",
        ),
        pytest.param(
            ('objectives = ["accuracy"]', 'objectives = ["accuracy"]\ntimeout = "3 weeks"'),
            r"\[study\] timeout: expected a duration such as 90, '90s', '30m' or '2h'",
            id="bad-timeout",
        ),
        pytest.param(
            ('text = "{2, 4}x(ssm)"', 'text = "ssm"\nfile = "x.arch"'),
            r"\[space\]: give exactly one of text",
            id="two-sources",
        ),
        pytest.param(
            ("[study]", "[ladder]\nstages = [100, 50]\n[study]"),
            r"\[ladder\] stages: expected two or more increasing positive step counts",
            id="ladder-order",
        ),
        pytest.param(
            ("[study]", "[train]\nsteps = 10\n[ladder]\nstages = [5, 20]\n[study]"),
            r"\[train\] steps = 10 differs from the ladder's last stage 20",
            id="ladder-steps",
        ),
        pytest.param(
            ("[study]", "[ladder]\nstages = [5, 20]\nkeep = 1.5\n[study]"),
            r"\[ladder\] keep: Input should be less than or equal to 1",
            id="ladder-keep",
        ),
    ],
)
def test_malformed_recipe_names_file_key_and_form(change, message):
    old, new = change
    with pytest.raises(RecipeError, match=message):
        parse_recipe(MINIMAL.replace(old, new, 1), filename="r.toml")


def test_toml_syntax_error_points_at_line_and_column():
    with pytest.raises(RecipeError) as err:
        parse_recipe("[space]\ntext = = 1\n", filename="bad.toml")
    text = str(err.value)
    assert text.startswith("bad.toml:2:8: error: not valid TOML: Invalid value")
    assert text.splitlines()[1:] == ["    text = = 1", "           ^"]


def test_unreadable_recipe_and_space_file(tmp_path):
    with pytest.raises(RecipeError, match=r"missing\.toml: error: cannot read the recipe"):
        load_recipe(tmp_path / "missing.toml")
    path = tmp_path / "r.toml"
    path.write_text(MINIMAL.replace('text = "{2, 4}x(ssm)"', 'file = "nope.arch"'))
    with pytest.raises(RecipeError, match=r"\[space\] file: cannot read '.*nope\.arch'"):
        load_recipe(path).space_text()


def test_durations():
    assert [parse_duration(v) for v in (90, "90s", "30m", "2h", "1.5h", None)] == [90, 90, 1800, 7200, 5400, None]
    for bad in ("soon", "-5m", 0, True):
        with pytest.raises(RecipeError, match="duration"):
            parse_duration(bad)
