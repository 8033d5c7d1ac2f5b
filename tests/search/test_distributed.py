"""The rules of a shared study without processes: which trials count toward the target,
where each local worker runs, and how the target grows."""

from __future__ import annotations

import doctest

import optuna
from optuna.trial import TrialState, create_trial

from archdsl.search import distributed
from archdsl.search.distributed import Tally, counts, holds_slot, placements, set_target


def _trial(state, status=None, history=None):
    return create_trial(
        state=state, values=[1.0] if state == TrialState.COMPLETE else None, user_attrs={"status": status} if status else {},
        system_attrs={"retry_history": history} if history else {},
    )  # fmt: skip


def test_which_trials_count_and_which_hold_a_slot():
    cases = [  # (trial, counts, holds a slot) with retries = 2
        (_trial(TrialState.COMPLETE, "finished"), True, True),
        (_trial(TrialState.PRUNED, "infeasible"), True, True),
        (_trial(TrialState.FAIL, "failed"), True, True),  # NaN loss, does not fit, a layer raised
        (_trial(TrialState.FAIL, "surplus"), False, False),
        (_trial(TrialState.FAIL, "lost"), False, False),  # its retry carries the slot on
        (_trial(TrialState.FAIL, "interrupted", [3]), False, False),  # first retry lost too: one more retry
        (_trial(TrialState.FAIL, "lost", [3, 7]), True, True),  # retried twice already: no retry follows
        (_trial(TrialState.RUNNING), False, True),
        (_trial(TrialState.WAITING), False, True),
    ]
    for trial, counted, held in cases:
        assert (counts(trial, 2), holds_slot(trial, 2)) == (counted, held), trial


def test_the_retry_rule_matches_optunas_callback():
    """A lost trial counts exactly when RetryHeartbeatStaleTrialCallback queues no retry."""
    from archdsl.search.storages import Heartbeat

    for history in ([], [0], [0, 1], [0, 1, 2]):
        study = optuna.create_study()
        lost = _trial(TrialState.FAIL, "lost", history)
        study.add_trial(lost)
        Heartbeat(retries=2).callback()(study, study.trials[0])
        queued = len(study.get_trials(states=(TrialState.WAITING,)))
        assert queued == (0 if counts(study.trials[0], 2) else 1), history


def test_placements_give_each_worker_a_gpu_or_a_share_of_the_cores():
    assert placements(4, "cuda", gpus=4, cores=32) == [(f"cuda:{i}", 8) for i in range(4)]
    assert placements(3, "cuda", gpus=2, cores=2) == [("cuda:0", 1), ("cuda:1", 1), ("cuda:0", 1)]
    assert placements(3, "cpu", gpus=0, cores=8) == [("cpu", 2)] * 3
    assert placements(4, "cuda", gpus=0, cores=2) == [("cuda", 1)] * 4  # no GPU seen: train reports it
    assert doctest.testmod(distributed, optionflags=doctest.ELLIPSIS).failed == 0


def test_the_target_grows_by_the_trials_asked_and_never_shrinks():
    study = optuna.create_study()
    assert set_target(study, trials=3, timeout=None, retries=2) == 3
    for _ in range(2):
        study.add_trial(_trial(TrialState.COMPLETE, "finished"))
    study.add_trial(_trial(TrialState.FAIL, "surplus"))
    assert set_target(study, trials=1, timeout=None, retries=2) == 3  # a second launch adds none
    assert set_target(study, trials=5, timeout=60, retries=2) == 7  # 2 count + 5
    tally = Tally.of(study, 2)
    assert (tally.target, tally.counted, tally.free) == (7, 2, 5) and tally.deadline is not None


def test_a_worker_stops_at_the_studys_deadline_and_when_nothing_is_left():
    from archdsl.search.distributed import DEADLINE_ATTR, work
    from archdsl.search.storages import Heartbeat

    study = optuna.create_study()
    set_target(study, trials=3, timeout=60, retries=2)
    ran = []
    study.set_user_attr(DEADLINE_ATTR, 0.0)  # long past
    assert work(study, lambda t: ran.append(t.number) or 1.0, heartbeat=Heartbeat()) == "time"
    assert ran == []  # a worker that joins after the deadline starts nothing
    # the workers `archdsl search` starts (they pass their deadline) start one trial, as optimize(timeout=) does
    assert work(study, lambda t: ran.append(t.number) or 1.0, heartbeat=Heartbeat(), deadline=0.0) == "time"
    assert ran == [0]
    set_target(study, trials=2, timeout=None, retries=2)  # one counts: the target stays 3
    assert work(study, lambda t: ran.append(t.number) or 1.0, heartbeat=Heartbeat()) == "done"
    assert ran == [0, 1, 2]
    assert work(study, lambda t: ran.append(t.number) or 1.0, heartbeat=Heartbeat()) == "done" and len(ran) == 3


def test_every_database_call_of_optunas_cache_layer_is_patient():
    """Optuna wraps an RDBStorage in _CachedStorage, which calls some private methods of its
    backend: each that talks to the database must wait out a restart like the public ones
    (a missed one failed a worker in the database-restart fault test)."""
    import inspect
    import re

    from optuna.storages import _cached_storage

    from archdsl.search.storages import ResilientRDBStorage

    called = set(re.findall(r"_backend\.(\w+)\(", inspect.getsource(_cached_storage)))
    local = {"get_heartbeat_interval", "get_heartbeat_stale_trial_callback"}  # settings, no query
    for name in sorted(called - local):
        assert getattr(ResilientRDBStorage, name) is not getattr(optuna.storages.RDBStorage, name), name
