"""Search spaces: time to sample a layout and cost it, and to enumerate and cost a whole space
under a budget (nothing is built).

    python benchmarks/bench_space.py            # add --quick to enumerate 10,000 layouts only

Prints medians (and the 10th percentile, the least disturbed run on a shared machine) of:

1. ``space.sample(trial)`` + ``archdsl.cost(spec)`` for a 32-layer space (target < 1 ms) and a
   1,000-layer space (target < 10 ms), with an ``optuna.trial.FixedTrial`` (the space's own work)
   and with a real ``optuna`` trial from an in-memory study (Optuna's bookkeeping included);
2. lowering a 1,000-layer spec the way archdsl does it now against ``add_nodes_from`` /
   ``add_edges_from`` (the way it did before), alternated in one process, as a ratio;
3. enumerating and costing every layout of a 100,000-layout space under a budget.

Each bad input of tests/space/test_errors.py is also timed (target < 100 ms each).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import networkx as nx
import optuna

import archdsl
from archdsl.graph.check import check_graph
from archdsl.graph.lower import lower, lowered_parts
from archdsl.space.enumerate import Tally

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE_32 = (
    "model d_model=512 vocab=32000\n"
    "let mixer = {ssm, attn window={256, 1024}, gdn, conv}\n"
    "{4, 8}x each(mixer mlp hidden={1024, 2048} ssm mlp)"
)
SPACE_1000 = (
    "model d_model=4096 vocab=128000\n"
    "let mixer = {ssm, attn kv_heads=8 window={1024, 4096}, gdn, rglru}\n"
    "{100, 125}x(2x(ssm mlp) mixer moe experts={8, 16} top_k=2 mlp gdn)"
)
SPACE_100K = (
    "model d_model=128 vocab=1000\n"
    "{1..10}x(ssm mlp) attn window={16..160 step=16} {1..10}x(gdn mlp) {1..10}x(conv) mlp hidden={64..640 step=64}"
)
BUDGET = "params<=2M state@8k<=4MiB"


def times(fn, runs: int) -> list[float]:
    fn()
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def show(label: str, seconds: list[float]) -> None:
    seconds = sorted(seconds)
    p10 = seconds[len(seconds) // 10]
    print(f"  {label:58s} median {1e3 * statistics.median(seconds):7.2f} ms   p10 {1e3 * p10:7.2f} ms")


def sample_and_cost(text: str, runs: int) -> None:
    space = archdsl.parse_space(text)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    params = []
    for _ in range(runs):
        trial = study.ask()
        space.sample(trial)
        params.append(trial.params)
    spec = space.fix(params[0])
    n = len(spec.layers())
    print(f"{n} layer calls in the first layout, {len(space.sites)} choice sites, {space.size:,} layouts")
    i = iter(range(10**9))
    show("sample(FixedTrial)", times(lambda: space.sample(optuna.trial.FixedTrial(params[next(i) % runs])), runs))
    show("cost(spec)", times(lambda: archdsl.cost(spec, seq_len=2048), runs))
    j = iter(range(10**9))
    show(
        "sample(FixedTrial) + cost   [the target]",
        times(lambda: archdsl.cost(space.sample(optuna.trial.FixedTrial(params[next(j) % runs])), seq_len=2048), runs),
    )
    show(
        "study.ask() + sample(trial) + cost (in-memory study)",
        times(lambda: archdsl.cost(space.sample(study.ask())), runs),
    )


def lower_old(spec):
    """Lowering as it was before: the same nodes and edges, added with add_nodes_from /
    add_edges_from."""
    nodes, edges = lowered_parts(spec)
    graph = nx.DiGraph(model=spec.model, spec=spec)
    graph.add_nodes_from(nodes)
    graph.add_edges_from(edges)
    check_graph(graph)
    return graph


def lowering(runs: int) -> None:
    spec = archdsl.parse_space(SPACE_1000).fix({"mixer": "gdn", "repeat": 125, "moe.experts": 16})
    assert nx.utils.graphs_equal(lower(spec), lower_old(spec))  # the same graph, nodes, edges and data
    new, old = [], []
    for _ in range(runs):  # alternated, so that both see the same machine
        new += times(lambda: lower(spec), 1)
        old += times(lambda: lower_old(spec), 1)
    show("lower, filling networkx's dicts (now)", new)
    show("lower, add_nodes_from + add_edges_from (before)", old)
    print(f"  ratio of medians before / now: {statistics.median(old) / statistics.median(new):.2f}x")


def enumerate_under_budget(limit: int) -> None:
    space = archdsl.parse_space(SPACE_100K)
    tally = Tally()
    start = time.perf_counter()
    for _ in space.layouts(BUDGET, tally=tally, limit=max(limit, space.size)):
        if tally.total >= limit:
            break
    elapsed = time.perf_counter() - start
    print(
        f"{tally.total:,} of {space.size:,} layouts enumerated and costed in {elapsed:.1f} s "
        f"({1e3 * elapsed / tally.total:.2f} ms each); within '{BUDGET}': {tally.within:,} "
        f"({tally.within / tally.total:.1%}), over {tally.over:,}, not buildable {tally.infeasible:,}"
    )


def bad_inputs() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.space.test_errors import CASES

    archdsl.parse_space("ssm")  # the grammar and imports, once
    worst = (0.0, "")
    for case in CASES:
        start = time.perf_counter()
        try:
            archdsl.parse_space(case[0])
        except archdsl.ArchDSLError:
            pass
        worst = max(worst, (time.perf_counter() - start, case[5]))
    print(f"{len(CASES)} bad spaces refused; slowest: {1e3 * worst[0]:.1f} ms ({worst[1]})")


def main() -> None:
    quick = "--quick" in sys.argv
    print("== sample + cost, 32 layers"), sample_and_cost(SPACE_32, 200)
    print("== sample + cost, 1,000 layers"), sample_and_cost(SPACE_1000, 40)
    print("== lowering a 1,000-layer spec"), lowering(30)
    print("== bad inputs"), bad_inputs()
    print("== enumerate + cost under a budget"), enumerate_under_budget(10_000 if quick else 100_000)


if __name__ == "__main__":
    main()
