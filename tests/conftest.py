"""Shared fixtures: the examples folder is the test matrix."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.arch"))


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
    """Build the lark parser and import every layer once, so that the few tests with a safety
    bound on time ("rejected in milliseconds") do not pay for that start-up."""
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
