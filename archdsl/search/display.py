"""What a running search shows: a live rich panel, JSON lines, or nothing.

The monitor reads only the study's storage, so it shows the same thing whether the trials run
in this process or in worker processes (or on other machines sharing the storage).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, TextIO

import optuna
from optuna.trial import TrialState
from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from archdsl.search.trials import SHOWN, TrialRow, best_trials, counts, format_value, is_done, layout_line

_COLOURS = {"running": "cyan", "finished": "green", "pruned": "yellow", "infeasible": "magenta", "failed": "red"}


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(0, int(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Monitor:
    """Polls the study (at most every ``interval`` seconds) and renders or prints it.

    ``first`` is the number of trials the study held before this run, ``planned`` how many
    this run adds; ``deadline`` is the wall-clock time after which no trial starts.
    """

    def __init__(
        self,
        study: optuna.Study,
        *,
        objectives: list[str],
        first: int,
        planned: int,
        workers: int,
        deadline: float | None,
        interval: float = 1.0,
    ):
        self.study = study
        self.objectives = objectives
        self.first = first
        self.planned = planned
        self.workers = workers
        self.deadline = deadline
        self.interval = interval
        self.started = time.time()
        self._trials: list[Any] = []
        self._polled = 0.0
        self._emitted: set[int] = set()
        self._lock = threading.Lock()

    def poll(self, force: bool = False) -> list[Any]:
        with self._lock:
            now = time.monotonic()
            if force or now - self._polled >= self.interval:
                self._trials = self.study.get_trials(deepcopy=False)
                self._polled = now
            return self._trials

    # ---- figures -------------------------------------------------------------------------

    def run_trials(self) -> list[Any]:
        return [t for t in self.poll() if t.number >= self.first and t.state != TrialState.WAITING]

    def time_left(self) -> float | None:
        """Until the deadline, or the planned trials at the mean pace so far, whichever is sooner."""
        now = time.time()
        done = [t for t in self.run_trials() if is_done(t)]
        estimate = None
        if done:
            elapsed = now - self.started
            remaining = max(0, self.planned - len(done))
            estimate = elapsed / len(done) * remaining
        if self.deadline is not None:
            left = max(0.0, self.deadline - now)
            estimate = left if estimate is None else min(estimate, left)
        return estimate

    # ---- rich panel --------------------------------------------------------------------------

    def __rich__(self) -> Panel:
        trials = self.poll()
        mine = [t for t in trials if t.number >= self.first and t.state != TrialState.WAITING]
        tally = counts(trials)
        head = Text()
        head.append(f"trial {min(len(mine), self.planned)} of {self.planned}", style="bold")
        head.append(f"   (study: {len(trials)} trials, {self.workers} worker{'s' if self.workers > 1 else ''})   ")
        head.append(f"elapsed {format_duration(time.time() - self.started)}, left ~{format_duration(self.time_left())}")
        tallies = Text("   ".join(f"{k} {tally[k]}" for k in SHOWN))
        for k in SHOWN:
            tallies.highlight_words([f"{k} {tally[k]}"], style=_COLOURS[k])
        best = best_trials(self.study, trials)
        table = Table(box=None, show_header=True, pad_edge=False, header_style="bold")
        table.add_column("#", justify="right")
        for name in self.objectives:
            table.add_column(name, justify="right")
        table.add_column("best so far" if len(self.objectives) == 1 else "Pareto front so far")
        for t in best[:5]:
            mark = " (baseline)" if t.user_attrs.get("baseline") else ""
            table.add_row(
                str(t.number),
                *(format_value(n, v) for n, v in zip(self.objectives, t.values)),
                escape(layout_line(t.user_attrs.get("dsl")) + mark),
            )
        if len(best) > 5:
            table.add_row("", *([""] * len(self.objectives)), f"... and {len(best) - 5} more")
        body = [head, tallies, table if best else Text("no finished feasible trial yet", style="dim")]
        # sized to its content: a pipe or CI log has no width to fill (its console is unbounded)
        return Panel(Group(*body), title=f"archdsl search: {self.study.study_name}", border_style="blue", expand=False)

    # ---- JSON lines ----------------------------------------------------------------------------

    def emit_finished(self, out: TextIO | None = None) -> None:
        """One JSON line per trial of this run that ended since the last call."""
        out = out or sys.stdout  # looked up now: the caller may have redirected it
        for t in self.poll(force=True):
            if t.number >= self.first and is_done(t) and t.number not in self._emitted:
                self._emitted.add(t.number)
                out.write(json.dumps({"event": "trial", **TrialRow.of(t).to_dict()}) + "\n")
        out.flush()

    def summary(self) -> dict[str, Any]:
        trials = self.poll(force=True)
        best = best_trials(self.study, trials)
        return {
            "event": "done",
            "study": self.study.study_name,
            "trials": len(trials),
            "this_run": len([t for t in trials if t.number >= self.first]),
            "counts": counts(trials),
            "objectives": self.objectives,
            "workers": self.workers,
            "best": [{"trial": t.number, "values": list(t.values), "dsl": t.user_attrs.get("dsl")} for t in best],
            "wall_s": round(time.time() - self.started, 3),
        }
