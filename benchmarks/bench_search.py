"""The search's own figures (the machine is shared: ratios inside one run are what count).

    python benchmarks/bench_search.py quickstart            # wall time, machinery share of it
    python benchmarks/bench_search.py ladder [--seeds 2]    # ladder vs every trial to the last stage
    python benchmarks/bench_search.py recall [--seeds 3] [--trials N]   # TPE vs random; hybrid vs baselines
    python benchmarks/bench_search.py threads [--rounds 3]          # 1 process x 2 threads vs 2 x 1
    python benchmarks/bench_search.py recall --trials 20 --stages 100,200,400 --keep runs/recall-bench   # shorter

Each case runs real searches (``archdsl.search.search``) into a temporary folder, one after
the other in this process, alternating the compared settings seed by seed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import optuna

from archdsl.search import load_recipe, search
from archdsl.search.distributed import counts as counts_toward_target
from archdsl.search.ladder import dominates
from archdsl.search.recipe import recipe_from_dict
from archdsl.search.study import open_storage
from archdsl.search.trials import best_trials, counts, layout_line

MIXERS = {"attn", "ssm", "gdn", "conv", "mamba", "rglru"}


def hypervolume_2d(points, reference):
    """Area dominated by ``points`` (both coordinates minimised) up to ``reference``; exact sweep."""
    pts = sorted(p for p in points if p[0] < reference[0] and p[1] < reference[1])
    front, best_y = [], math.inf
    for x, y in pts:  # by x; keep the points that improve y: the staircase
        if y < best_y:
            front.append((x, y))
            best_y = y
    edges = [x for x, _ in front[1:]] + [reference[0]]
    return sum((x_next - x) * (reference[1] - y) for (x, y), x_next in zip(front, edges))


def run(recipe, out, **kwargs):
    started = time.perf_counter()
    summary = search(recipe, out=out, display="quiet", **kwargs)
    wall = time.perf_counter() - started
    study = optuna.load_study(study_name=summary["study"], storage=open_storage(summary["storage"]))
    return study, wall


def front_points(study, trials=None):
    """The front of the feasible finished trials (all, or ``trials``) as minimised (-accuracy, cost) points."""
    signs = [-1.0 if d == optuna.study.StudyDirection.MAXIMIZE else 1.0 for d in study.directions]
    return [tuple(s * v for s, v in zip(signs, t.values)) for t in best_trials(study, trials)]


def first_counted(study, n, retries):
    """The study's first ``n`` trials that count toward a target (in trial order, so a study
    that was continued past ``n`` is compared at the same N as the others)."""
    out = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if counts_toward_target(t, retries):
            out.append(t)
            if len(out) == n:
                break
    return out


def machinery(study, wall, workers):
    """Training time, steps, and the share of the time that is not training: inside trials
    (sampling, cost, storage writes, ladder decisions) and over the whole run (also process
    start, imports, the display, and a worker idling at the end while the other finishes)."""
    trials = study.get_trials(deepcopy=False)
    train = sum(t.user_attrs.get("timing", {}).get("train_s", 0.0) for t in trials)
    # steps trained: a trial that reused an earlier trial's result (same_as) trained none
    steps = sum(t.user_attrs.get("steps", 0) or 0 for t in trials if "same_as" not in t.user_attrs)
    in_trials = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials if t.datetime_complete)
    return {
        "train_s": round(train, 1),
        "steps": steps,
        "in_trial_share": round(1 - train / in_trials, 4) if in_trials else None,
        "run_share": round(1 - train / (workers * wall), 4),
    }


def quickstart(args):
    """Run the quickstart (or, with --run DIR --wall S, read a finished run of it)."""
    recipe = load_recipe(ROOT / "search" / "quickstart.toml")
    if args.run:
        study = optuna.load_study(study_name=recipe.name, storage=open_storage(Path(args.run) / "study.log"))
        describe(study, args.wall, recipe.study.workers)
        return
    with tempfile.TemporaryDirectory() as tmp:
        study, wall = run(recipe, Path(tmp) / "q")
        describe(study, wall, recipe.study.workers)


def describe(study, wall, workers):
    trials = study.get_trials()
    base = {t.user_attrs["baseline"]: t.values for t in trials if t.user_attrs.get("baseline")}
    best = best_trials(study)
    free = [t for t in best if not t.user_attrs.get("baseline")]
    print(json.dumps({
        "case": "quickstart", "cores": os.cpu_count(), "workers": workers, "wall_s": round(wall, 1),
        **machinery(study, wall, workers), "trials": len(trials), "counts": counts(trials), "baselines": base,
        "front": [(layout_line(t.user_attrs["dsl"]), t.values, bool(t.user_attrs.get("baseline"))) for t in best],
        "non_dominated_non_baselines": len(free),
    }, indent=1))  # fmt: skip


def _variant(recipe, **study):
    data = recipe.to_toml_dict()
    data["study"].update(study)
    return data


def ladder(args):
    recipe = load_recipe(ROOT / "search" / "quickstart.toml")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for mode in ("ladder", "full"):
                data = _variant(recipe, seed=seed, name=f"{mode}-{seed}")
                if mode == "full":
                    data["train"]["steps"] = data.pop("ladder")["stages"][-1]
                r = recipe_from_dict(data)
                study, wall = run(r, Path(tmp) / f"{mode}-{seed}")
                parts = machinery(study, wall, r.study.workers)
                rows.append({"mode": mode, "seed": seed, "wall_s": wall, **parts, "points": front_points(study)})
                print(json.dumps({"done": f"{mode}-{seed}", "wall_s": round(wall), "steps": parts["steps"],
                                  "front": rows[-1]["points"]}), flush=True)  # fmt: skip
    _hv_table(rows, "mode", per_hour=True)


def recall(args):
    """TPE against random sampling on recall.toml, seed by seed; with ``--stages`` / ``--test-examples``
    a shorter fidelity than the recipe's. With ``--keep DIR`` every study stays in DIR/<sampler>-<seed>
    and a finished one is read back instead of run again, so a long comparison can be stopped and
    continued; each study's row is printed (flushed) as it ends."""
    recipe = load_recipe(ROOT / "search" / "recall.toml")
    rows, wins = [], []
    with tempfile.TemporaryDirectory() as tmp:
        base_dir = Path(args.keep) if args.keep else Path(tmp)
        for seed in range(args.seeds):
            for sampler in ("tpe", "random"):
                data = _variant(recipe, seed=seed, sampler=sampler, name=f"{sampler}-{seed}")
                if args.trials:
                    data["study"]["trials"] = args.trials
                if args.stages:
                    data["ladder"]["stages"] = [int(s) for s in args.stages.split(",")]
                if args.test_examples:
                    data["task"]["test_examples"] = args.test_examples
                data["study"]["grace"] = 7200  # the run may be paused (SIGSTOP) while the machine is timed
                r = recipe_from_dict(data)
                out = base_dir / f"{sampler}-{seed}"
                done_file = out / "bench.json"
                if done_file.exists():
                    wall = json.loads(done_file.read_text())["wall_s"]
                    study = optuna.load_study(study_name=r.name, storage=open_storage(out / "study.log"))
                else:
                    left = r.study.trials
                    if (out / "study.log").exists():  # an interrupted study: only the trials it still lacks
                        before = optuna.load_study(study_name=r.name, storage=open_storage(out / "study.log"))
                        left = max(1, left - len(first_counted(before, r.study.trials, r.study.retries)))
                    study, wall = run(r, out, trials=left)
                    done_file.write_text(json.dumps({"wall_s": wall}))
                trials = first_counted(study, r.study.trials, r.study.retries)  # the same N in every study
                parts = machinery(study, wall, r.study.workers)
                rows.append(
                    {"mode": sampler, "seed": seed, "wall_s": wall, **parts, "points": front_points(study, trials)}
                )
                done = [t for t in trials if t.values is not None and all(v <= 0 for v in t.constraints.values())]
                base = {t.user_attrs["baseline"]: t.values[0] for t in done if t.user_attrs.get("baseline")}
                hybrids = [t for t in done if not t.user_attrs.get("baseline") and is_hybrid(t.user_attrs["dsl"])]
                best = max(hybrids, key=lambda t: (t.values[0], -t.values[1]), default=None)
                # hybrids that dominate every baseline: at least its accuracy at no more state, and
                # better in one (a tie at accuracy 1.0 with less state counts; the budget is the same)
                bases = [t for t in done if t.user_attrs.get("baseline")]
                ahead = [h for h in hybrids if all(dominates(minimised(h), minimised(b)) for b in bases)]
                smallest = min(ahead, key=lambda t: t.values[1], default=None)
                if best is not None:
                    wins.append({"sampler": sampler, "seed": seed, "baselines": base,
                                 "baseline_state": {t.user_attrs["baseline"]: t.values[1] for t in bases},
                                 "best": (layout_line(best.user_attrs["dsl"]), best.values),
                                 "beats_all": all(best.values[0] > v for v in base.values()),
                                 "dominating_hybrids": len(ahead),
                                 "smallest_dominating": smallest and (layout_line(smallest.user_attrs["dsl"]),
                                                                      smallest.values)})  # fmt: skip
                print(json.dumps({"done": f"{sampler}-{seed}", "wall_s": round(wall), "steps": parts["steps"],
                                  "front": rows[-1]["points"], "win": wins[-1] if wins else None}), flush=True)  # fmt: skip
    _hv_table(rows, "mode", per_hour=False)
    print(json.dumps(wins, indent=1))


