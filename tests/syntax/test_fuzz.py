"""Fuzzing ``archdsl.parse``: whatever the text, the result is a Spec or an ArchDSLError that
says where (a span with line and column inside the text); never a lark, pydantic or Python
exception, never a hang."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archdsl
from archdsl.errors import ArchDSLError

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.arch"))
SEEDS = [path.read_text() for path in EXAMPLES] + [
    "4x(ssm) 1x(attn window=512)",
    "model d_model=64 vocab=100\nlet b = ssm state=16 mlp\nlet g = shared(attn heads=2 mlp)\n2x(3x(b) g) (attn | ssm) g\n",
    "let h = (attn heads=4 kv_heads=2\n  | ssm)\nmodel d_model=128; 4x(h mlp hidden=256) # done",
]
# the language's own characters and words, plus some it does not have
CHARS = "()|=x;#\n \t0123456789._-+eE,{}\"'@\r\ufeffé\x00abcdefghijklmnopqrstuvwxyz"
WORDS = [
    "ssm",
    "attn",
    "mlp",
    "moe",
    "x",
    "4x(",
    "0x(",
    "-1x(",
    "99999999999999999999x(",
    "(",
    ")",
    "|",
    "=",
    "window=",
    "heads=",
    "state =",
    "512",
    "1_024",
    "1e-5",
    "-3",
    "0.5",
    "true",
    "false",
    "let",
    "model",
    "shared(",
    "shared",
    "d_model=64",
    "\n",
    ";",
    "# c\n",
    "b",
    "g",
    "let b =",
    "{",
    "}",
    ",",
    "..",
    "\r\n",
    "@",
    "1e999",
    "9" * 120,
]
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check(text: str | bytes) -> None:
    """Parse; on error, demand our error type with a usable position."""
    try:
        archdsl.parse(text)
    except ArchDSLError as err:
        assert err.span is not None, f"no position in: {err}"
        assert err.span.line >= 1 and err.span.column >= 1
        source = err.source if err.source is not None else ""
        assert err.span.line <= max(1, source.count("\n") + 1), str(err)
        str(err)  # renders with its context line
    # anything else propagates and fails the test


@FUZZ
@given(st.text(alphabet=CHARS, max_size=80))
def test_random_characters(text):
    check(text)


@FUZZ
@given(st.lists(st.sampled_from(WORDS), max_size=25), st.sampled_from([" ", "", "\n"]))
def test_random_words(words, sep):
    check(sep.join(words))


@st.composite
def mutated(draw) -> str:
    """An example program with a few characters or words inserted, deleted or replaced."""
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "drop-word", "repeat-word", "insert-word"]))
        if op.endswith("word"):
            words = text.split(" ")
            i = draw(st.integers(0, max(len(words) - 1, 0)))
            if op == "drop-word":
                del words[i]
            elif op == "repeat-word":
                words.insert(i, words[i] if words else "")
            else:
                words.insert(i, draw(st.sampled_from(WORDS)))
            text = " ".join(words)
            continue
        i = draw(st.integers(0, len(text)))
        char = draw(st.sampled_from(CHARS))
        if op == "insert":
            text = text[:i] + char + text[i:]
        elif op == "delete":
            text = text[:i] + text[i + 1 :]
        else:
            text = text[:i] + char + text[i + 1 :]
    return text


@FUZZ
@given(mutated())
def test_mutated_examples(text):
    check(text)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=60) | mutated().map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_random_bytes(data):
    check(data)
