"""render(): any sequence of decoder layers (calls with and without parameters, several variants
of one layer type, branches, shared blocks) is written as text that reads back as exactly those
sub-layers with exactly those parameters, and the text is rolled."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

import archdsl
from archdsl.interop.hf_export import to_hf_layer_types
from archdsl.interop.layout import Call, Layout, Parallel, Shared, render
from tests.interop.helpers import sublayers

CALLS = [
    Call("attn"),
    Call.of("attn", heads=4),
    Call.of("attn", heads=4, window=16),
    Call.of("attn", heads=2, window=32),
    Call("mlp"),
    Call.of("mlp", hidden=96),
    Call.of("ssm", state=8, head_dim=16),
    Call.of("moe", experts=4, top_k=1),
    Call("gdn"),
]
SHARED = [Shared(0, (CALLS[1], CALLS[5])), Shared(1, (CALLS[1], CALLS[5]))]
ITEMS = CALLS + SHARED + [Parallel(((CALLS[2],), (CALLS[6],)))]
blocks = st.lists(st.lists(st.sampled_from(ITEMS), min_size=1, max_size=3).map(tuple), min_size=1, max_size=12)


def _expected(layout: Layout) -> tuple[list, list[Call]]:
    """The structure ``sublayers`` gives (shared blocks numbered by first use) and the calls in order."""
    structure, calls, first_use = [], [], {}
    for block in layout.blocks:
        for item in block:
            if isinstance(item, Shared):
                number = first_use.setdefault(item.index, len(first_use))
                structure += [("shared", number, c.type) for c in item.body]
                calls += item.body
            elif isinstance(item, Parallel):
                structure.append(tuple(c.type for b in item.branches for c in b))
                calls += [c for b in item.branches for c in b]
            else:
                structure.append(item.type)
                calls.append(item)
    return structure, calls


def _structure(spec) -> list:
    groups: dict[str, int] = {}
    out = []
    for entry in sublayers(spec):
        if isinstance(entry, tuple) and entry[0] == "shared":
            entry = ("shared", groups.setdefault(entry[1], len(groups)), entry[2])
        out.append(entry)
    return out


@settings(max_examples=60)
@given(blocks)
def test_render_reads_back_as_the_same_sub_layers(block_list):
    layout = Layout(d_model=64, vocab=50, tie_embeddings=False, norm_eps=1e-5, blocks=block_list)
    spec = archdsl.parse(render(layout))
    structure, calls = _expected(layout)
    assert _structure(spec) == structure
    layers = spec.layers()
    assert [n.type for n in layers] == [c.type for c in calls]
    for node, call in zip(layers, calls):
        assert {k: getattr(node.params, k) for k, _ in call.params} == dict(call.params)
        if call.type == "attn":  # a call written without heads or window has the defaults (no let leaked in)
            assert (node.params.heads, node.params.window) == (
                dict(call.params).get("heads", 1),
                dict(call.params).get("window"),
            )


def test_a_repeated_layout_is_rolled():
    layout = Layout(
        64,
        50,
        False,
        1e-5,
        blocks=[(CALLS[6],)] * 3 + [(CALLS[1], CALLS[5])] + [(CALLS[6],)] * 3 + [(CALLS[1], CALLS[5])],
    )
    assert render(layout).splitlines()[-1] == "2x(3x(ssm) attn_mlp)"


@settings(max_examples=40)
@given(st.lists(st.sampled_from(["ssm", "attn", "mlp", "moe"]), min_size=1, max_size=30))
def test_nemotron_pattern_of_any_layout_reads_back(types):
    """export -> NemotronHConfig(hybrid_override_pattern) -> import: the same sub-layers."""
    spec = archdsl.parse(" ".join(types), d_model=64)
    pattern = to_hf_layer_types(spec)["hybrid_override_pattern"]
    config = {
        "model_type": "nemotron_h",
        "hidden_size": 64,
        "vocab_size": 50,
        "hybrid_override_pattern": pattern,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "intermediate_size": 96,
        "mamba_num_heads": 8,
        "mamba_head_dim": 16,
        "n_groups": 2,
        "n_routed_experts": 4,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 32,
    }
    back = archdsl.parse(archdsl.from_hf_config(config, approximate=True))
    assert sublayers(back) == types
