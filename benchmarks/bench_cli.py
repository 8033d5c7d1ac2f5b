"""How long ``archdsl check -e "4x(ssm) 1x(attn window=512)"`` takes, and where the time goes.

    python benchmarks/bench_cli.py                        # this checkout
    python benchmarks/bench_cli.py --against /tmp/main    # and another checkout, timed in turn

Each run is a fresh Python process running the command's ``main()`` (what the console script
does), timed from outside. "cold" gives each run an empty parser cache (a fresh
``XDG_CACHE_HOME``), "warm" one cache filled by an earlier run. With ``--against`` the checkouts
are timed in alternation, round by round, so that load from other processes on a shared machine
falls on both alike; the ratio is the figure to compare. Then ``python -X importtime`` of one
warm run of each checkout: the heaviest imports by cumulative time, and whether torch, optuna,
matplotlib, scipy were imported at all.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROGRAM = "4x(ssm) 1x(attn window=512)"
HEAVY = ("torch", "optuna", "matplotlib", "scipy", "transformers", "rich", "pydantic", "lark", "networkx", "typer")


def command(root: Path) -> list[str]:
    """A fresh interpreter that runs ``archdsl check -e PROGRAM`` from the checkout at ``root``."""
    code = (
        f"import sys; sys.path.insert(0, {str(root)!r}); sys.argv = ['archdsl', 'check', '-e', {PROGRAM!r}]; "
        "from archdsl.cli import main; main()"
    )
    return [sys.executable, "-c", code]


def run_once(root: Path, cache_home: str, extra: list[str] = ()) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds (user + system) of the child, its stderr)."""
    env = dict(os.environ, XDG_CACHE_HOME=cache_home, PYTHONPATH=str(root))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [*command(root)[:1], *extra, *command(root)[1:]], env=env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0 or "ok:" not in done.stdout:
        raise SystemExit(f"{root}: the check failed:\n{done.stdout}{done.stderr}")
    return wall, cpu, done.stderr


def import_table(stderr: str) -> tuple[list[tuple[int, str]], dict[str, int]]:
    """(top-level imports by cumulative microseconds, cumulative time of each HEAVY package)."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line[len("import time:") :].split("|")
        rows.append((int(cumulative), name.rstrip()))
    top_level = sorted(((us, name.strip()) for us, name in rows if not name.startswith("   ")), reverse=True)
    heavy = {}
    for us, name in rows:
        if name.strip() in HEAVY:
            heavy[name.strip()] = max(heavy.get(name.strip(), 0), us)
    return top_level, heavy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", type=Path, help="another checkout of archdsl (e.g. of main) to time in turn")
    parser.add_argument("--runs", type=int, default=7, help="rounds; the medians are printed")
    args = parser.parse_args()
    roots = {"this": HERE.parent}
    if args.against:
        roots["against"] = args.against.resolve()

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    print(f"command: archdsl check -e {PROGRAM!r}")
    with tempfile.TemporaryDirectory() as tmp:
        warm = {name: os.path.join(tmp, f"warm-{name}") for name in roots}
        for name, root in roots.items():
            run_once(root, warm[name])  # fills the warm cache (and the OS page cache)
        times = {(name, kind): [] for name in roots for kind in ("cold", "warm")}
        cpus = {key: [] for key in times}
        bare = []
        for round_ in range(args.runs):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            bare.append(time.perf_counter() - start)
            for name, root in roots.items():
                for kind, cache in (("cold", os.path.join(tmp, f"cold-{name}-{round_}")), ("warm", warm[name])):
                    wall, cpu, _ = run_once(root, cache)
                    times[name, kind].append(wall)
                    cpus[name, kind].append(cpu)
        print(f"\n`python -c pass` alone: {statistics.median(bare):.3f} s")
        # CPU time is about what the wall time would be on an idle machine (one thread, nothing to
        # wait for), and it varies far less with the load of other processes than wall time does.
        print("\n| checkout | parser cache | median wall (s) | min | max | median CPU (s) |\n|---|---|---|---|---|---|")
        for (name, kind), values in times.items():
            print(
                f"| {name} ({roots[name]}) | {kind} | {statistics.median(values):.3f} | {min(values):.3f} "
                f"| {max(values):.3f} | {statistics.median(cpus[name, kind]):.3f} |"
            )
        if args.against:
            for kind in ("cold", "warm"):
                ratio = statistics.median(times["against", kind]) / statistics.median(times["this", kind])
                print(f"{kind}: this checkout is {ratio:.2f}x as fast as the other")

        for name, root in roots.items():
            _, _, stderr = run_once(root, warm[name], ["-X", "importtime"])
            top_level, heavy = import_table(stderr)
            total = sum(us for us, _ in top_level)
            print(f"\n{name}: python -X importtime, warm cache: {total / 1e3:.0f} ms of imports in all")
            print(
                "  heaviest top-level imports (cumulative ms): "
                + ", ".join(f"{n} {us / 1e3:.0f}" for us, n in top_level[:8])
            )
            print(
                "  heavy packages imported (cumulative ms): "
                + (", ".join(f"{n} {us / 1e3:.0f}" for n, us in sorted(heavy.items(), key=lambda kv: -kv[1])) or "none")
            )
            missing = [n for n in ("torch", "optuna", "matplotlib", "scipy", "transformers") if n not in heavy]
            print("  not imported: " + (", ".join(missing) or "-"))
    print(f"\nload average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
