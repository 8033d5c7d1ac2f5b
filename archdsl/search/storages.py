"""Storages that survive a dead worker and a restarted database.

Heartbeats. A worker that is killed (``kill -9``, a lost machine, a preempted job) leaves its
trial RUNNING forever unless someone notices. Optuna's answer is the heartbeat: while a trial
runs, a thread of its worker stamps it every ``interval`` seconds; any worker that finds a
running trial silent for ``grace`` seconds fails it and runs ``RetryHeartbeatStaleTrialCallback``,
which queues the same layout again (at most ``retries`` times; the count travels with the
retry in its ``retry_history``). ``RDBStorage`` has heartbeats built in (the server's clock
stamps them). Optuna's journal storage has none, so :class:`HeartbeatJournalStorage` adds
them through the same interface (``BaseHeartbeat``): the stamp is a system attribute of the
trial, one appended log line, and every worker on the machine shares one clock.

Retries. :class:`ResilientRDBStorage` is ``RDBStorage`` whose calls, when the database
cannot be reached (a restart, a dropped connection), wait and try again for up to
``patience`` seconds before giving up with :class:`StorageUnavailable`. Pooled connections
are pinged before use, so the first call after a restart reconnects instead of failing.

    >>> hb = Heartbeat(interval=10, grace=60, retries=2)
    >>> storage = open_heartbeat_storage("runs/x/study.log", hb)      # doctest: +SKIP
"""

from __future__ import annotations

import functools
import logging
import os
import random
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import TrialState

from archdsl.errors import ArchDSLError

BEAT_ATTR = "archdsl:heartbeat"
_log = logging.getLogger("archdsl.search")


class StorageUnavailable(ArchDSLError):
    """The study's database did not answer within the worker's patience."""


@dataclass(frozen=True)
class Heartbeat:
    """How running trials prove they are alive, and how often a dead one is run again."""

    interval: int = 10  # seconds between stamps
    grace: int = 60  # a trial silent this long is failed (then retried)
    retries: int = 2  # times one layout is queued again after its worker died or was stopped
    patience: float = 120.0  # seconds a worker waits for an unreachable database

    def callback(self) -> RetryHeartbeatStaleTrialCallback:
        with warnings.catch_warnings():  # experimental since Optuna 2.8, and the tool for this job
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RetryHeartbeatStaleTrialCallback(max_retry=self.retries)


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """Optuna's journal storage with heartbeats, for the embedded default storage."""

    def __init__(self, backend: Any, heartbeat: Heartbeat):
        super().__init__(backend)
        self.heartbeat = heartbeat
        self._stale_callback = heartbeat.callback()

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            self.set_trial_system_attr(trial_id, BEAT_ATTR, time.time())
        except UpdateFinishedTrialError:
            pass  # another worker already judged this trial dead; its own end will say so

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        """Running trials silent for the grace period, and (a journal file lives on one
        machine) at once those whose worker process here is gone."""
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            started = trial.datetime_start.timestamp() if trial.datetime_start is not None else now
            last = trial.system_attrs.get(BEAT_ATTR, started)  # not stamped yet: count from its start
            # a retry copies the dead trial's "worker" until its new worker writes its own: trust
            # the pid only once the trial has run for a heartbeat interval
            gone = now - started > self.heartbeat.interval and _worker_gone(trial.user_attrs.get("worker"))
            if gone or now - float(last) > self.heartbeat.grace:
                stale.append(trial._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat.interval

    def get_heartbeat_stale_trial_callback(self) -> Callable[..., None] | None:
        return self._stale_callback


def _worker_gone(worker: str | None) -> bool:
    """True when ``worker`` ("host:pid", as the objective stores it) is a process of this
    machine that no longer exists."""
    host, _, pid = str(worker or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, under another user
    return False


def _transient(err: BaseException) -> bool:
    """True when ``err`` (or what caused it) says the database could not be reached."""
    import sqlalchemy.exc as sa

    if isinstance(err, StorageUnavailable):
        return False  # an inner call already waited its full patience
    seen = 0
    while err is not None and seen < 8:
        if isinstance(err, (sa.OperationalError, sa.InterfaceError, sa.DisconnectionError)):
            return True
        if isinstance(err, sa.DBAPIError) and err.connection_invalidated:
            return True
        err = err.__cause__ or err.__context__
        seen += 1
    return False


def _patient(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: ResilientRDBStorage, *args: Any, **kwargs: Any) -> Any:
        start = time.monotonic()
        delay, attempt = 0.25, 0
        while True:
            attempt += 1
            try:
                return method(self, *args, **kwargs)
            except UpdateFinishedTrialError:
                # A write that reached the database just before the connection dropped is
                # refused when repeated; if the trial already has the wanted state, it is done.
                if attempt > 1 and name == "set_trial_state_values":
                    state = kwargs.get("state", args[1] if len(args) > 1 else None)
                    if RDBStorage.get_trial(self, args[0]).state == state:
                        return True
                raise
            except Exception as err:  # only a lost connection is retried; the rest is re-raised
                if not _transient(err):
                    raise
                waited = time.monotonic() - start
                if waited > self.patience:
                    raise StorageUnavailable(
                        f"the study's database did not answer for {waited:.0f}s ({name}): {first_line(err)}"
                    ) from None
                if attempt == 1:
                    _log.warning("archdsl: database unreachable (%s); retrying for up to %.0fs", name, self.patience)
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 5.0)

    return call


def first_line(err: BaseException) -> str:
    cause = err.__cause__ or err
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]


