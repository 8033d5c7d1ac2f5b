"""Mutation testing of the layers and the cost model: does the suite notice a small plausible bug?

    python benchmarks/mutation.py                      # 60 mutants, seed 13, this checkout
    python benchmarks/mutation.py --n 120 --out runs/mutation.json
    python benchmarks/mutation.py --root /tmp/old-checkout   # the same mutants of another checkout
    python benchmarks/mutation.py --list               # the sampled mutants, nothing run
    python benchmarks/mutation.py --retry runs/mutation.json --out runs/mutation.json   # its survivors again

Every Python file of ``archdsl/layers/`` (and ``builtin/``), ``archdsl/nn/layers/`` and ``archdsl/costing/`` is
parsed; each expression that a small bug could touch gives mutants: an arithmetic operator swapped
(``+``/``-``, ``*``/``/``, ``**`` -> ``*``, ``//`` -> ``/``), a comparison loosened or flipped (``<``/``<=``, ``==``/``!=``), a
term dropped (``a + b`` -> ``a``, ``a * b`` -> ``a``), a constant tweaked (``n`` -> ``n + 1``,
``x`` -> ``2 x``), a sign removed (``-x`` -> ``x``), ``and``/``or`` and ``True``/``False`` swapped.
Strings, f-strings and annotations are left alone (a changed message is not a wrong layer).

A fixed number of mutants is sampled with a fixed seed by hashing a key that names the file, the
enclosing function, the mutation and the expression's text, so that an edit elsewhere in a file does
not change which mutants of an unchanged function are drawn. Each mutant is written into a
throw-away copy of the repository and the tests that concern its file run there: ``pytest -x`` in
a fork of this process (which imports torch and transformers once, so that a mutant does not pay
for their start-up), at nice 10, with a time limit, hypothesis in its CI profile. A mutant is
*killed* when the tests fail or time out, *survives* when they pass. The survival rate is
survived / sampled.

Not a test: pytest collects ``tests/`` only. The survivors of the latest run and why each is
equivalent (or which test now kills it) are in ``benchmarks/mutation_survivors.md``.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ("archdsl/layers", "archdsl/layers/builtin", "archdsl/nn/layers", "archdsl/costing")
LAYER_TESTS = "tests/layers"
COST_TESTS = {
    "archdsl/costing/budget.py": ["tests/cost/test_budget.py"],
    "archdsl/costing/report.py": ["tests/cost/test_cost.py"],
    "archdsl/costing/plot.py": ["tests/cost/test_cost.py"],
    "archdsl/costing/measure.py": ["tests/cost/test_cost.py"],
}
COST_DEFAULT = ["tests/layers/test_costs.py", "tests/cost/test_cost.py"]
# Files shared by several layers map to the tests of every layer that uses them.
SHARED = {
    "archdsl/nn/layers/ssd.py": ["tests/layers/test_ssm.py"],
    "archdsl/nn/layers/ssd_masked.py": ["tests/layers/test_ssm.py"],
    "archdsl/nn/layers/selective_scan.py": ["tests/layers/test_mamba.py"],
    "archdsl/nn/layers/rope.py": ["tests/layers/test_attn.py"],
    "archdsl/nn/layers/causal_conv.py": [
        "tests/layers/test_conv.py",
        "tests/layers/test_ssm.py",
        "tests/layers/test_mamba.py",
        "tests/layers/test_gdn.py",
        "tests/layers/test_rglru.py",
    ],
}

SWAPS = {
    ast.Add: [ast.Sub],
    ast.Sub: [ast.Add],
    ast.Mult: [ast.Div],
    ast.Div: [ast.Mult],
    ast.FloorDiv: [ast.Div],
    ast.Pow: [ast.Mult],
    ast.Mod: [ast.FloorDiv],
}
COMPARE_SWAPS = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}


@dataclass
class Mutant:
    file: str  # relative to the repository root
    line: int
    where: str  # enclosing function or class, "<module>" at the top
    kind: str  # e.g. "Add->Sub", "drop-right", "const"
    before: str
    after: str
    key: str  # what the sample is drawn by
    span: tuple[int, int, int, int]  # lineno, col, end_lineno, end_col of the replaced node


def tests_for(file: str, root: Path) -> list[str]:
    """The test files and folders that concern ``file`` (those that exist in ``root``)."""
    if file.startswith("archdsl/costing/"):
        paths = COST_TESTS.get(file, COST_DEFAULT)
    elif file in SHARED:
        paths = [*SHARED[file], "tests/layers/test_costs.py"]
    else:
        own = f"tests/layers/test_{Path(file).stem}.py"
        shared = ["tests/layers/test_costs.py", "tests/layers/test_init.py"]
        paths = [own, *shared] if (root / own).exists() else [LAYER_TESTS]
    return [p for p in paths if (root / p).exists()]


class _Collector(ast.NodeVisitor):
    """Every mutable expression with the name of the function or class around it."""

    def __init__(self):
        self.scope: list[str] = []
        self.found: list[tuple[str, ast.AST, str, ast.AST]] = []  # where, node, kind, replacement

    def _scoped(self, node):
        self.scope.append(node.name)
        # decorators, arguments' defaults and the body; annotations are skipped
        for child in [*node.decorator_list, *getattr(node, "body", [])]:
            self.visit(child)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for default in [*node.args.defaults, *node.args.kw_defaults]:
                if default is not None:
                    self.visit(default)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped

    def visit_AnnAssign(self, node):
        if node.value is not None:
            self.visit(node.value)

    def visit_JoinedStr(self, node):  # f-strings: messages, not behaviour
        return

    def visit_Expr(self, node):  # a bare string is a docstring
        if not (isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            self.generic_visit(node)

    def visit_ImportFrom(self, node):
        return

    def _add(self, node, kind, replacement):
        self.found.append((".".join(self.scope) or "<module>", node, kind, replacement))

    def visit_BinOp(self, node):
        for new in SWAPS.get(type(node.op), []):
            self._add(node, f"{type(node.op).__name__}->{new.__name__}", ast.BinOp(node.left, new(), node.right))
        if isinstance(node.op, (ast.Add, ast.Sub, ast.Mult)):
            self._add(node, "drop-right", node.left)
        if isinstance(node.op, ast.Add):
            self._add(node, "drop-left", node.right)
        self.generic_visit(node)

    def visit_Compare(self, node):
        if len(node.ops) == 1 and type(node.ops[0]) in COMPARE_SWAPS:
            new = COMPARE_SWAPS[type(node.ops[0])]
            self._add(
                node, f"{type(node.ops[0]).__name__}->{new.__name__}", ast.Compare(node.left, [new()], node.comparators)
            )
        self.generic_visit(node)

    def visit_UnaryOp(self, node):
        if isinstance(node.op, ast.USub) and not isinstance(node.operand, ast.Constant):
            self._add(node, "drop-minus", node.operand)
        if isinstance(node.op, ast.Not):
            self._add(node, "drop-not", node.operand)
        self.generic_visit(node)

    def visit_BoolOp(self, node):
        new = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        self._add(node, f"{type(node.op).__name__}->{type(new).__name__}", ast.BoolOp(new, node.values))
        self.generic_visit(node)

    def visit_Constant(self, node):
        value = node.value
        if isinstance(value, bool):
            self._add(node, "bool", ast.Constant(not value))
        elif isinstance(value, int):
            self._add(node, "const", ast.Constant(value + 1))
        elif isinstance(value, float):
            self._add(node, "const", ast.Constant(value * 2 if value else 1.0))


def collect(root: Path) -> list[Mutant]:
    mutants = []
    for folder in TARGETS:
        for path in sorted((root / folder).glob("*.py")):
            rel = path.relative_to(root).as_posix()
            source = path.read_text()
            collector = _Collector()
            collector.visit(ast.parse(source))
            seen: dict[str, int] = {}
            for where, node, kind, replacement in collector.found:
                before = ast.get_source_segment(source, node) or ast.unparse(node)
                after = ast.unparse(replacement)
                base = f"{rel}|{where}|{kind}|{ast.unparse(node)}"
                seen[base] = seen.get(base, 0) + 1
                span = (node.lineno, node.col_offset, node.end_lineno, node.end_col_offset)
                mutants.append(Mutant(rel, node.lineno, where, kind, before, after, f"{base}|{seen[base]}", span))
    return mutants


def sample(mutants: list[Mutant], n: int, seed: int) -> list[Mutant]:
    def rank(m: Mutant) -> str:
        return hashlib.sha256(f"{seed}|{m.key}".encode()).hexdigest()

    return sorted(sorted(mutants, key=rank)[:n], key=lambda m: (m.file, m.line))


def apply(source: str, m: Mutant) -> str:
    """The source with the node at ``m.span`` replaced by ``m.after`` in parentheses."""
    lines = source.splitlines(keepends=True)
    l0, c0, l1, c1 = m.span
    # ast offsets are in UTF-8 bytes
    head = "".join(lines[: l0 - 1]) + lines[l0 - 1].encode()[:c0].decode()
    tail = lines[l1 - 1].encode()[c1:].decode() + "".join(lines[l1:])
    return f"{head}({m.after}){tail}"


def copy_tree(root: Path, dest: Path) -> None:
    ignore = shutil.ignore_patterns(".git", ".venv", "runs", "__pycache__", "*.db", ".hypothesis", ".pytest_cache")
    for name in ("archdsl", "tests", "examples", "grammars", "search", "benchmarks"):
        if (root / name).exists():
            shutil.copytree(root / name, dest / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        if (root / name).exists():
            shutil.copy(root / name, dest / name)


# Imported once by this process, so that each mutant's test run (a fork of it) does not pay for
# them again: the start-up of torch and transformers is most of a short pytest run.
HEAVY = (
    "torch",
    "transformers",
    "hypothesis",
    "pydantic",
    "lark",
    "networkx",
    "optuna",
    "typer",
    "rich",
    "transformers.models.llama.modeling_llama",
    "transformers.models.mamba.modeling_mamba",
    "transformers.models.mamba2.modeling_mamba2",
    "transformers.models.mixtral.modeling_mixtral",
    "transformers.models.qwen3_next.modeling_qwen3_next",
    "transformers.models.recurrent_gemma.modeling_recurrent_gemma",
)


def preload() -> None:
    import importlib

    for name in HEAVY:
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def _child(copy: Path, tests: list[str], log: Path) -> None:
    """In the forked process: a fresh import of archdsl and the tests from ``copy``, then pytest."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.environ.update({"CI": "true", "PYTHONDONTWRITEBYTECODE": "1"})
    os.chdir(copy)
    sys.path.insert(0, str(copy))
    for name in [m for m in sys.modules if m.split(".")[0] in ("archdsl", "tests")]:
        del sys.modules[name]
    import pytest

    code = pytest.main(["-x", "-q", "-p", "no:cacheprovider", *tests])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code))


