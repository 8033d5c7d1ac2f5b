"""Bad search spaces: each a positioned ArchDSLError (line, column, caret), never a traceback.
Their speed (well under 100 ms each) is measured in benchmarks/bench_space.py, not here."""

from __future__ import annotations

import pytest

import archdsl
from archdsl.errors import ArchDSLError, DSLSyntaxError, LimitError, ResolveError

CASES = [
    ("attn window={256, 512", DSLSyntaxError, r"expected '\}' to close the choice opened at 1:13", 1, 22, "unclosed"),
    ("{ssm, attn", DSLSyntaxError, r"expected '\}' to close the choice opened at 1:1", 1, 11, "unclosed-layer"),
    ("attn window={256, 512)", DSLSyntaxError, r"unexpected '\)': expected '\}'", 1, 22, "brace-closed-by-paren"),
    ("attn window={}", DSLSyntaxError, r"empty choice", 1, 14, "empty-value-choice"),
    ("ssm {}", DSLSyntaxError, r"empty choice", 1, 6, "empty-layer-choice"),
    ("{ssm, }", DSLSyntaxError, r"empty option", 1, 7, "empty-option"),
    ("attn window={512..256}", ResolveError, r"the low end is above the high end", 1, 14, "range-low-above-high"),
    ("model norm_eps={0.0..1e-4 log}\nssm", ResolveError, r"log-scaled range must stay above zero", 1, 17, "log-zero"),
    ("model norm_eps={-1e-3..1e-4 log}\nssm", ResolveError, r"above zero", 1, 17, "log-through-zero"),
    ("ssm state={16..100 step=16}", ResolveError, r"does not reach 100 .* end the range at 96", 1, 16, "step-off-grid"),
    ("ssm state={16..128 step=0}", ResolveError, r"step of a range must be positive", 1, 20, "step-zero"),
    ("ssm state={16..128 by=4}", DSLSyntaxError, r"unknown range option 'by'", 1, 20, "range-option"),
    ("{0, 2}x(ssm)", ResolveError, r"repeat counts must be at least 1, got 0", 1, 2, "count-zero"),
    ("{2, -1}x(ssm)", ResolveError, r"at least 1, got -1", 1, 5, "count-negative"),
    ("{0..4}x(ssm)", ResolveError, r"this range starts at 0", 1, 2, "count-range-zero"),
    ("{2.5, 3}x(ssm)", ResolveError, r"a repeat count is a whole number, not 2.5", 1, 2, "count-float"),
    ("attn window={256, 256}", ResolveError, r"duplicate option 256", 1, 19, "duplicate-value"),
    ("{ssm, attn, ssm}", ResolveError, r"duplicate option", 1, 13, "duplicate-layer"),
    (
        "let m = {ssm, attn}\nm attn window=m",
        ResolveError,
        r"used both as a layer .* and as a parameter value",
        2,
        15,
        "two-types",
    ),
    ("let w = {256, 512}\nw attn", ResolveError, r"'w' is a named value choice", 2, 1, "value-as-layer"),
    ("{256, 512} ssm", ResolveError, r"a value choice cannot stand in the stack", 1, 1, "bare-values"),
    ("{ssm, atn}", ResolveError, r"unknown layer 'atn' \(did you mean 'attn'\?\)", 1, 7, "unknown-layer-option"),
    ("attn windw={64, 128}", ResolveError, r"no parameter 'windw' \(did you mean 'window'\?\)", 1, 6, "unknown-param"),
    ("attn window={64, -1}", ResolveError, r"window=-1 must be at least 1", 1, 18, "bad-option-value"),
    ("let m = {ssm, attn heads={4, 5}}\nm", ResolveError, r"heads=5", 1, 30, "nested-option-in-let"),
    ("model d_model={64, 7}\nssm", ResolveError, r"d_model=7", 1, 20, "header-option"),
    ("20000x each({ssm})", LimitError, r"more than the limit of 10,000 choice sites", 1, 1, "too-many-sites"),
    ("100000x each({ssm, attn})", LimitError, r"about 10\^30103 layouts", 1, 1, "far-too-large"),
    ("5000x each({ssm, attn, gdn})", LimitError, r"layouts, more than the limit of 10\^1000", 1, 1, "too-large"),
    ("{1..100000}x(100x(ssm))", LimitError, r"unrolls to 10,000,000 layer calls", 1, 1, "too-many-layers"),
    ("x" + "{a, " * 20 + "ssm" + "}" * 20, LimitError, r"choices nested more than 16 deep", 1, 66, "too-deep"),
    ("{" * 70 + "ssm" + "}" * 70, DSLSyntaxError, r"nested more than 64 deep", 1, 65, "braces-too-deep"),
    ("ssm state=16..128", DSLSyntaxError, r"a range is written inside braces", 1, 13, "bare-range"),
    ("4x each ssm", DSLSyntaxError, r"expected '\('", 1, 9, "each-without-paren"),
    ("{2, 4} x(ssm)", ResolveError, r"written \{2, 4\}x\(...\), with no space before the x", 1, 1, "count-apart"),
]


@pytest.mark.parametrize("text, error, message, line, column", [pytest.param(*c[:5], id=c[5]) for c in CASES])
def test_bad_space_is_a_positioned_error(text, error, message, line, column):
    with pytest.raises(ArchDSLError, match=message) as info:
        archdsl.parse_space(text, filename="space.arch")
    err = info.value
    assert isinstance(err, error), type(err)
    assert (err.span.line, err.span.column) == (line, column), str(err)
    assert err.span.file == "space.arch"
    rendered = str(err)
    assert rendered.startswith(f"space.arch:{line}:{column}: error: ")
    assert "^" in rendered.splitlines()[-1]  # the caret line


def test_parse_points_at_the_choice_and_names_parse_space():
    with pytest.raises(DSLSyntaxError) as info:
        archdsl.parse("model d_model=64\nlet m = {ssm, attn}\n4x(m)", filename="a.arch")
    assert (info.value.span.line, info.value.span.column) == (2, 9)
    assert "archdsl.parse_space" in str(info.value)