def threads(args):
    """Trials per hour on this machine's cores: one worker on every core's thread against one
    single-threaded worker per core. Both modes train the same fixed layouts of the quickstart's
    space (enqueued, so no sampler decides), each a fixed number of steps without the ladder, so
    the work is identical and only the split of the cores differs; the modes alternate round by
    round in this process."""
    import random

    recipe = load_recipe(ROOT / "search" / "quickstart.toml")
    options = ["attn heads=2", "attn heads=2 window=8", "ssm state=16 head_dim=16 chunk=32", "conv"]
    pick = random.Random(0)
    layouts = [" ".join(pick.choice(options) for _ in range(4)) for _ in range(args.trials or 12)]
    cores = os.cpu_count() or 1
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for workers in (1, cores):
                data = _variant(
                    recipe, baselines=layouts, trials=len(layouts), workers=workers, name=f"w{workers}-{round_}"
                )
                data.pop("ladder")
                data["train"]["steps"] = args.steps
                data["train"].pop("threads", None)  # the workers split the cores (archdsl.search.distributed)
                r = recipe_from_dict(data)
                study, wall = run(r, Path(tmp) / f"w{workers}-{round_}")
                finished = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
                results.setdefault(workers, []).append(finished / wall * 3600)
                print(json.dumps({"round": round_, "workers": workers, "threads": cores // workers,
                                  "wall_s": round(wall, 1), "finished": finished}), flush=True)  # fmt: skip
    print(f"{len(layouts)} fixed layouts x {args.steps} steps, {cores} cores, medians of {args.rounds} rounds")
    print("| processes x threads | trials per hour |")
    print("|---|---|")
    for workers, rates in results.items():
        print(f"| {workers} x {cores // workers} | {sorted(rates)[len(rates) // 2]:.0f} |")


