"""Safety bounds on wall-clock time: absurd or huge inputs are handled in milliseconds, not minutes.

Timings on shared CI machines are noise, so these run only when selected: ``pytest -m timing``
(the default run skips them; see ``pytest_collection_modifyitems`` in conftest.py). The unit tests
of the same inputs check what is computed; speed figures live in ``benchmarks/``.
"""

from __future__ import annotations

import time

import pytest

import archdsl
from archdsl.costing import cost
from archdsl.errors import ArchDSLError
from archdsl.syntax import parse_program
from archdsl.syntax.roll import roll
from tests.cost.test_cost import TRILLION
from tests.syntax.test_errors import CASES as BAD_INPUTS
from tests.syntax.test_parser import DEEP, LONG
from tests.syntax.test_printer import LONG_LISTS, irregular_list, rolled_text

pytestmark = pytest.mark.timing


@pytest.fixture(scope="module", autouse=True)
def _warm():
    archdsl.parse("attn mlp ssm")  # imports and the grammar, so that the timings are of the work


def seconds(fn, *args, **kwargs) -> float:
    start = time.perf_counter()
    try:
        fn(*args, **kwargs)
    except ArchDSLError:
        pass
    return time.perf_counter() - start


def test_deep_nesting_is_refused_quickly():
    assert seconds(parse_program, DEEP) < 0.5


def test_a_long_flat_program_parses_quickly():
    assert seconds(parse_program, LONG) < 5.0  # two shared cores


@pytest.mark.parametrize("text, error, message, line, column", BAD_INPUTS)
def test_bad_input_is_refused_before_anything_is_built(text, error, message, line, column):
    assert seconds(archdsl.parse, text, filename="bad.arch") < 0.5


@pytest.mark.parametrize("items, expected", LONG_LISTS)
def test_roll_of_long_lists_is_fast(items, expected):
    assert seconds(rolled_text, items) < 1.0


def test_roll_of_a_long_irregular_list_is_fast():
    assert seconds(roll, irregular_list()) < 1.0


def test_trillion_parameter_spec_costs_instantly():
    spec = archdsl.parse(TRILLION, d_model=16384, vocab=128000)
    assert seconds(cost, spec, seq_len=131072) < 2.0
