"""The parser alone: text -> AST, positions, values, layout, limits (no resolver involved)."""

from __future__ import annotations

import pytest
from lark import Lark
from lark.common import ParserConf
from lark.exceptions import GrammarError
from lark.parsers.lalr_analysis import LALR_Analyzer

from archdsl.errors import DSLSyntaxError
from archdsl.syntax import ast, grammar_path, parse_program
from archdsl.syntax.parser import MAX_DEPTH, _lark, build_lark

DESIGN_EXAMPLE = """\
model d_model=512 vocab=32000 tie_embeddings=true

let mamba = ssm state=64 mlp                 # a named block: two sub-layers
let local = attn window=512 heads=8 kv_heads=2 mlp
let glob  = shared(attn mlp)                 # every use of `glob` is the same weights (Zamba)
let hymba = (attn heads=4 | ssm) mlp         # parallel branches, outputs summed (Hymba, Falcon-H1)

6x(3x(mamba) local) glob
"""


def body(text: str) -> tuple[ast.Expr, ...]:
    return parse_program(text).body.items


def call(name: str, **params) -> ast.Call:
    """A Call to compare against (spans do not take part in equality)."""
    span = ast.Span(1, 1, 1, 1)
    return ast.Call(name, tuple(ast.Param(k, v, span) for k, v in params.items()), span)


def seq(*items: ast.Expr) -> ast.Seq:
    return ast.Seq(tuple(items), ast.Span(1, 1, 1, 1))


def where(node) -> tuple[int, int, int, int]:
    return node.span.line, node.span.column, node.span.end_line, node.span.end_column


# --- the grammar --------------------------------------------------------------------------------


def test_grammar_is_found_in_the_source_checkout():
    path = grammar_path()
    assert path.name == "archdsl.lark" and path.is_file()


def test_grammar_is_loaded_once_per_process():
    assert _lark() is _lark()


def test_grammar_has_no_lalr_conflicts():
    # lark's strict mode needs `interegular` for its terminal check; the table check does not,
    # so run it here whatever is installed. The control grammar proves the check is live.
    def analyse(lark: Lark) -> None:
        _, rules, _ = lark.grammar.compile(lark.options.start, set())
        LALR_Analyzer(ParserConf(rules, {}, lark.options.start), strict=True).compute_lalr()

    analyse(build_lark(cache=False))  # a parser loaded from the cache has tables but no grammar
    ambiguous = Lark('start: e\ne: e "+" e | "x"', parser="lalr")  # lark alone would shift
    with pytest.raises(GrammarError):
        analyse(ambiguous)


# --- structure ----------------------------------------------------------------------------------


def test_one_liner_is_a_complete_program():
    prog = parse_program("4x(ssm) 1x(attn window=512)")
    assert prog.header is None and prog.lets == ()
    assert prog.body == seq(
        ast.Repeat(4, seq(call("ssm")), prog.body.span),
        ast.Repeat(1, seq(call("attn", window=512)), prog.body.span),
    )


def test_design_example_parses_to_header_lets_and_body():
    prog = parse_program(DESIGN_EXAMPLE, "design.arch")
    assert [(p.key, p.value) for p in prog.header.params] == [
        ("d_model", 512),
        ("vocab", 32000),
        ("tie_embeddings", True),
    ]
    assert [let.name for let in prog.lets] == ["mamba", "local", "glob", "hymba"]
    assert prog.lets[0].body == seq(call("ssm", state=64), call("mlp"))
    assert prog.lets[1].body == seq(call("attn", window=512, heads=8, kv_heads=2), call("mlp"))
    assert prog.lets[2].body == seq(ast.Shared(seq(call("attn"), call("mlp")), prog.span))
    parallel = prog.lets[3].body.items[0]
    assert isinstance(parallel, ast.Parallel)
    assert parallel.branches == (seq(call("attn", heads=4)), seq(call("ssm")))
    outer = prog.body.items[0]
    assert isinstance(outer, ast.Repeat) and outer.count == 6
    assert outer.body == seq(ast.Repeat(3, seq(call("mamba")), prog.span), call("local"))
    assert prog.body.items[1] == call("glob")
    assert prog.span.file == "design.arch" and outer.span.file == "design.arch"


def test_a_name_before_equals_is_a_parameter_and_otherwise_a_new_call():
    assert body("attn window=512 mlp") == (call("attn", window=512), call("mlp"))
    assert body("attn window = 512 heads=8 mlp hidden=64") == (
        call("attn", window=512, heads=8),
        call("mlp", hidden=64),
    )


def test_parentheses_group_parallel_and_shared():
    group, parallel, shared = body("(ssm mlp) (attn | ssm mlp | mlp) shared(attn)")
    assert group == ast.Group(seq(call("ssm"), call("mlp")), group.span)
    assert parallel == ast.Parallel((seq(call("attn")), seq(call("ssm"), call("mlp")), seq(call("mlp"))), parallel.span)
    assert shared == ast.Shared(seq(call("attn")), shared.span)


def test_repeat_of_branches_is_a_repeat_of_one_parallel():
    (rep,) = body("4x(attn | ssm)")
    assert rep == ast.Repeat(4, seq(ast.Parallel((seq(call("attn")), seq(call("ssm"))), rep.span)), rep.span)
    assert where(rep.body.items[0]) == (1, 4, 1, 14)


def test_repeats_nest_and_accept_a_space_before_the_parenthesis():
    (outer,) = body("2x(3x (ssm) attn)")
    assert outer.count == 2 and outer.body.items[0].count == 3


