"""Faults of a distributed search, with real worker processes (`archdsl worker`) and the real
PostgreSQL server that `.ci/run` starts: racing workers, a worker killed with SIGKILL in the
middle of a trial, layouts that diverge / do not fit / raise, the database restarted under
the workers, a worker stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from tests.search import workers as w


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plugin")
    w.install_plugin(folder)
    return folder


def _workers(n, url, name, plugin, tmp_path, *extra):
    return [
        w.archdsl("worker", "--storage", url, "--study", name, *extra, plugin=plugin, log=tmp_path / f"worker{i}.log")
        for i in range(n)
    ]


def _logs(tmp_path) -> str:
    return "\n".join(p.read_text() for p in sorted(tmp_path.glob("*.log")))


def test_three_workers_finish_exactly_the_target(postgres_url, plugin, tmp_path):
    r = w.recipe("2x each({attn heads=2, conv, mlp})", trials=9, baselines=["2x(conv)"])
    w.make_study(r, postgres_url)
    procs = _workers(3, postgres_url, r.name, plugin, tmp_path)
    assert w.wait_all(procs, timeout=240) == [0, 0, 0], _logs(tmp_path)

    trials = w.assert_exact(postgres_url, r.name, 9)
    done = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(done) == 9  # nothing in this space fails, so all nine finished
    for t in done:
        assert {"dsl", "cost", "cost_values", "metrics", "status", "timing", "worker", "train"} <= set(t.user_attrs)
        assert t.user_attrs["status"] == "finished" and 0 <= t.values[0] <= 1
    # a trial that lost the race for the last slots is told without running
    for t in trials:
        if t.state.name == "FAIL":
            assert t.user_attrs["status"] == "surplus" and "metrics" not in t.user_attrs
    assert any(t.user_attrs.get("baseline") == "2x(conv)" for t in done)
    # the report and the studies listing read the study back from the database
    listing = subprocess.run(
        [*w.archdsl_command(), "studies", "--storage", postgres_url, "--json"], env=w.env(plugin),
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert f'"study": "{r.name}"' in listing.stdout and '"counted": 9' in listing.stdout


def test_kill9_mid_trial_and_failing_layouts(postgres_url, plugin, tmp_path):
    """SIGKILL one of two workers while it trains: the trial fails after the grace period and
    its retry finishes; a NaN loss, a model that does not fit and a raising layer each end with
    their reason; the study still reaches its target."""
    r = w.recipe(
        "1x({slow ms=40, faultnan, faultraise, " + w.HUGE + "}) 1x(conv)", trials=6, steps=12,
        baselines=["1x(slow ms=40) 1x(conv)", "1x(faultnan) 1x(conv)", "1x(faultraise) 1x(conv)", f"1x({w.HUGE}) 1x(conv)"],
    )  # fmt: skip
    w.make_study(r, postgres_url)
    procs = _workers(2, postgres_url, r.name, plugin, tmp_path)
    victim = w.wait_for(lambda: w.running_slow_trial(postgres_url, r.name), 120, "a slow trial in training")
    pid = int(victim.user_attrs["worker"].rsplit(":", 1)[1])
    os.kill(pid, signal.SIGKILL)
    killed = next(p for p in procs if p.pid == pid)
    survivor = next(p for p in procs if p.pid != pid)
    assert killed.wait(timeout=30) == -signal.SIGKILL
    assert w.wait_all([survivor], timeout=240) == [0], _logs(tmp_path)

    trials = w.assert_exact(postgres_url, r.name, 6)
    dead = next(t for t in trials if t.number == victim.number)
    assert dead.state.name == "FAIL" and dead.user_attrs["status"] == "lost"
    assert "lost its worker" in dead.user_attrs["reason"]
    retry = next(t for t in trials if t.system_attrs.get("retry_history") == [victim.number])
    assert retry.state.name == "COMPLETE" and retry.params == victim.params
    assert retry.user_attrs["retry"] == {"of": victim.number, "attempt": 2}
    why = w.reasons(trials)
    assert "diverged" in why["faultnan conv"]
    assert "faultraise: a deliberate error" in why["faultraise conv"]
    assert "training needs" in why[f"{w.HUGE} conv"]


def _pg_ctl(*args: str) -> None:
    bin_dir, data = os.environ["ARCHDSL_PG_BIN"], os.path.join(os.environ["ARCHDSL_PG_DIR"], "data")
    command = f"'{bin_dir}/pg_ctl' -D '{data}' -w -t 60 {' '.join(args)}"
    if os.getuid() == 0:  # the server runs as the postgres user (postgres.sh)
        subprocess.run(["su", "postgres", "-s", "/bin/bash", "-c", command], check=True, capture_output=True)
    else:
        subprocess.run(["bash", "-c", command], check=True, capture_output=True)


def test_database_restart_under_running_workers(postgres_url, plugin, tmp_path):
    if not os.environ.get("ARCHDSL_PG_DIR"):
        pytest.skip("the server was not started by .ci/postgres.sh (ARCHDSL_PG_DIR unset): cannot restart it")
    r = w.recipe("2x each({slow ms=30, conv})", trials=6, steps=12)
    w.make_study(r, postgres_url)
    procs = _workers(2, postgres_url, r.name, plugin, tmp_path)
    w.wait_for(
        lambda: any(t.state.name == "COMPLETE" for t in w.trials_of(postgres_url, r.name)) and
        w.running_slow_trial(postgres_url, r.name), 120, "a finished trial and one in training",
    )  # fmt: skip
    before = {t.number: t.values for t in w.trials_of(postgres_url, r.name) if t.state.name == "COMPLETE"}
    _pg_ctl("-m", "fast", "restart", "-l", os.path.join(os.environ["ARCHDSL_PG_DIR"], "server.log"))
    assert w.wait_all(procs, timeout=240) == [0, 0], _logs(tmp_path)

    trials = w.assert_exact(postgres_url, r.name, 6)
    after = {t.number: t.values for t in trials if t.state.name == "COMPLETE"}
    assert before.items() <= after.items()  # nothing finished was lost


def test_sigterm_fails_the_running_trial_and_queues_it_again(postgres_url, plugin, tmp_path):
    r = w.recipe("1x(slow ms=200) 1x(conv)", trials=2, steps=40)
    w.make_study(r, postgres_url)
    (proc,) = _workers(1, postgres_url, r.name, plugin, tmp_path)
    victim = w.wait_for(lambda: w.running_slow_trial(postgres_url, r.name), 120, "a trial in training")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, _logs(tmp_path)
    assert "stopped by SIGTERM" in _logs(tmp_path)

    trials = w.trials_of(postgres_url, r.name)
    stopped = next(t for t in trials if t.number == victim.number)
    assert stopped.state.name == "FAIL" and stopped.user_attrs["status"] == "interrupted"
    assert "SIGTERM" in stopped.user_attrs["reason"]
    queued = [t for t in trials if t.state.name == "WAITING"]
    assert [t.system_attrs["retry_history"] for t in queued] == [[victim.number]]
    assert queued[0].params == victim.params
