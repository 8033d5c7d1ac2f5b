"""Bad input, one named case each, with the message and the position pinned.

Syntax errors come from archdsl/syntax (parser and _messages); name, parameter and limit errors
from the resolver (archdsl/spec/resolve.py). Both reach the user through ``archdsl.parse``.
"""

from __future__ import annotations

import pytest

import archdsl
from archdsl.errors import CONTEXT_WIDTH, ArchDSLError, DSLSyntaxError, LimitError, ParameterError, ResolveError

LET_CHAIN = "\n".join(["let a0 = ssm", *(f"let a{i} = 1x(a{i - 1})" for i in range(1, 100)), "a99"])
DEEP = "(" * 65 + "ssm" + ")" * 65

CASES = [
    # --- syntax ------------------------------------------------------------------------------
    pytest.param(
        "4x(ssm attn", DSLSyntaxError, r"expected '\)' to close '4x\(' opened at 1:3", 1, 12, id="missing-close-paren"
    ),
    pytest.param(
        "let b = (attn |\n  ssm\nb",
        DSLSyntaxError,
        r"expected '\)' to close '\(' opened at 1:9",
        3,
        2,
        id="missing-close-paren-multiline",
    ),
    pytest.param(
        "ssm)", DSLSyntaxError, r"unexpected '\)': there is no '\(' to close", 1, 4, id="unmatched-close-paren"
    ),
    pytest.param(
        "attn window=512 =3",
        DSLSyntaxError,
        r"unexpected '=': a parameter needs a name before '=' \(as in window=512\)",
        1,
        17,
        id="stray-equals",
    ),
    pytest.param("=512", DSLSyntaxError, r"unexpected '=': a parameter needs a name", 1, 1, id="leading-equals"),
    pytest.param(
        "4x(window=512)",
        DSLSyntaxError,
        r"unexpected 'window=': a parameter \(key=value\) must follow a layer name",
        1,
        4,
        id="parameter-without-layer",
    ),
    pytest.param(
        "attn window=",
        DSLSyntaxError,
        r"expected a value after 'window=' \(a number, true, false or a name\), found the end of the input",
        1,
        13,
        id="missing-value",
    ),
    pytest.param("attn @ mlp", DSLSyntaxError, r"unexpected character '@'", 1, 6, id="unknown-character"),
    pytest.param(
        "attñ",
        DSLSyntaxError,
        r"unexpected character 'ñ': names use ASCII letters, digits and '_'",
        1,
        4,
        id="non-ascii-name",
    ),
    pytest.param(
        'attn act="silu"',
        DSLSyntaxError,
        r"unexpected quote: names and values are written without quotes",
        1,
        10,
        id="quoted-value",
    ),
    pytest.param(
        "ssm, attn", DSLSyntaxError, r"unexpected ',': items and parameters are separated by spaces", 1, 4, id="comma"
    ),
    pytest.param(
        "attn window=512abc",
        DSLSyntaxError,
        r"unexpected 'abc' right after '512': put a space between them",
        1,
        16,
        id="number-glued-to-name",
    ),
    pytest.param(
        "4x()", DSLSyntaxError, r"empty parentheses: expected a layer call inside '4x\( \)'", 1, 4, id="empty-repeat"
    ),
    pytest.param(
        "(attn | )",
        DSLSyntaxError,
        r"empty branch: expected a layer call between '\|' and '\)'",
        1,
        9,
        id="empty-branch",
    ),
    pytest.param(
        "attn | ssm",
        DSLSyntaxError,
        r"unexpected '\|': parallel branches go inside parentheses, as in \(attn \| ssm\)",
        1,
        6,
        id="bar-outside-parentheses",
    ),
    pytest.param(
        "4x ssm",
        DSLSyntaxError,
        r"expected '\(' after '4x', as in 4x\(ssm\); found 'ssm'",
        1,
        4,
        id="repeat-without-parenthesis",
    ),
    pytest.param(
        "4 x(ssm)",
        DSLSyntaxError,
        r"unexpected number 4: write a repeat as 4x\(\.\.\.\) and a parameter as key=4",
        1,
        1,
        id="space-inside-repeat-count",
    ),
    pytest.param(
        "shared attn",
        DSLSyntaxError,
        r"expected '\(' after 'shared', as in shared\(attn mlp\); found 'attn'",
        1,
        8,
        id="shared-without-parenthesis",
    ),
    pytest.param(
        "let b ssm\nb",
        DSLSyntaxError,
        r"expected '=' after 'let b', as in let b = ssm mlp",
        1,
        5,
        id="let-without-equals",
    ),
    pytest.param(
        "let b =\n  ssm mlp\nb",
        DSLSyntaxError,
        r"expected a layer call after 'let b =' on the same line",
        1,
        8,
        id="let-body-on-next-line",
    ),
    pytest.param(
        "ssm\nlet b = mlp",
        DSLSyntaxError,
        r"'let' definitions must come before the stack expression",
        2,
        1,
        id="let-after-stack",
    ),
    pytest.param(
        "ssm\nmodel d_model=64", DSLSyntaxError, r"the 'model' header must come first", 2, 1, id="model-not-first"
    ),
    pytest.param(
        "let b = ssm mlp",
        DSLSyntaxError,
        r"missing stack expression: after the 'let' definitions .* as in 4x\(b\)",
        1,
        16,
        id="missing-stack",
    ),
    pytest.param(
        "attn window={256, 512}",
        DSLSyntaxError,
        r"search space, not one architecture: read it with archdsl.parse_space",
        1,
        13,
        id="search-value-choice",
    ),
    pytest.param(
        "{2, 4}x(ssm)",
        DSLSyntaxError,
        r"search choices \(\{...\}\), so it is a search space",
        1,
        1,
        id="search-count-choice",
    ),
    pytest.param(
        "{ssm, attn window=256}",
        DSLSyntaxError,
        r"use|read it with archdsl.parse_space",
        1,
        1,
        id="search-layer-choice",
    ),
    pytest.param(
        "ssm state=16..128",
        DSLSyntaxError,
        r"unexpected '\.\.': a range is written inside braces between two numbers, as in state=\{16\.\.128\}",
        1,
        13,
        id="search-range",
    ),
    pytest.param(
        "",
        DSLSyntaxError,
        r"empty program: expected a layer call such as 'attn' or '4x\(ssm\)'",
        1,
        1,
        id="empty-input",
    ),
    pytest.param("# nothing here\n\n   # nor here\n", DSLSyntaxError, r"empty program", 1, 1, id="comment-only"),
    pytest.param(" \n\t\n ", DSLSyntaxError, r"empty program", 1, 1, id="whitespace-only"),
    pytest.param(
        b"4x(ssm)\n  attn \xff",
        DSLSyntaxError,
        r"not valid UTF-8: byte 0xff cannot be decoded",
        2,
        8,
        id="non-utf8-bytes",
    ),
    pytest.param(DEEP, DSLSyntaxError, r"parentheses nested more than 64 deep", 1, 65, id="absurd-nesting"),
    # --- names and parameters (resolver) -------------------------------------------------------
    pytest.param(
        "4x(ssm) atn",
        ResolveError,
        r"unknown layer 'atn' \(did you mean 'attn'\?\); known layers: .*attn",
        1,
        9,
        id="unknown-layer",
    ),
    pytest.param(
        "attn heads=8 windw=512",
        ParameterError,
        r"layer 'attn' has no parameter 'windw' \(did you mean 'window'\?\)",
        1,
        14,
        id="unknown-parameter",
    ),
    pytest.param(
        "attn heads=1.5", ParameterError, r"parameter 'heads=1\.5': expected a valid integer", 1, 12, id="float-for-int"
    ),
    pytest.param(
        "attn heads=true", ParameterError, r"parameter 'heads=true': expected a valid integer", 1, 12, id="bool-for-int"
    ),
    pytest.param(
        "attn qk_norm=1", ParameterError, r"parameter 'qk_norm=1': expected a valid boolean", 1, 14, id="int-for-bool"
    ),
    pytest.param(
        "ssm state=0",
        ParameterError,
        r"parameter 'state=0': expected greater than or equal to 1",
        1,
        11,
        id="value-out-of-range",
    ),
    pytest.param(
        "attn heads=3", ParameterError, r"heads=3 does not divide d_model=512", 1, 12, id="value-does-not-fit-the-model"
    ),
    pytest.param(
        "attn heads=2 heads=4", ParameterError, r"parameter 'heads' is given twice", 1, 14, id="parameter-twice"
    ),
    pytest.param(
        "model d_modle=64\nssm",
        ParameterError,
        r"unknown model setting 'd_modle' \(did you mean 'd_model'\?\)",
        1,
        7,
        id="unknown-model-setting",
    ),
    pytest.param(
        "let block = ssm mlp\n4x(blok)",
        ResolveError,
        r"unknown layer or let name 'blok' \(did you mean 'block'\?\)",
        2,
        4,
        id="undefined-let",
    ),
    pytest.param(
        "let a = ssm a\na", ResolveError, r"'a' is defined in terms of itself \(a -> a\)", 1, 13, id="recursive-let"
    ),
    pytest.param(
        "let a = b\nlet b = mlp a\na",
        ResolveError,
        r"'b' is defined later \(at 2:1\); a let can use only the lets defined above it",
        1,
        9,
        id="let-uses-a-later-let",
    ),
    pytest.param(
        "let b = ssm\nb state=4",
        ResolveError,
        r"'b' is a let name and takes no parameters",
        2,
        3,
        id="parameters-on-let-name",
    ),
    pytest.param("ssm 0x(attn)", ResolveError, r"repeat count must be at least 1, got 0", 1, 5, id="zero-repeat"),
    pytest.param("-1x(ssm)", ResolveError, r"repeat count must be at least 1, got -1", 1, 1, id="negative-repeat"),
    # --- limits (resolver) ------------------------------------------------------------------------
    pytest.param(
        "99999999999999999999x(ssm)",
        LimitError,
        r"repeat count 99999999999999999999 is larger than the limit",
        1,
        1,
        id="absurd-repeat-count",
    ),
    pytest.param(
        "1000x(1000x(1000x(ssm)))",
        LimitError,
        r"unrolls to 1,000,000 layer calls, more than the limit",
        1,
        7,
        id="absurd-total-layers",
    ),
    pytest.param(
        "let a = 100x(ssm)\nlet b = 100x(a)\nlet c = 100x(b)\nc",
        LimitError,
        r"unrolls to 1,000,000 layer calls",
        3,
        9,
        id="absurd-total-through-lets",
    ),
    pytest.param(LET_CHAIN, LimitError, r"nesting deeper than 64 levels", 68, 11, id="absurd-nesting-through-lets"),
]


