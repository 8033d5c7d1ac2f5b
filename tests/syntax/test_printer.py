"""The printer: ``parse(print_spec(s)) == s`` for the examples and for random programs, the
canonical text, and re-rolling (``roll=True`` and archdsl/syntax/roll.py)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archdsl
from archdsl.spec.model import ModelSettings
from archdsl.syntax import print_spec
from archdsl.syntax.roll import Run, cost, roll, unroll

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.arch"))
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def layers(spec) -> list:
    return [(node.type, node.params) for node in spec.layers()]


# --- examples -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_round_trips(path):
    spec = archdsl.load(path)
    text = print_spec(spec)
    assert archdsl.parse(text) == spec
    assert print_spec(archdsl.parse(text)) == text  # printing is a fixed point
    rolled = print_spec(spec, roll=True)
    assert layers(archdsl.parse(rolled)) == layers(spec)


# --- canonical text -----------------------------------------------------------------------------------


def test_header_shows_width_and_vocab_and_only_changed_settings():
    assert print_spec(archdsl.parse("ssm")) == "model d_model=512 vocab=32000\nssm\n"
    spec = archdsl.parse("ssm", d_model=256, vocab=1000, tie_embeddings=True, norm_eps=1e-6)
    assert print_spec(spec).splitlines()[0] == "model d_model=256 vocab=1000 tie_embeddings=true norm_eps=1e-06"


def test_layer_shows_only_the_parameters_needed_to_get_it_back():
    spec = archdsl.parse(
        "attn heads=4 attn heads=8 kv_heads=8 head_dim=64 attn heads=4 head_dim=64 mlp hidden=1408 ssm state=64"
    )
    # heads=8 etc. are the defaults for d_model=512; head_dim=64 with heads=4 is not implied
    assert print_spec(spec).splitlines()[1] == "attn heads=4 attn attn heads=4 head_dim=64 mlp ssm state=64"


def test_floats_read_back_exactly():
    spec = archdsl.parse("attn rope_theta=123456.789 attn rope_theta=1.5", norm_eps=3.3e-7)
    text = print_spec(spec)
    assert "rope_theta=123456.789" in text and "rope_theta=1.5" in text and "norm_eps=3.3e-07" in text
    assert archdsl.parse(text) == spec


def test_shared_groups_become_let_lines_inner_first_and_uses_print_as_names():
    text = "model d_model=512 vocab=32000\nlet glob = shared(attn mlp)\n2x(ssm glob) glob\n"
    assert print_spec(archdsl.parse(text)) == text
    inline = archdsl.parse("ssm 2x(shared(attn) mlp)")
    assert print_spec(inline) == "model d_model=512 vocab=32000\nlet shared1 = shared(attn)\nssm 2x(shared1 mlp)\n"
    assert archdsl.parse(print_spec(inline)) == inline


def test_repeats_and_parallel_branches():
    text = "model d_model=512 vocab=32000\n3x(ssm mlp) (attn heads=4 | ssm) 2x((attn window=64 | ssm mlp))\n"
    assert print_spec(archdsl.parse(text)) == text
    assert archdsl.parse("2x(attn window=64 | ssm mlp)") == archdsl.parse("2x((attn window=64 | ssm mlp))")


def test_a_long_stack_is_wrapped_and_still_reads_back():
    spec = archdsl.parse(" ".join(f"attn window={w} mlp" for w in range(1, 40)))
    text = print_spec(spec)
    assert len(text.splitlines()) > 3 and max(map(len, text.splitlines())) <= 100
    assert archdsl.parse(text) == spec


# --- random programs ------------------------------------------------------------------------------------


@st.composite
def attn_call(draw, d_model: int) -> str:
    heads = draw(st.sampled_from([1, 2, 4, 8]))
    params = {
        "heads": heads,
        "kv_heads": draw(st.sampled_from([k for k in (1, 2, 4, 8) if heads % k == 0])),
        "head_dim": draw(st.sampled_from([16, 32, 64])),
        "window": draw(st.integers(1, 4096)),
        "rope_theta": repr(draw(st.floats(1.0, 1e7, allow_nan=False, allow_infinity=False))),
        "qk_norm": draw(st.sampled_from(["true", "false"])),
    }
    return _call("attn", params, draw)


@st.composite
def ssm_call(draw, d_model: int) -> str:
    expand = draw(st.integers(1, 3))
    head_dim = draw(st.sampled_from([16, 32, 64]))
    heads = expand * d_model // head_dim
    params = {
        "state": draw(st.integers(1, 256)),
        "expand": expand,
        "head_dim": head_dim,
        "groups": draw(st.sampled_from([g for g in (1, 2, 4) if heads % g == 0])),
        "conv": draw(st.integers(1, 8)),
        "chunk": draw(st.integers(1, 4096)),
    }
    return _call("ssm", params, draw)


@st.composite
def mlp_call(draw, d_model: int) -> str:
    return _call("mlp", {"hidden": draw(st.integers(1, 4096))}, draw)


def _call(name: str, params: dict, draw) -> str:
    keys = draw(st.lists(st.sampled_from(sorted(params)), unique=True, max_size=len(params)))
    # a parameter that must divide another is written with it, not against its default
    needs = {"kv_heads": ["heads"], "groups": ["expand", "head_dim"]}
    for key in list(keys):
        keys += [k for k in needs.get(key, []) if k not in keys]
    return " ".join([name, *(f"{k}={params[k]}" for k in keys)])


@st.composite
def programs(draw) -> str:
    """A random valid program: header, plain and shared lets, nested repeats and branches."""
    d_model = draw(st.sampled_from([64, 128, 256]))
    layer = st.one_of(attn_call(d_model), ssm_call(d_model), mlp_call(d_model))
    # parallel branches hold layer calls and repeats of them only
    branch_item = st.one_of(layer, st.builds(lambda n, b: f"{n}x({b})", st.integers(1, 3), layer))
    branch = st.lists(branch_item, min_size=1, max_size=2).map(" ".join)
    parallel = st.lists(branch, min_size=2, max_size=3).map(lambda bs: "(" + " | ".join(bs) + ")")

    def extend(inner):
        seq = st.lists(inner, min_size=1, max_size=3).map(" ".join)
        return st.one_of(
            st.builds(lambda n, s: f"{n}x({s})", st.integers(1, 4), seq),
            seq.map(lambda s: f"({s})"),
        )

    plain = st.recursive(st.one_of(layer, parallel), extend, max_leaves=6)
    blocks = draw(st.lists(plain, min_size=0, max_size=2))
    groups = draw(st.lists(plain, min_size=0, max_size=2))
    lets = [f"let b{i} = {text}" for i, text in enumerate(blocks)]
    lets += [f"let g{i} = shared({text})" for i, text in enumerate(groups)]
    names = st.sampled_from([f"b{i}" for i in range(len(blocks))] + [f"g{i}" for i in range(len(groups))])
    leaf = st.one_of(plain, names, plain.map(lambda s: f"shared({s})")) if lets else plain
    body = draw(st.lists(st.recursive(leaf, extend, max_leaves=4), min_size=1, max_size=4))
    header = f"model d_model={d_model} vocab={draw(st.integers(2, 50000))}"
    if draw(st.booleans()):
        header += f" norm_eps={draw(st.floats(1e-9, 0.5))!r} tie_embeddings={draw(st.sampled_from(['true', 'false']))}"
    return "\n".join([header, *lets, " ".join(body)])


@FAST
@given(programs())
def test_random_programs_round_trip(text):
    spec = archdsl.parse(text)
    printed = print_spec(spec)
    assert archdsl.parse(printed) == spec, printed
    assert print_spec(archdsl.parse(printed)) == printed


@FAST
@given(programs())
def test_rolling_keeps_the_layers(text):
    spec = archdsl.parse(text)
    rolled = print_spec(spec, roll=True)
    again = archdsl.parse(rolled)
    assert layers(again) == layers(spec), rolled
    assert again.model == spec.model
    assert print_spec(again, roll=True) == rolled  # rolling is idempotent


# --- rolling ------------------------------------------------------------------------------------------


def rolled_text(items: list[str]) -> str:
    def show(x):
        return f"{x.count}x({' '.join(map(show, x.body))})" if isinstance(x, Run) else x

    return " ".join(map(show, roll(items)))


@pytest.mark.parametrize(
    "flat, expected",
    [
        pytest.param("ssm ssm ssm attn ssm ssm ssm attn", "2x(3x(ssm) attn)", id="design-example"),
        pytest.param("ssm ssm attn " * 4, "4x(ssm ssm attn)", id="ssm-ssm-attn-x4"),
        pytest.param(("m " * 4 + "a " + "m " * 3) * 4, "4x(4x(m) a 3x(m))", id="jamba-7-to-1"),
        pytest.param(
            "ssm mlp " * 6 + "attn mlp " + "ssm mlp " * 6,
            "6x(ssm mlp) attn mlp 6x(ssm mlp)",
            id="one-attention-in-the-middle",
        ),
        pytest.param("ssm " * 24, "24x(ssm)", id="mamba2"),
        pytest.param("attn mlp " * 32, "32x(attn mlp)", id="llama"),
        pytest.param("ssm ssm", "ssm ssm", id="tie-stays-flat"),
        pytest.param("a b c", "a b c", id="nothing-to-roll"),
        pytest.param("a a a b a b a b", "a a 3x(a b)", id="run-gives-copies-to-its-neighbour"),
    ],
)
def test_roll_finds_the_obvious_shortest_form(flat, expected):
    assert rolled_text(flat.split()) == expected


def test_roll_of_a_printed_spec():
    spec = archdsl.parse("ssm ssm ssm attn ssm 2x(ssm) attn")
    assert print_spec(spec, roll=True).splitlines()[1] == "2x(3x(ssm) attn)"
    zamba = archdsl.parse("let g = shared(attn mlp)\n2x(ssm ssm ssm g) ssm ssm ssm g")
    assert print_spec(zamba, roll=True).splitlines()[1:] == ["let g = shared(attn mlp)", "3x(3x(ssm) g)"]
    parallel = archdsl.parse("(attn | ssm ssm ssm) 2x((attn | ssm ssm ssm))")
    assert print_spec(parallel, roll=True).splitlines()[1] == "3x((attn | 3x(ssm)))"


NEMOTRON_H_8B = "M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M-"  # Megatron's pattern, 52 layers


def reference_cost(items: list) -> tuple[int, int]:
    """The optimum by the textbook interval DP (O(n^3)): (items written + repeats, repeats)."""
    n = len(items)
    best = {(i, i + 1): (1, 0) for i in range(n)}
    for length in range(2, n + 1):
        for i in range(n - length + 1):
            j = i + length
            options = [tuple(map(sum, zip(best[i, k], best[k, j]))) for k in range(i + 1, j)]
            for p in range(1, length // 2 + 1):
                if length % p == 0 and items[i:j] == items[i : i + p] * (length // p):
                    c, r = best[i, i + p]
                    options.append((c + 1, r + 1))
            best[i, j] = min(options)
    return best[0, n]


def score(rolled) -> tuple[int, int]:
    def runs(xs):
        return sum(1 + runs(x.body) for x in xs if isinstance(x, Run))

    return cost(rolled), runs(rolled)


def test_roll_is_optimal_on_nemotron_h():
    items = list(NEMOTRON_H_8B)
    rolled = roll(items)
    assert unroll(rolled) == items
    assert score(rolled) == reference_cost(items)
    # the hand-written form in examples/nemotron_h.arch costs 16; the optimum is shorter
    assert cost(rolled) <= 16


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from("aab"), max_size=14) | st.lists(st.sampled_from("abc"), max_size=14))
def test_roll_matches_the_reference_optimum_on_short_lists(items):
    rolled = roll(items)
    assert unroll(rolled) == items
    assert score(rolled) == (reference_cost(items) if items else (0, 0))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 3), max_size=300), st.integers(1, 40))
def test_roll_unrolls_to_its_input(items, copies):
    items = items * (copies if len(items) * copies <= 1500 else 1)
    assert unroll(roll(items)) == items


LONG_LISTS = [
    pytest.param(["ssm"] * 1200, "1200x(ssm)", id="uniform"),
    pytest.param((["ssm"] * 7 + ["attn"]) * 150, "150x(7x(ssm) attn)", id="jamba-like"),
    pytest.param((["s", "m"] * 3 + ["a", "m"]) * 130, "130x(3x(s m) a m)", id="period-8-pairs"),
    pytest.param(
        ([*"abcdefghijklmnopqrstuvwxyz"] * 3 + ["z"] * 50) * 12,
        "12x(3x(a b c d e f g h i j k l m n o p q r s t u v w x y z) 50x(z))",
        id="period-past-the-bound",
    ),
]


def irregular_list() -> list[str]:
    rng = random.Random(0)
    return [rng.choice(["ssm", "attn", "mlp"]) for _ in range(1500)]


@pytest.mark.parametrize("items, expected", LONG_LISTS)
def test_roll_of_long_lists_finds_the_structure(items, expected):
    # how quickly: tests/test_timing_bounds.py (pytest -m timing)
    assert rolled_text(items) == expected


def test_roll_of_a_long_irregular_list_is_lossless():
    items = irregular_list()
    rolled = roll(items)
    assert unroll(rolled) == items and cost(rolled) <= len(items)


def test_model_settings_defaults_are_what_the_printer_assumes():
    # the printer leaves out settings equal to these; a changed default must not break round trips
    assert archdsl.parse(print_spec(archdsl.parse("ssm", **ModelSettings().model_dump()))).model == ModelSettings()