def run_tests(copy: Path, tests: list[str], timeout: float) -> tuple[str, float, str]:
    """("passed" | "failed" | "timeout", seconds, last lines of output): pytest on ``tests`` in a
    fork of this process, killed after ``timeout`` seconds."""
    log = copy / ".mutation-pytest.log"
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            _child(copy, tests, log)
        finally:
            os._exit(3)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.perf_counter() - start > timeout:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout", time.perf_counter() - start, ""
        time.sleep(0.2)
    seconds = time.perf_counter() - start
    tail = log.read_text(errors="replace")[-600:] if log.exists() else ""
    return ("passed" if os.waitstatus_to_exitcode(status) == 0 else "failed"), seconds, tail


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout to mutate (its own tests are run)")
    parser.add_argument("--n", type=int, default=60, help="mutants to sample")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--timeout", type=float, default=None, help="seconds per mutant (default 3x the clean run)")
    parser.add_argument("--out", type=Path, default=None, help="write every result as JSON here")
    parser.add_argument("--list", action="store_true", help="print the sampled mutants and stop")
    parser.add_argument(
        "--retry",
        type=Path,
        default=None,
        help="a JSON of an earlier run: run again only its survivors (tests added since may kill them); "
        "its killed mutants keep their verdict, and the rate is over all of its mutants",
    )
    args = parser.parse_args(argv)
    root = args.root.resolve()

    every = collect(root)
    chosen = sample(every, args.n, args.seed)
    earlier: list[dict] = []
    if args.retry:
        earlier = json.loads(args.retry.read_text())["results"]
        again = {r["key"] for r in earlier if r["verdict"] == "survived"}
        chosen = [m for m in every if m.key in again]
        earlier = [r for r in earlier if r["key"] not in again]
    print(f"{len(every)} mutants in {', '.join(TARGETS)} of {root}; sampled {len(chosen)} (seed {args.seed})")
    if args.list:
        for i, m in enumerate(chosen):
            print(f"{i:3d} {m.file}:{m.line} {m.where} {m.kind}: {m.before!r} -> {m.after!r}")
        return 0

    os.nice(10)  # two cores shared with other work: this yields to it
    preload()
    with tempfile.TemporaryDirectory(prefix="archdsl-mutation-") as tmp:
        copy = Path(tmp)
        copy_tree(root, copy)
        # The clean run of every test subset: it must pass, and it sets the time limit.
        clean: dict[tuple[str, ...], float] = {}
        for tests in sorted({tuple(tests_for(m.file, copy)) for m in chosen}):
            status, seconds, tail = run_tests(copy, list(tests), timeout=1800)
            if status != "passed":
                print(f"clean run of {' '.join(tests)} did not pass:\n{tail}")
                return 2
            clean[tests] = seconds
            print(f"clean {seconds:6.1f}s  {' '.join(tests)}")
        results = []
        start = time.perf_counter()
        for i, m in enumerate(chosen):
            tests = tests_for(m.file, copy)
            timeout = args.timeout or max(60.0, 3 * clean[tuple(tests)])
            original = (copy / m.file).read_text()
            (copy / m.file).write_text(apply(original, m))
            try:
                status, seconds, tail = run_tests(copy, tests, timeout)
            finally:
                (copy / m.file).write_text(original)
            verdict = "survived" if status == "passed" else "killed"
            results.append({**asdict(m), "status": status, "verdict": verdict, "seconds": round(seconds, 1)})
            print(
                f"{i:3d} {verdict:8s} {seconds:5.1f}s {m.file}:{m.line} {m.where} {m.kind}: {m.before!r} -> {m.after!r}"
            )
            sys.stdout.flush()
        results = sorted(earlier + results, key=lambda r: (r["file"], r["line"]))
        survived = [r for r in results if r["verdict"] == "survived"]
        minutes = (time.perf_counter() - start) / 60
        rate = len(survived) / len(results) if results else 0.0
        print(f"\nsurvival rate: {len(survived)}/{len(results)} = {rate:.1%} ({minutes:.1f} min, shared machine)")
        for r in survived:
            print(f"  survived: {r['file']}:{r['line']} {r['where']} {r['kind']}: {r['before']!r} -> {r['after']!r}")
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(
                json.dumps({"seed": args.seed, "n": args.n, "rate": rate, "results": results}, indent=1)
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
