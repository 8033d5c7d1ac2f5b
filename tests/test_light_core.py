"""The light core: reading, checking, formatting, showing, costing, importing and exporting a
program never imports torch (nor Optuna, matplotlib or SciPy where they are not needed), so these
answer like a linter. Torch is imported by build, train, search and from_hf only.

Each case runs in a fresh interpreter (this test process has long imported torch): the commands
and calls run one after another, and the heavy packages present after each are reported, so a
failure names the first command that pulled one in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "optuna", "matplotlib", "scipy", "transformers")

PROBE = """
import json, sys

HEAVY = {heavy!r}
seen = []

def note(what):
    seen.append([what, [name for name in HEAVY if name in sys.modules]])

def cli(*args):
    from archdsl.cli import main
    sys.argv = ["archdsl", *args]
    try:
        main()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    note("archdsl " + " ".join(args))

{steps}
print("PROBE " + json.dumps(seen), file=sys.stderr)
"""


def probe(steps: str) -> list[tuple[str, list[str]]]:
    """[(step, heavy packages imported by then)] after each step of ``steps`` (Python lines)."""
    code = PROBE.format(heavy=HEAVY, steps=steps)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stderr.splitlines() if line.startswith("PROBE "))
    return [tuple(step) for step in json.loads(line[len("PROBE ") :])]


def test_check_imports_no_heavy_package():
    (step,) = probe('cli("check", "-e", "4x(ssm) 1x(attn window=512)")')
    assert step == ("archdsl check -e 4x(ssm) 1x(attn window=512)", [])


def test_check_lowers_without_networkx():
    # check runs the lowering and its checks on plain dicts; importing networkx is most of the
    # rest of its time (benchmarks/README.md), and the graph itself is for show, cost and build
    steps = probe(
        """
cli("check", "-e", "model d_model=64 vocab=100\\n2x(ssm (attn | conv)) shared(attn mlp)")
cli("check", "examples/spaces/hybrid.arch")
seen.append(["networkx", ["networkx"] if "networkx" in sys.modules else []])
import archdsl
archdsl.to_graph("4x(ssm)")
seen.append(["to_graph", ["networkx"] if "networkx" in sys.modules else []])
"""
    )
    assert [heavy for _, heavy in steps] == [[], [], [], ["networkx"]]


def test_the_reading_commands_and_calls_do_not_import_torch():
    steps = probe(
        """
import archdsl
note("import archdsl")
spec = archdsl.parse("model d_model=64 vocab=100\\n4x(ssm) 1x(attn window=512) moe gdn rglru conv mamba")
note("archdsl.parse")
archdsl.to_graph(spec)
note("archdsl.to_graph")
archdsl.Budget.parse("params<=1B, train_flops/token@2k<=1T").check(archdsl.cost(spec, seq_len=2048))
note("archdsl.cost + Budget")
archdsl.parse_space("{2, 4}x(ssm) {attn window={64, 256}, gdn}").size
note("archdsl.parse_space")
cli("check", "examples/jamba.arch")
cli("check", "examples/spaces/hybrid.arch")
cli("fmt", "examples/jamba.arch")
cli("show", "examples/jamba.arch")
cli("show", "examples/jamba.arch", "--format", "mermaid")
cli("show", "examples/jamba.arch", "--format", "dot")
cli("cost", "examples/llama.arch", "examples/jamba.arch", "--seq", "2k,8k")
cli("layers")
cli("import", "examples/hf/mamba2_130m.json")
cli("export", "--hf", "examples/jamba.arch")
archdsl.from_hf_config("examples/hf/nemotron_h_8b.json", approximate=True)
note("archdsl.from_hf_config")
cli("sample", "examples/spaces/hybrid.arch", "--seed", "3")
archdsl.build(spec)
note("archdsl.build")
"""
    )
    *light, (last, imported_by_build) = steps
    torch_by = [what for what, heavy in light if "torch" in heavy]
    assert torch_by == [], f"torch imported by: {torch_by}"
    # `sample` draws with Optuna's samplers; nothing before it needs Optuna, nothing at all
    # needs matplotlib, SciPy or transformers
    heavy_by = {what: heavy for what, heavy in light if heavy and not what.startswith("archdsl sample")}
    assert heavy_by == {}
    assert len(light) == 17
    # the probe is live: building a model does import torch
    assert last == "archdsl.build" and "torch" in imported_by_build