def minimised(trial) -> tuple[float, float]:
    """A recall trial's (accuracy, state) as (-accuracy, state), both to minimise."""
    return (-trial.values[0], trial.values[1])


def is_hybrid(dsl: str) -> bool:
    """A layout with at least two kinds of sequence mixer (windowed attention and Mamba-2, say)."""
    return len(MIXERS & set(re.findall(r"[a-z_]+", dsl))) >= 2


def _hv_table(rows, key, per_hour):
    reference = (0.0, 1.1 * max(p[1] for r in rows for p in r["points"]))  # accuracy 0, 1.1x the largest cost
    print(f"reference point: accuracy 0, cost {reference[1]:.4g}")
    # per CPU-hour depends on the machine's load; per 1,000 training steps does not
    print("| " + key + " | seed | trials' steps | wall s | hypervolume | per CPU-hour | per 1,000 steps |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        hv = hypervolume_2d(r["points"], reference)
        cpu_h = r["wall_s"] * (os.cpu_count() or 1) / 3600
        per_k = hv / r["steps"] * 1000 if r["steps"] else float("nan")
        print(
            f"| {r[key]} | {r['seed']} | {r['steps']} | {r['wall_s']:.0f} | {hv:.4g} | {hv / cpu_h:.4g} | {per_k:.4g} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("case", choices=["quickstart", "ladder", "recall", "threads"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument(
        "--stages", default=None, help="recall: ladder stages instead of the recipe's, e.g. 100,200,400"
    )
    parser.add_argument("--test-examples", type=int, default=None, help="recall: test examples instead of the recipe's")
    parser.add_argument(
        "--keep", default=None, help="recall: keep the studies in this folder; finished ones are reused"
    )
    parser.add_argument("--rounds", type=int, default=3, help="threads: alternating rounds")
    parser.add_argument("--steps", type=int, default=200, help="threads: training steps of every trial")
    parser.add_argument("--run", default=None, help="quickstart: read this finished run instead of running one")
    parser.add_argument("--wall", type=float, default=None, help="with --run: its wall time in seconds")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    {"quickstart": quickstart, "ladder": ladder, "recall": recall, "threads": threads}[args.case](args)