class ResilientRDBStorage(RDBStorage):
    """``RDBStorage`` that waits out an unreachable database (see the module docstring)."""

    patience: float = 120.0


# Every call that talks to the database; each retries on a lost connection.
_CALLS = (
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr", "get_study_id_from_name",
    "get_study_name_from_id", "get_study_directions", "get_study_user_attrs", "get_study_system_attrs",
    "get_all_studies", "create_new_trial", "set_trial_param", "get_trial_id_from_study_id_trial_number",
    "get_trial_number_from_id", "get_trial_param", "set_trial_state_values", "set_trial_intermediate_value",
    "set_trial_user_attr", "set_trial_system_attr", "get_trial", "get_all_trials", "get_n_trials",
    "get_best_trial", "record_heartbeat", "_get_stale_trial_ids",
    # the private calls Optuna's cache layer (_CachedStorage) makes on its backend
    "_create_new_trial", "_get_best_trial_id", "_get_trials", "_set_trial_param",
)  # fmt: skip
for _name in _CALLS:
    setattr(ResilientRDBStorage, _name, _patient(_name, getattr(RDBStorage, _name)))


def open_rdb(url: str, heartbeat: Heartbeat | None = None) -> ResilientRDBStorage:
    """An RDB storage (PostgreSQL, MySQL, SQLite URL) with heartbeats and patient calls."""
    engine: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("postgresql"):
        if url.startswith("postgresql://"):  # SQLAlchemy's default driver is psycopg2; ours is psycopg 3
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise StorageUnavailable(
                "PostgreSQL storage needs the psycopg driver: pip install 'archdsl[postgres]'"
            ) from None
        engine["connect_args"] = {"connect_timeout": 10}
    hb = heartbeat or Heartbeat()
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since 2.9, and what we need
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = _make_rdb(url, engine, hb if heartbeat else None)
    storage.patience = hb.patience
    return storage


def _make_rdb(url: str, engine: dict[str, Any], hb: Heartbeat | None) -> ResilientRDBStorage:
    return ResilientRDBStorage(
        url, engine_kwargs=engine, heartbeat_interval=hb.interval if hb else None,
        grace_period=hb.grace if hb else None, heartbeat_stale_trial_callback=hb.callback() if hb else None,
    )  # fmt: skip


def fail_stale_trials(study: optuna.Study) -> list[int]:
    """Fail the running trials whose heartbeat stopped, saying why, and queue their retries.

    Optuna's own ``fail_stale_trials`` does the same without a reason; this one first stores
    ``status = lost`` and the reason, so a report tells a dead worker from a failing layout.
    Returns the numbers of the trials it failed."""
    storage = study._storage
    if not isinstance(storage, BaseHeartbeat) or storage.get_heartbeat_interval() is None:
        return []
    failed = []
    for trial_id in storage._get_stale_trial_ids(study._study_id):
        try:
            trial = storage.get_trial(trial_id)
            worker = trial.user_attrs.get("worker", "a worker")
            storage.set_trial_user_attr(trial_id, "status", "lost")
            reason = f"lost its worker {worker}: the process is gone or sent no heartbeat for the grace period"
            storage.set_trial_user_attr(trial_id, "reason", reason)
            if storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                failed.append(trial_id)
        except UpdateFinishedTrialError:
            continue  # another worker failed it first, or it finished after all
    callback = storage.get_heartbeat_stale_trial_callback()
    numbers = []
    for trial_id in failed:
        trial = storage.get_trial(trial_id)
        numbers.append(trial.number)
        if callback is not None:
            callback(study, trial)
    return numbers
