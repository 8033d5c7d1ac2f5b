"""The same faults on the embedded default storage (the run folder's journal file), with
`archdsl search --workers 2` on one machine; and the exact count under races, with threads."""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import optuna
import pytest

from archdsl.search.distributed import SURPLUS, Tally, set_target, work
from archdsl.search.storages import Heartbeat
from archdsl.search.study import open_storage
from tests.search import workers as w


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plugin")
    w.install_plugin(folder)
    return folder


RECIPE = """
[space]
text = "1x({{slow ms=40, faultnan, faultraise, {huge}}}) 1x(conv)"
d_model = 16

[task]
name = "mqar"
seq_len = 16
pairs = 2
vocab = 32
test_examples = 16

[train]
steps = 12
batch = 4
eval_every = 12

[study]
name = "embedded"
objectives = ["accuracy"]
trials = 6
sampler = "random"
pruner = "none"
heartbeat = 1
grace = 4
baselines = ["1x(slow ms=40) 1x(conv)", "1x(faultnan) 1x(conv)", "1x(faultraise) 1x(conv)", "1x({huge}) 1x(conv)"]
"""


def test_two_local_workers_survive_a_kill9_and_failing_layouts(plugin, tmp_path):
    (tmp_path / "faults.toml").write_text(RECIPE.format(huge=w.HUGE))
    run = tmp_path / "run"
    parent = w.archdsl(
        "search", str(tmp_path / "faults.toml"), "--out", str(run), "--workers", "2", "--quiet",
        plugin=plugin, log=tmp_path / "search.log",
    )  # fmt: skip
    journal = str(run / "study.log")
    w.wait_for(lambda: os.path.exists(journal), 120, "the study's journal")
    victim = w.wait_for(lambda: w.running_slow_trial(journal, "embedded"), 120, "a slow trial in training")
    os.kill(int(victim.user_attrs["worker"].rsplit(":", 1)[1]), signal.SIGKILL)
    code = w.wait_all([parent], timeout=240)[0]
    log = (tmp_path / "search.log").read_text()
    # the parent says that one worker died; the other finished the study
    assert code == 1 and "1 worker(s) exited with an error (code -9)" in log, log

    trials = w.assert_exact(journal, "embedded", 6)
    dead = next(t for t in trials if t.number == victim.number)
    assert dead.state.name == "FAIL" and dead.user_attrs["status"] == "lost"
    retry = next(t for t in trials if t.system_attrs.get("retry_history") == [victim.number])
    assert retry.state.name == "COMPLETE" and retry.params == victim.params
    why = w.reasons(trials)
    assert "diverged" in why["faultnan conv"]
    assert "faultraise: a deliberate error" in why["faultraise conv"]
    assert "training needs" in why[f"{w.HUGE} conv"]


def test_racing_workers_count_exactly(tmp_path):
    """Eight threads, each a worker with its own study object, on one journal file, told to
    stop at 24 trials: exactly 24 count. Trials that lost the race are told surplus before
    running; Optuna's MaxTrialsCallback, which checks after each trial, would overshoot here."""
    journal = str(tmp_path / "study.log")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name="race", storage=open_storage(journal))
    set_target(study, trials=24, timeout=None, retries=2)
    heartbeat = Heartbeat(interval=1, grace=30, retries=2)
    ran, ended = [], []

    def objective(trial):
        ran.append(trial.number)
        time.sleep(random.random() * 0.02)  # unequal trials interleave the workers
        return trial.suggest_float("x", 0, 1)

    def worker():
        mine = optuna.load_study(study_name="race", storage=open_storage(journal, heartbeat))
        ended.append(work(mine, objective, heartbeat=heartbeat, poll=0.05))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert ended == ["done"] * 8
    trials = w.assert_exact(journal, "race", 24)
    assert sorted(ran) == sorted(t.number for t in trials if t.state.name == "COMPLETE")  # surplus never ran
    for t in trials:
        assert t.state.name == "COMPLETE" or t.user_attrs["status"] == SURPLUS
    assert Tally.of(study, 2).counted == 24
