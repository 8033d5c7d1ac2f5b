"""Search hybrid layouts with Optuna under a compute budget (``archdsl search RECIPE``).

>>> from archdsl.search import load_recipe, search
>>> summary = search(load_recipe("search/quickstart.toml"), display="quiet")  # doctest: +SKIP
>>> summary["best"][0]["dsl"]                                                 # doctest: +SKIP
"""

from archdsl.search.objective import SearchObjective, TrialFailed
from archdsl.search.recipe import Recipe, RecipeError, load_recipe, parse_recipe
from archdsl.search.report import build_report, write_report
from archdsl.search.session import search

__all__ = [
    "Recipe", "RecipeError", "SearchObjective", "TrialFailed", "build_report", "load_recipe", "parse_recipe",
    "search", "write_report",
]  # fmt: skip
