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
