"""Shared fixtures: the examples folder is the test matrix. Also the hypothesis profiles and the
``timing`` marker, which the default run skips."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.arch"))


# Hypothesis: on CI (CI=true, as GitHub Actions and most CI services set) the same examples every
# run, a bounded number, no deadline (shared machines stall) and no example database; locally
# random examples as usual. HYPOTHESIS_PROFILE=ci picks the CI profile by hand. Tests' own
# @settings(max_examples=...) stay as they are (each is bounded); the profile sets the rest.
settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=50,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None)
_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if _ci else "dev"))


def pytest_collection_modifyitems(config, items):
    """Tests marked ``timing`` assert wall-clock bounds: noise on shared machines, so they run
    only when a marker expression names them (``pytest -m timing``)."""
    if "timing" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="a wall-clock bound: run with pytest -m timing")
    for item in items:
        if "timing" in item.keywords:
            item.add_marker(skip)


def pytest_generate_tests(metafunc):
    if "example_path" in metafunc.fixturenames:
        metafunc.parametrize("example_path", EXAMPLES, ids=[p.stem for p in EXAMPLES])


# Tests use tiny tensors: one thread avoids two threads waiting on each other on a 2-core machine.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True, scope="session")
def _warm_parser():
    """Build the lark parser and import every layer once, up front (the timing tests, when
    selected, then measure the work and not that start-up)."""
    import archdsl

    archdsl.parse("ssm")


@pytest.fixture(scope="session")
def postgres_url():
    """The throw-away PostgreSQL server that `.ci/run` starts (`.ci/postgres.sh`). Outside CI
    without one the PostgreSQL tests skip, saying how to start it; under CI (``CI`` set) a
    missing or unreachable server fails them, so they can never pass by not running."""
    import os

    url = os.environ.get("ARCHDSL_TEST_POSTGRES_URL")
    in_ci = bool(os.environ.get("CI"))
    how = 'start one with: eval "$(bash .ci/postgres.sh start)"'
    if not url:
        if in_ci:
            pytest.fail(f"CI is set but ARCHDSL_TEST_POSTGRES_URL is not: .ci/run must start PostgreSQL ({how})")
        pytest.skip(f"no PostgreSQL server (ARCHDSL_TEST_POSTGRES_URL unset); {how}")
    try:
        import sqlalchemy

        with sqlalchemy.create_engine(url).connect():
            pass
    except Exception as err:  # noqa: BLE001 - any failure to connect means the same here
        if in_ci:
            pytest.fail(f"PostgreSQL at {url} is unreachable under CI: {err}")
        pytest.skip(f"PostgreSQL at {url} is unreachable ({type(err).__name__}); {how}")
    return url