def test_repeat_counts_are_carried_as_written_for_the_resolver_to_judge():
    counts = [item.count for item in body("0x(ssm) -1x(ssm) 1_000x(ssm) 99999999999999999999x(ssm)")]
    assert counts == [0, -1, 1000, 99999999999999999999]
    (rep,) = body("  12x(ssm)")
    assert (rep.count_span.column, rep.count_span.end_column) == (3, 5)  # the digits, not the 'x'


@pytest.mark.parametrize(
    "text, value",
    [
        ("512", 512),
        ("1_024", 1024),
        ("-3", -3),
        ("+7", 7),
        ("0.5", 0.5),
        ("1e-5", 1e-5),
        ("1.5E+3", 1500.0),
        ("500_000.0", 500000.0),
        ("true", True),
        ("false", False),
        ("silu", "silu"),
        ("trueish", "trueish"),
    ],
)
def test_values(text, value):
    (c,) = body(f"layer v={text}")
    got = c.params[0].value
    assert got == value and type(got) is type(value)


# --- positions ----------------------------------------------------------------------------------


def test_spans_are_one_based_with_exclusive_ends():
    (rep, attn) = body("4x(ssm) attn window=512")
    assert where(rep) == (1, 1, 1, 8)
    assert where(rep.body.items[0]) == (1, 4, 1, 7)
    assert where(attn) == (1, 9, 1, 24)
    param = attn.params[0]
    assert where(param) == (1, 14, 1, 24)
    assert (param.value_span.column, param.value_span.end_column) == (21, 24)


def test_multi_line_spans_and_let_spans():
    prog = parse_program("let a = (ssm\n   | attn)\na")
    assert where(prog.lets[0]) == (1, 1, 2, 11)
    assert where(prog.lets[0].body.items[0]) == (1, 9, 2, 11)
    assert where(prog.body.items[0]) == (3, 1, 3, 2)


@pytest.mark.parametrize("newline", ["\r\n", "\r"], ids=["crlf", "lone-cr"])
def test_windows_and_old_mac_line_endings_keep_positions(newline):
    text = newline.join(["model d_model=256", "let b = ssm mlp", "  4x(b) attn", ""])
    prog = parse_program(text)
    rep, attn = prog.body.items
    assert where(rep) == (3, 3, 3, 8)
    assert where(attn) == (3, 9, 3, 13)


def test_bytes_input_and_byte_order_mark():
    prog = parse_program("\ufeffattn heads=2".encode())
    assert prog.body.items == (call("attn", heads=2),)
    assert where(prog.body.items[0]) == (1, 1, 1, 13)  # the BOM takes no column
    assert parse_program("\ufeffssm").body.items == (call("ssm"),)


# --- layout ---------------------------------------------------------------------------------------


def test_comments_and_blank_lines_are_whitespace():
    text = "# header comment\n\nmodel d_model=64  # width\n\n# a block\nlet b = ssm # trailing\n\n b  # use\n# end"
    prog = parse_program(text)
    assert prog.lets[0].body == seq(call("ssm")) and prog.body == seq(call("b"))


def test_the_stack_may_span_several_lines():
    assert body("ssm\nattn\n\n2x(mlp)") == body("ssm attn 2x(mlp)")


def test_newlines_inside_parentheses_are_whitespace_even_in_a_let():
    prog = parse_program("let h = (attn heads=4\n         | ssm)\n        mlp\nh")
    # `mlp` on the third line is the stack, not part of the let: a let ends with its line
    assert prog.lets[0].body.items[0].branches == (seq(call("attn", heads=4)), seq(call("ssm")))
    assert prog.body == seq(call("mlp"), call("h"))


def test_semicolons_end_header_and_let_lines():
    prog = parse_program("model d_model=64; let b = ssm mlp; let c = attn;; 2x(b) c;")
    assert [let.name for let in prog.lets] == ["b", "c"]
    assert prog.body == seq(ast.Repeat(2, seq(call("b")), prog.span), call("c"))


def test_header_may_share_the_line_with_the_stack():
    prog = parse_program("model d_model=64 4x(ssm)")
    assert prog.header.params[0].value == 64 and len(prog.body.items) == 1


def test_equality_ignores_spans_and_layout():
    a = parse_program("4x(ssm mlp)   attn")
    b = parse_program("# same\n4x( ssm\n mlp )\n\nattn\n")
    assert a == b


# --- limits -----------------------------------------------------------------------------------------


def test_nesting_up_to_the_limit_parses():
    text = "(" * MAX_DEPTH + "ssm" + ")" * MAX_DEPTH
    node = body(text)[0]
    for _ in range(MAX_DEPTH - 1):
        node = node.body.items[0]
    assert node.body.items == (call("ssm"),)


DEEP = "2x(" * 10_000 + "ssm" + ")" * 10_000
LONG = " ".join(["ssm state=64 mlp attn"] * 3000)


def test_nesting_past_the_limit_is_refused_at_the_offending_parenthesis():
    # how quickly: tests/test_timing_bounds.py (pytest -m timing)
    with pytest.raises(DSLSyntaxError, match="nested more than 64 deep") as info:
        parse_program(DEEP)
    assert (info.value.span.line, info.value.span.column) == (1, 3 * MAX_DEPTH + 3)


def test_a_long_flat_program_parses():
    assert len(body(LONG)) == 9000


def test_a_number_too_long_to_convert_is_a_syntax_error_not_a_crash():
    with pytest.raises(DSLSyntaxError, match="number too long"):
        parse_program("9" * 5000 + "x(ssm)")
    with pytest.raises(DSLSyntaxError, match="too large for a float"):
        parse_program("attn rope_theta=1e999")
