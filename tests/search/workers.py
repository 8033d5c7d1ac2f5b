"""Helpers of the fault tests: real worker processes, a study made the way `archdsl search`
makes it, and three plug-in layers (through the real ``archdsl.layers`` entry point, so that
spawned workers load them too) that misbehave on purpose:

    slow ms=40     sleeps in every forward: a trial lasts long enough to be killed mid-way
    faultnan       returns NaN: the training loss diverges
    faultraise     raises RuntimeError in forward: a layer with a bug
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import optuna

from archdsl.search.distributed import Tally, counts, set_target
from archdsl.search.objective import SearchObjective
from archdsl.search.recipe import recipe_from_dict
from archdsl.search.runner import plan_run, prepare_study
from archdsl.search.study import open_storage

ROOT = Path(__file__).resolve().parents[2]

PLUGIN = textwrap.dedent(
    """
    import time

    import torch
    from pydantic import Field
    from torch import nn

    from archdsl.costing.value import Cost
    from archdsl.layers.base import LayerParams


    class SlowParams(LayerParams):
        ms: int = Field(40, description="milliseconds slept in every forward")


    class _Base(nn.Module):
        Params = LayerParams

        def __init__(self, params, model):
            super().__init__()
            self.params = params
            self.scale = nn.Parameter(torch.ones(()))

        def init_state(self, batch, *, max_len, device, dtype):
            return None

        def step(self, x, state):
            return self.forward(x[:, None])[:, 0], state

        @classmethod
        def cost(cls, params, model, ctx):
            return Cost(params=1, scan_flops=1.0)


    class Slow(_Base):
        name = "slow"
        description = "multiplies by a learned scalar after sleeping (fault tests)"
        Params = SlowParams

        def forward(self, x, *, reference=False):
            time.sleep(self.params.ms / 1000)
            return x * self.scale


    class FaultNaN(_Base):
        name = "faultnan"
        description = "returns NaN (fault tests)"

        def forward(self, x, *, reference=False):
            return x * self.scale * float("nan")


    class FaultRaise(_Base):
        name = "faultraise"
        description = "raises in forward (fault tests)"

        def forward(self, x, *, reference=False):
            raise RuntimeError("faultraise: a deliberate error in forward")
    """
)
LAYERS = {"slow": "Slow", "faultnan": "FaultNaN", "faultraise": "FaultRaise"}

# A layout that cannot fit: 3 * 16 * 2e9 weights, 96e9 parameters, ~1.5 TB to train.
HUGE = "mlp hidden=2000000000"


def install_plugin(folder: Path) -> None:
    """Write the plug-in package and its entry points into ``folder`` and register the layers
    in this process too (the study is made here; the workers find them by entry point)."""
    import importlib

    from archdsl.layers import registry

    (folder / "archdsl_fault_layers.py").write_text(PLUGIN)
    dist = folder / "archdsl_fault_layers-1.0.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: archdsl-fault-layers\nVersion: 1.0\n")
    lines = [f"{name} = archdsl_fault_layers:{cls}" for name, cls in LAYERS.items()]
    (dist / "entry_points.txt").write_text("[archdsl.layers]\n" + "\n".join(lines) + "\n")
    sys.path.insert(0, str(folder))
    module = importlib.import_module("archdsl_fault_layers")
    registry.list_layers()  # load the built-in layers first
    for name, cls in LAYERS.items():
        if not registry.is_layer(name):
            registry.register_layer(getattr(module, cls))


def recipe(space: str, *, trials: int, baselines=(), steps: int = 8, name: str | None = None, **study):
    """A tiny recipe: d_model 16, MQAR at 16 tokens, ``steps`` steps, heartbeat 1 s, grace 4 s."""
    data = {
        "space": {"text": space, "d_model": 16},
        "task": {"name": "mqar", "seq_len": 16, "pairs": 2, "vocab": 32, "test_examples": 16},
        "train": {"steps": steps, "batch": 4, "eval_every": steps, "lr": 3e-3},
        "study": {
            "name": name or f"faults-{uuid.uuid4().hex[:8]}", "objectives": ["accuracy"], "trials": trials,
            "sampler": "random", "pruner": "none", "baselines": list(baselines), "heartbeat": 1, "grace": 4,
            "retries": 2, **study,
        },
    }  # fmt: skip
    return recipe_from_dict(data, filename="faults.toml")


def make_study(r, storage: str) -> optuna.Study:
    """Create the study as `archdsl search` does: recipe stored, baselines queued, target set."""
    run = plan_run(r, storage=storage)
    study = prepare_study(run, SearchObjective(run.recipe))
    set_target(study, trials=r.study.trials, timeout=None, retries=r.study.retries)
    return study


def env(plugin: Path) -> dict[str, str]:
    paths = [str(plugin), str(ROOT), os.environ.get("PYTHONPATH", "")]
    # one torch thread per process: on 2 cores, OpenMP threads of several workers spin on each other
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), "OMP_NUM_THREADS": "1"}


def archdsl_command() -> list[str]:
    """The ``archdsl`` console script's entry, run by this interpreter."""
    return [sys.executable, "-c", "from archdsl.cli import main; main()"]


def archdsl(*args: str, plugin: Path, log: Path) -> subprocess.Popen:
    """``archdsl ARGS`` as a real process, its output in ``log``."""
    with open(log, "w") as out:  # the child keeps its own copy of the file descriptor
        return subprocess.Popen([*archdsl_command(), *args], env=env(plugin), stdout=out, stderr=subprocess.STDOUT)


def wait_all(procs, timeout: float) -> list[int]:
    end = time.monotonic() + timeout
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(timeout=max(1.0, end - time.monotonic())))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise AssertionError(f"workers still running after {timeout:.0f}s") from None
    return codes


def wait_for(predicate, timeout: float, what: str, every: float = 0.1):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = predicate()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def trials_of(storage: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=open_storage(storage)).get_trials()


def running_slow_trial(storage: str, name: str):
    """A trial of a slow layout that is training now (its cost is stored), with its worker pid."""
    for t in trials_of(storage, name):
        if t.state.name == "RUNNING" and "slow" in (t.user_attrs.get("dsl") or "") and "timing" in t.user_attrs:
            return t
    return None


def assert_exact(storage: str, name: str, target: int, retries: int = 2) -> list[optuna.trial.FrozenTrial]:
    """Exactly ``target`` trials count, numbers are unique and dense, nothing runs or waits."""
    trials = trials_of(storage, name)
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(trials))), numbers
    assert sum(counts(t, retries) for t in trials) == target, [
        (t.number, t.state.name, t.user_attrs.get("status")) for t in trials
    ]
    study = optuna.load_study(study_name=name, storage=open_storage(storage))
    tally = Tally.of(study, retries)
    assert (tally.counted, tally.running) == (target, 0)
    return trials


def reasons(trials) -> dict[str, str]:
    """Layout (one line, no header) -> reason, for the trials that failed with the objective's verdict."""
    from archdsl.search.trials import layout_line

    return {
        layout_line(t.user_attrs.get("dsl")): t.user_attrs.get("reason", "")
        for t in trials
        if t.state.name == "FAIL" and t.user_attrs.get("status") == "failed"
    }
