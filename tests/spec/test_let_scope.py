"""Lets have lexical scope: a name means what it meant where it stands in the text (issue 14)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

import archdsl
from archdsl.errors import ResolveError

# layer names a let may shadow, each with one parameter to tell a shadowing let from the layer
LAYERS = {"attn": "window", "mlp": "hidden", "ssm": "state", "conv": "kernel"}
LET_ONLY = ("blk", "mix")  # names that are never layers


def _layers(spec):
    return [(layer.type, layer.params) for layer in spec.layers()]


def test_the_issue_example_reads_top_to_bottom():
    text = "let attn = attn window=512 mlp\nlet mlp = mlp hidden=1024 attn\nattn mlp"
    # read top to bottom: attn = attn(512) mlp; mlp = mlp(1024) attn(512) mlp
    expected = "attn window=512 mlp mlp hidden=1024 attn window=512 mlp"
    assert _layers(archdsl.parse(text)) == _layers(archdsl.parse(expected))


def test_a_let_does_not_see_a_let_defined_below_it():
    # `mlp` inside the first let is the layer: the let named mlp comes later
    spec = archdsl.parse("let blk = attn mlp\nlet mlp = mlp hidden=128\nblk mlp", d_model=64)
    assert [p.hidden for t, p in _layers(spec) if t == "mlp"] == [192, 128]


def test_a_let_name_that_is_no_layer_cannot_be_used_above_its_definition():
    with pytest.raises(ResolveError, match=r"'blk' is defined later \(at 2:1\)") as info:
        archdsl.parse("let a = ssm blk\nlet blk = mlp\na")
    assert (info.value.span.line, info.value.span.column) == (1, 13)


@pytest.mark.parametrize(
    "text, message",
    [
        pytest.param("let blk = atn window=5\nssm", "unknown layer 'atn'", id="unknown-layer"),
        pytest.param("let blk = attn windw=5\nssm", "has no parameter 'windw'", id="unknown-parameter"),
        pytest.param("let blk = 1000001x(ssm)\nssm", "larger than the limit", id="absurd-repeat"),
        pytest.param("let blk = ssm nope\nlet mix = blk\nssm", "unknown layer 'nope'", id="chain"),
        pytest.param(
            "\n".join(["let a0 = ssm", *(f"let a{i} = a{i - 1} a{i - 1}" for i in range(1, 40))]) + "\nssm",
            r"'a17' unrolls to 131,072 layer calls, more than the limit",
            id="doubling-chain",  # checked by arithmetic, never expanded
        ),
        pytest.param("let model = ssm\nssm", "'model' is a keyword", id="keyword-name"),
    ],
)
def test_unused_lets_are_checked(text, message):
    with pytest.raises(archdsl.ArchDSLError, match=message):
        archdsl.parse(text)


def test_checking_unused_lets_does_not_renumber_inline_groups():
    spec = archdsl.parse("let blk = shared(conv)\nshared(attn) ssm")
    assert [n.group for n in spec.body.items if hasattr(n, "group")] == ["shared1"]


# ---- property: expansion equals a plain lexical macro expansion ------------------------------


@st.composite
def programs(draw):
    """(program text, the same program with every let name replaced by the text it stood for
    where it was used). Names are drawn only where they mean something (no errors)."""
    expanded: dict[str, str] = {}  # let name -> its expansion, in scope from the next line on
    lines = []

    def item(visible: dict[str, str], own: str | None, depth: int) -> tuple[str, str]:
        names = [n for n in LAYERS] + [n for n in visible]
        kind = draw(st.sampled_from(["name", "name", "name", "repeat", "group"] if depth < 2 else ["name"]))
        if kind == "repeat":
            text, ref = seq(visible, own, depth + 1)
            count = draw(st.integers(1, 3))
            return f"{count}x({text})", f"{count}x({ref})"
        if kind == "group":
            text, ref = seq(visible, own, depth + 1)
            return f"({text})", f"({ref})"
        name = draw(st.sampled_from(names))
        if name in visible:
            return name, f"({visible[name]})"
        # a layer (also where a let of its name is being defined: inside it, the layer)
        if draw(st.booleans()):
            value = draw(st.sampled_from([64, 128, 256])) if name != "conv" else draw(st.integers(2, 5))
            call = f"{name} {LAYERS[name]}={value}"
            return call, call
        return name, name

    def seq(visible, own, depth):
        parts = [item(visible, own, depth) for _ in range(draw(st.integers(1, 3)))]
        return " ".join(p[0] for p in parts), " ".join(p[1] for p in parts)

    pool = list(LAYERS) + list(LET_ONLY)
    for name in draw(st.lists(st.sampled_from(pool), unique=True, max_size=4)):
        visible = dict(expanded)
        visible.pop(name, None)
        text, ref = seq(visible, name, 0)
        lines.append(f"let {name} = {text}")
        expanded[name] = ref
    text, ref = seq(expanded, None, 0)
    return "\n".join([*lines, text]), ref


@settings(max_examples=100, deadline=None)
@given(programs())
def test_let_expansion_equals_lexical_macro_expansion(case):
    program, reference = case
    assert archdsl.parse(program, d_model=64, vocab=16) == archdsl.parse(reference, d_model=64, vocab=16), program
