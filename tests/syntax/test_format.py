"""``archdsl fmt``: the author's text with spacing normalised; names, comments, lines and
repeats kept (issue 14, item 4)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st
from typer.testing import CliRunner

import archdsl
from archdsl.cli import app
from archdsl.syntax.format import format_source

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.arch"))

MESSY = """# Source: a paper
# second line


model vocab=1000   d_model=256
let  blk = attn window = 512 heads=8  mlp   # a block
# a comment in the middle
let glob = shared( attn mlp )

+04x( blk )   # four blocks
ssm ;  glob
(attn heads=4 | ssm
   conv)   2x(
  ssm   # the tail
 )
"""

TIDY = """# Source: a paper
# second line

model d_model=256 vocab=1000
let blk = attn heads=8 window=512 mlp  # a block
# a comment in the middle
let glob = shared(attn mlp)

4x(blk)  # four blocks
ssm; glob
(attn heads=4 | ssm
    conv) 2x(
    ssm  # the tail
)
"""


def test_names_comments_and_lines_are_kept_spacing_and_order_normalised():
    assert format_source(MESSY) == TIDY
    assert format_source(TIDY) == TIDY


def test_roll_rolls_runs_and_never_unrolls_what_the_author_rolled():
    # `ssm ssm` and `mlp mlp` are as short as 2x(...): equal cost keeps the author's text
    assert (
        format_source("2x(ssm ssm) attn attn attn  # c\nmlp mlp", roll=True) == "2x(ssm ssm) 3x(attn)  # c\nmlp mlp\n"
    )
    assert format_source("(attn mlp) (attn mlp) (attn mlp) 8x(ssm)", roll=True) == "3x(attn mlp) 8x(ssm)\n"
    assert format_source("ssm ssm ssm attn ssm ssm ssm attn", roll=True) == "2x(3x(ssm) attn)\n"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_keep_every_comment_and_mean_the_same_model(path):
    source = path.read_text()
    out = format_source(source)
    assert [line for line in out.splitlines() if line.startswith("#")] == [
        line.rstrip() for line in source.splitlines() if line.startswith("#")
    ]
    assert archdsl.parse(out) == archdsl.parse(source)
    assert format_source(out) == out


def test_fmt_write_keeps_the_authors_text(tmp_path):
    path = tmp_path / "m.arch"
    path.write_text(MESSY)
    result = CliRunner().invoke(app, ["fmt", "--write", str(path)])
    assert result.exit_code == 0 and path.read_text() == TIDY, result.output
    again = CliRunner().invoke(app, ["fmt", "--write", str(path)])
    assert "already formatted" in again.output
    canonical = CliRunner().invoke(app, ["fmt", "--canonical", str(path)])
    assert canonical.output.startswith("model d_model=256 vocab=1000\nlet glob = shared(attn mlp)\n")


@pytest.mark.parametrize(
    "source, expected",
    [
        ("2x(  # why\n\n\n  ssm\n  mlp\n)", "2x(  # why\n\n    ssm\n    mlp\n)\n"),
        ("(attn |  # b\n ssm)", "(attn |  # b\n    ssm)\n"),
        ("(attn\n| ssm\n| conv)", "(attn\n    | ssm\n    | conv)\n"),
        ("let a = ssm;let b = a a;b", "let a = ssm; let b = a a; b\n"),
        ("\n\n\nssm\t\t#tab\t\n\n\n", "ssm  #tab\n"),
        ("1_000x(shared  (attn))", "1000x(shared(attn))\n"),
    ],
)
def test_layout_inside_parentheses(source, expected):
    assert format_source(source) == expected
    assert format_source(expected) == expected


def test_invalid_programs_are_not_formatted():
    with pytest.raises(archdsl.ArchDSLError, match="unknown layer 'atn'"):
        format_source("# c\natn")


SPACES = st.sampled_from([" ", "  ", "\t"])


@st.composite
def layouts(draw):
    """A valid program with random spacing, comments and blank lines."""
    items = draw(st.lists(st.sampled_from(["ssm", "attn window=64 heads=2", "mlp", "2x(conv mlp)", "(attn | ssm)"]),
                          min_size=1, max_size=5))  # fmt: skip
    lines = []
    if draw(st.booleans()):
        lines.append("# head" + draw(SPACES))
    if draw(st.booleans()):
        lines.append("model" + draw(SPACES) + "vocab=64" + draw(SPACES) + "d_model=64")
    lines.append("let b =" + draw(SPACES) + draw(SPACES).join(items) + draw(st.sampled_from(["", "  # why"])))
    lines += [""] * draw(st.integers(0, 3))
    lines.append(draw(SPACES).join(["b", *items]) + draw(SPACES))
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\n\n"]))


@settings(max_examples=30, deadline=None)
@given(layouts(), st.booleans())
def test_format_is_idempotent_and_means_the_same_model(source, roll):
    out = format_source(source, roll=roll)
    assert format_source(out, roll=roll) == out
    assert out.count("#") == source.count("#")
    assert archdsl.parse(out).layers() == archdsl.parse(source).layers()
