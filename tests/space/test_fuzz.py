"""Fuzzing the space grammar, as tests/syntax/test_fuzz.py fuzzes the plain one: whatever the
text, ``archdsl.parse_space`` gives a Space or an ArchDSLError with a position inside the text.
And generated spaces round-trip: ``parse_space(str(space)) == space``; a draw is a plain layout
that prints as DSL and reads back; the size equals the number of layouts listed."""

from __future__ import annotations

import optuna
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archdsl
from archdsl.errors import ArchDSLError
from archdsl.space import InfeasibleError
from archdsl.space.space import layout_key
from archdsl.syntax.printer import print_spec

optuna.logging.set_verbosity(optuna.logging.WARNING)

SEEDS = [
    "model d_model=64 vocab=100\nlet mixer = {ssm, attn window={16, 32}, gdn, conv}\n{2, 4, 6}x(3x(ssm mlp) mixer mlp)",
    "let w = {16, 32}\n2x each({ssm state={16..64 step=16}, attn window=w} mlp) (attn | {ssm, conv})",
    "model d_model={64, 128} norm_eps={1e-6..1e-4 log}\nlet g = shared({attn, gdn} mlp)\n{1..3}x(ssm g)",
]
CHARS = "{}(),.|=x;#\n 0123456789-eE" + "abcdeghilmnorstw_"
WORDS = [
    "{", "}", "}x(", ",", "..", "each", "step=", "step=2", "log", "{2, 4}x(", "4x each(", "(", ")", "|",
    "ssm", "attn", "mlp", "gdn", "window=", "window={16, 32}", "state={16..64 step=16}", "let m =", "m",
    "let w = {16, 32}", "w", "window=w", "{ssm, attn}", "shared(", "16", "-1", "0", "1e-4", "\n", ";",
]  # fmt: skip
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check(text: str) -> None:
    try:
        archdsl.parse_space(text)
    except ArchDSLError as err:
        assert err.span is not None, f"no position in: {err}"
        assert err.span.line >= 1 and err.span.column >= 1
        source = err.source if err.source is not None else ""
        assert err.span.line <= max(1, source.count("\n") + 1), str(err)
        str(err)


@FUZZ
@given(st.text(alphabet=CHARS, max_size=60))
def test_random_characters(text):
    check(text)


@FUZZ
@given(st.lists(st.sampled_from(WORDS), max_size=20), st.sampled_from([" ", ""]))
def test_random_words(words, sep):
    check(sep.join(words))


@FUZZ
@given(
    st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 200), st.sampled_from(list(CHARS) + [""])), max_size=4)
)
def test_mutated_spaces(text, edits):
    for position, char in edits:
        i = position % (len(text) + 1)
        text = text[:i] + char + text[i + 1 :]
    check(text)


# ---- generated valid spaces -----------------------------------------------------------------

LAYERS = st.sampled_from(
    [
        "ssm",
        "mlp",
        "conv",
        "gdn",
        "attn window={16, 32}",
        "attn",
        "ssm state={16..48 step=16}",
        "mlp hidden={64, 128}",
        "m",
    ]
)


def seqs(inner):
    return st.lists(inner, min_size=1, max_size=3).map(" ".join)


def items(depth: int):
    if depth == 0:
        return LAYERS
    inner = items(depth - 1)
    return st.one_of(
        LAYERS,
        st.lists(seqs(inner), min_size=1, max_size=3, unique=True).map(lambda o: "{" + ", ".join(o) + "}"),
        st.tuples(st.sampled_from(["{1, 2}x", "2x", "{1..2}x", "2x each", "{1, 2}x each"]), seqs(inner)).map(
            lambda t: f"{t[0]}({t[1]})"
        ),
        st.tuples(LAYERS, LAYERS).map(lambda t: f"({t[0]} | {t[1]})"),
    )


SPACE_TEXT = st.tuples(seqs(items(2)), st.sampled_from(["{ssm, conv}", "ssm mlp", "{attn window={16, 32}, gdn}"])).map(
    lambda t: f"model d_model=64 vocab=100\nlet m = {t[1]}\n{t[0]}"
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SPACE_TEXT, st.integers(0, 2**16))
def test_generated_spaces_round_trip_and_sample_to_plain_layouts(text, seed):
    try:
        space = archdsl.parse_space(text)
    except ArchDSLError as err:  # e.g. duplicate options the generator wrote
        assert err.span is not None
        return
    again = archdsl.parse_space(str(space))
    assert again == space and str(again) == str(space)
    assert [s.name for s in again.sites] == [s.name for s in space.sites]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    trial = study.ask()
    try:
        spec = space.sample(trial)
    except InfeasibleError:
        return
    assert space.fix(trial.params) == spec
    text_of_layout = print_spec(spec, roll=True)
    assert layout_key(archdsl.parse(text_of_layout)) == layout_key(spec)
    if space.size <= 64:
        listed = list(space._iter(limit=64, what="list"))
        assert len(listed) == space.size
        assert len({repr(sorted(p.items())) for p, _ in listed}) == space.size
        assert layout_key(space.fix(space.match(spec))) == layout_key(spec)
