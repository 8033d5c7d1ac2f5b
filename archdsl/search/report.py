"""``archdsl report RUN``: what a search found, from nothing but its study.

Writes into ``RUN/report/``: ``pareto.png`` (matplotlib: every finished trial, the Pareto
front, the baselines marked; for one objective, the value of each trial and the best so far),
``report.html`` (one self-contained page, the figure inlined, no network needed) and
``best/trial-N.arch`` (the best layouts, which ``archdsl check`` accepts).

    >>> report = build_report(optuna.load_study(study_name="quickstart", storage=storage))  # doctest: +SKIP
    >>> files = write_report(report, "runs/quickstart/report")                               # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from archdsl.errors import ArchDSLError
from archdsl.search.trials import TrialRow, best_trials, counts


@dataclass
class Report:
    """A study read back: objective names and directions, every trial, the best ones, the baselines."""

    study_name: str
    objectives: list[str]
    directions: list[str]
    rows: list[TrialRow]
    best: list[TrialRow]
    baselines: list[TrialRow]
    counts: dict[str, int]
    recipe: dict[str, Any] = field(default_factory=dict)

    def top(self, k: int) -> list[TrialRow]:
        """The best trials (the Pareto front, or the best values for one objective), then the
        other finished ones by their first objective."""
        chosen = list(self.best)
        sign = -1.0 if self.directions[0] == "maximize" else 1.0
        rest = sorted(
            (r for r in self.rows if r.status == "finished" and r.values and r not in chosen and r.feasible),
            key=lambda r: sign * r.values[0],
        )
        return (chosen + rest)[:k] if len(self.objectives) == 1 else chosen[: max(k, 1)]


def build_report(study: optuna.Study) -> Report:
    trials = study.get_trials(deepcopy=False)
    rows = [TrialRow.of(t) for t in trials]
    by_number = {r.number: r for r in rows}
    best = [by_number[t.number] for t in best_trials(study, trials)]
    objectives = [o["name"] for o in study.user_attrs.get("objectives", [])] or [
        f"objective {i}" for i in range(len(study.directions))
    ]
    return Report(
        study_name=study.study_name,
        objectives=objectives,
        directions=[d.name.lower() for d in study.directions],
        rows=rows,
        best=best,
        baselines=[r for r in rows if r.baseline and r.status == "finished" and r.values],
        counts=counts(trials),
        recipe=study.user_attrs.get("recipe", {}),
    )


# ---- files ---------------------------------------------------------------------------------


def write_report(report: Report, out: str | Path, *, top: int = 10) -> dict[str, Any]:
    """Write the PNG, the HTML page and the best layouts; return their paths."""
    out = Path(out)
    try:
        (out / "best").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ArchDSLError(f"cannot write the report to '{out}': {err.strerror or err}") from None
    png = out / "pareto.png"
    plot_front(report, png)
    arch = [write_arch(report, row, out / "best") for row in report.top(top) if row.dsl]
    from archdsl.search.html import render_html

    html = out / "report.html"
    html.write_text(render_html(report, png, top=top))
    return {"png": str(png), "html": str(html), "arch": [str(p) for p in arch]}


def write_arch(report: Report, row: TrialRow, folder: Path) -> Path:
    """One best layout as a program file; the comments say where it came from and what it scored."""
    path = folder / f"trial-{row.number}.arch"
    scores = ", ".join(f"{n} = {v:.6g}" for n, v in zip(report.objectives, row.values or []))
    lines = [f"# archdsl search, study '{report.study_name}', trial {row.number}: {scores}"]
    if row.baseline:
        lines.append(f"# baseline: {row.baseline}")
    if row.metrics:
        lines.append("# metrics: " + ", ".join(f"{k} = {v:.6g}" for k, v in row.metrics.items()))
    path.write_text("\n".join(lines) + "\n" + row.dsl.rstrip() + "\n")
    return path


# ---- the figure ------------------------------------------------------------------------------


def plot_front(report: Report, path: Path) -> None:
    """Two or more objectives: the first two against each other, front and baselines marked.
    One objective: each trial's value in order, the best so far, baselines marked."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=110)
    done = [r for r in report.rows if r.status == "finished" and r.values and r.feasible]
    if len(report.objectives) >= 2:
        x_i, y_i = 1, 0
        ax.scatter([r.values[x_i] for r in done], [r.values[y_i] for r in done], s=22, c="#9aa5b1", label="trials")
        front = sorted(report.best, key=lambda r: r.values[x_i])
        ax.plot(
            [r.values[x_i] for r in front], [r.values[y_i] for r in front], "o-", c="#d1495b", ms=6,
            drawstyle="steps-post" if report.directions[y_i] == "maximize" else "default", label="Pareto front",
        )  # fmt: skip
        for r in report.baselines:
            ax.scatter([r.values[x_i]], [r.values[y_i]], marker="*", s=180, c="#1d3557", zorder=5)
            ax.annotate(_short(r.baseline), (r.values[x_i], r.values[y_i]), textcoords="offset points",
                        xytext=(6, 6), fontsize=8, color="#1d3557")  # fmt: skip
        ax.scatter([], [], marker="*", s=120, c="#1d3557", label="baselines")
        xs = [r.values[x_i] for r in done]
        if xs and min(xs) > 0 and max(xs) / min(xs) > 50:
            ax.set_xscale("log")
        ax.set_xlabel(f"{report.objectives[x_i]} ({_arrow(report.directions[x_i], report.objectives[x_i])})")
        ax.set_ylabel(f"{report.objectives[y_i]} ({_arrow(report.directions[y_i], report.objectives[y_i])})")
        title = "Pareto front" + (" (first two objectives)" if len(report.objectives) > 2 else "")
    else:
        ax.scatter([r.number for r in done], [r.values[0] for r in done], s=22, c="#9aa5b1", label="trials")
        best, line = None, []
        better = max if report.directions[0] == "maximize" else min
        for r in sorted(done, key=lambda r: r.number):
            best = r.values[0] if best is None else better(best, r.values[0])
            line.append((r.number, best))
        if line:
            ax.plot(*zip(*line), c="#d1495b", drawstyle="steps-post", label="best so far")
        for r in report.baselines:
            ax.scatter([r.number], [r.values[0]], marker="*", s=180, c="#1d3557", zorder=5)
            ax.annotate(_short(r.baseline), (r.number, r.values[0]), textcoords="offset points", xytext=(6, 6),
                        fontsize=8, color="#1d3557")  # fmt: skip
        ax.set_xlabel("trial")
        ax.set_ylabel(f"{report.objectives[0]} ({_arrow(report.directions[0], report.objectives[0])})")
        title = "Trials"
    ax.set_title(f"{title}: study '{report.study_name}', {len(done)} finished feasible trials")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(path)
    except OSError as err:
        raise ArchDSLError(f"cannot write '{path}': {err.strerror or err}") from None
    finally:
        plt.close(fig)


def _arrow(direction: str, name: str = "") -> str:
    unit = "bytes, " if name.split("@", 1)[0] in ("state", "kv", "act_mem", "train_mem") else ""
    return unit + ("higher is better" if direction == "maximize" else "lower is better")


def _short(text: str | None, width: int = 28) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 3] + "..."
