"""Budgets: the text, its units, its errors (pinned messages with a caret), and checking."""

from __future__ import annotations

import dataclasses

import pytest

import archdsl
from archdsl.costing import Budget, cost, parse_size, parse_sizes
from archdsl.errors import ArchDSLError, BudgetError

LLAMA = "4x(attn heads=8 kv_heads=2 mlp)"


def spec(text: str = LLAMA):
    return archdsl.parse(text, d_model=512, vocab=1000)


def test_parse_reads_keys_lengths_operators_and_units():
    b = Budget.parse("params<=20M, train_flops/token < 2G  state@32k<=64MiB kv@1M>=1KB layers==8 nonemb_params>7B")
    got = [(x.key, x.at, x.op, x.value) for x in b.limits]
    assert got == [
        ("params", None, "<=", 20e6),
        ("train_flops/token", None, "<", 2e9),
        ("state", 32768, "<=", 64 * 2**20),
        ("kv", 2**20, ">=", 1e3),
        ("layers", None, "==", 8),
        ("nonemb_params", None, ">", 7e9),
    ]
    assert str(b) == "params<=20M train_flops/token < 2G state@32k<=64MiB kv@1M>=1KB layers==8 nonemb_params>7B"


def test_budget_is_immutable_and_aliases_resolve():
    b = Budget.parse("non_embedding_params<=1.5e6 act_mem@4k<=2GiB decode_flops/token@8k<=1G train_mem<=1TB")
    assert [x.key for x in b.limits] == ["nonemb_params", "act_mem", "decode_flops/token", "train_mem"]
    assert b.limits[0].value == 1.5e6 and b.limits[1].value == 2 * 2**30 and b.limits[3].value == 1e12
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.text = "params<=1"  # type: ignore[misc]
    assert Budget.parse("").limits == Budget.parse("  ,  ").limits == ()


def test_sizes_are_binary_and_reject_zero_negative_and_garbage():
    assert [parse_size(s) for s in ("2048", "2k", "128k", "1M", "1.5k")] == [2048, 2048, 131072, 2**20, 1536]
    assert parse_sizes("2k, 8k,32k") == [2048, 8192, 32768]
    for bad in ("0", "-2k", "2x", "k", "0.5"):
        with pytest.raises(BudgetError):
            parse_size(bad)


@pytest.mark.parametrize(
    "text, message, caret_col, caret_len",
    [
        ("params<=20M flopz<=1G", "unknown budget key 'flopz'", 13, 5),
        ("params<=20M prams<=1G", "unknown budget key 'prams' (did you mean 'params'?)", 13, 5),
        ("params<=20Q", "unknown unit 'Q'; 'params' takes counts: K, M, B or G, T, P", 11, 1),
        ("params<=20MiB", "'params' is measured in counts", 11, 3),
        ("state@32k<=64M", "'state' is measured in bytes", 14, 1),
        ("state@0<=1GiB", "'0' is not a positive whole number of tokens", 7, 1),
        ("state@-4k<=1GiB", "'-4k' is not a length", 7, 3),
        ("params@4k<=1M", "'params' does not depend on a length", 7, 3),
        ("params=<1M", "expected a comparison: <=, <, >=, > or ==", 7, 1),
        ("params<=", "expected a number after '<='", 9, 1),
        ("params<=-1", "limits are non-negative numbers", 9, 1),
        ("params<=1M;layers<=4", "expected a space or a comma after a limit", 11, 1),
        ("<=1M", "expected a budget key", 1, 1),
        ("state@0.1k<=1GiB", "'0.1k' is not a positive whole number of tokens", 7, 4),
    ],
    ids=[
        "unknown-key",
        "misspelt-key",
        "unknown-unit",
        "bytes-on-count",
        "count-on-bytes",
        "zero-length",
        "negative-length",
        "length-on-params",
        "bad-operator",
        "missing-number",
        "negative-limit",
        "bad-separator",
        "no-key",
        "fractional-length",
    ],  # fmt: skip
)
def test_errors_point_at_the_bad_part(text, message, caret_col, caret_len):
    with pytest.raises(BudgetError) as info:
        Budget.parse(text)
    err = info.value
    assert isinstance(err, ArchDSLError)
    assert message in err.message
    assert (err.span.line, err.span.column) == (1, caret_col)
    rendered = str(err)
    assert rendered.startswith(f"budget:1:{caret_col}: error: ")
    assert rendered.endswith(f"    {text}\n    {' ' * (caret_col - 1)}{'^' * caret_len}")


def test_unknown_key_lists_the_known_keys():
    with pytest.raises(BudgetError, match=r"known keys: params, nonemb_params, layers, fwd_flops/token@LEN"):
        Budget.parse("flops<=1G")


def test_check_measures_against_an_independent_count():
    s = spec()
    c = cost(s, seq_len=2048)
    # the Llama KV cache by hand: layers x (K, V) x kv_heads x head_dim x positions x bf16
    kv_32k = 4 * 2 * 2 * 64 * 32768 * 2
    b = Budget.parse(f"params<={c.params} layers==8 kv@32k<={kv_32k} state@32k<{kv_32k}")
    result = b.check(c)
    assert not result.ok and not result
    (broken,) = list(result)
    assert broken.limit.key == "state" and broken.value == kv_32k and broken.ratio == 1.0
    assert dict((limit.key, v) for limit, v in result.values)["layers"] == 8


def test_check_reports_how_much_over():
    result = Budget.parse("params<=1M train_flops/token@8k<=1K").check(spec())
    assert [v.limit.key for v in result] == ["params", "train_flops/token"]
    params, flops = result.violations
    assert params.value == cost(spec()).params and params.ratio == params.value / 1e6
    assert flops.value == cost(spec(), seq_len=8192).train_flops
    assert flops.over == flops.value - 1e3
    assert "params<=1M: measured" in str(params) and "over budget" in str(result)


def test_check_accepts_specs_text_and_costs_alike():
    b = Budget.parse("params<=100M state@4k<=16MiB")
    assert b.check(spec()) and b.check(LLAMA) and b.check(cost(spec()))
    assert b.allows(archdsl.to_graph(spec()))
    assert not Budget.parse("state@64k<=1MiB").check("8x(attn mlp)")


def test_lengths_follow_the_cost_unless_written():
    c = cost(spec(), seq_len=1024, batch=4)
    b = Budget.parse("act_mem<=1PB act_mem@8k<=1PB fwd_flops/token<=1P")
    values = [v for _, v in b.check(c).values]
    assert values[0] == c.activation_memory
    assert values[1] == cost(spec(), seq_len=8192, batch=4).activation_memory
    assert values[2] == c.forward_flops
    # asking for another batch recomputes
    assert b.check(c, batch=1).values[0][1] == cost(spec(), seq_len=1024).activation_memory


def test_lengths_are_shown_in_binary_units():
    from archdsl.costing.budget import format_length

    assert [format_length(n) for n in (2048, 3 * 1024**2, 3000, 2 * 1025, 1024)] == ["2k", "3M", "3000", "2050", "1k"]