@pytest.mark.parametrize("text, error, message, line, column", CASES)
def test_bad_input_is_refused_with_a_positioned_message(text, error, message, line, column):
    # how quickly (before anything is built): tests/test_timing_bounds.py (pytest -m timing)
    with pytest.raises(ArchDSLError, match=message) as info:
        archdsl.parse(text, filename="bad.arch")
    err = info.value
    assert type(err) is error
    assert (err.span.line, err.span.column) == (line, column)
    assert err.span.file == "bad.arch"


@pytest.mark.parametrize("text, error, message, line, column", CASES)
def test_message_shows_file_line_column_the_line_and_a_caret(text, error, message, line, column):
    with pytest.raises(ArchDSLError) as info:
        archdsl.parse(text, filename="bad.arch")
    err = info.value
    first, *context = str(err).split("\n")
    assert first == f"bad.arch:{line}:{column}: error: {err.message}"
    if text == "":
        assert context == []  # no line to show
        return
    shown, caret = context
    assert caret.strip().startswith("^")
    caret_at = len(caret) - len(caret.lstrip())
    if not shown.startswith("    ..."):
        assert caret_at == 4 + column - 1
    else:  # a long line is shown cut around the caret, which still points at the same character
        source = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        assert shown[caret_at] == source.replace("\r\n", "\n").split("\n")[line - 1][column - 1]
        assert len(shown) <= 4 + CONTEXT_WIDTH + 6
    assert "\r" not in shown


def test_crlf_input_parses_and_errors_point_at_the_right_column():
    text = "model d_model=64\r\nlet b = ssm mlp\r\n4x(b) attn\r\n"
    assert [layer.type for layer in archdsl.parse(text).layers()] == ["ssm", "mlp"] * 4 + ["attn"]
    with pytest.raises(ResolveError) as info:
        archdsl.parse(text.replace("attn", "atn"), filename="win.arch")
    assert str(info.value) == (
        "win.arch:3:7: error: unknown layer or let name 'atn' (did you mean 'attn'?); known layers: "
        + ", ".join(archdsl.layers.list_layers())
        + "; let names: b\n    4x(b) atn\n          ^^^"
    )


def test_syntax_errors_never_escape_as_lark_errors():
    for text in ["(", ")", "|", "4x", "let", "model", "=", "let a =", "shared(", "a b=", ";", "4x(a|", "((a)"]:
        with pytest.raises(DSLSyntaxError) as info:
            archdsl.parse(text)
        assert info.value.span is not None and info.value.source is not None
        assert info.value.__cause__ is None and info.value.__suppress_context__
