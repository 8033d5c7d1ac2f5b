"""Resolution: let expansion, defaults, shared groups, model settings and equality."""

from __future__ import annotations

import pytest

import archdsl
from archdsl.spec.model import LayerNode, ParallelNode, RepeatNode, SharedNode


def test_one_liner_is_a_complete_program():
    spec = archdsl.parse("4x(ssm) 1x(attn window=512)", d_model=256, vocab=1000)
    assert [layer.type for layer in spec.layers()] == ["ssm"] * 4 + ["attn"]
    assert spec.model.d_model == 256 and spec.model.vocab == 1000


def test_defaults_are_resolved_from_the_model_width():
    attn = archdsl.parse("attn", d_model=256).layers()[0].params
    assert (attn.heads, attn.kv_heads, attn.head_dim, attn.window) == (4, 4, 64, None)
    mlp = archdsl.parse("mlp", d_model=256).layers()[0].params
    assert mlp.hidden == 704  # 8/3 * 256 = 682.7, rounded up to a multiple of 64


def test_keyword_settings_override_the_header():
    spec = archdsl.parse("model d_model=512 vocab=100\nssm", d_model=128)
    assert (spec.model.d_model, spec.model.vocab) == (128, 100)


def test_let_names_expand_and_spans_do_not_change_equality():
    a = archdsl.parse("let block = ssm mlp\n2x(block)")
    b = archdsl.parse("2x( ssm   mlp )")
    assert a == b
    assert a.body.items[0].span != b.body.items[0].span


def test_let_shared_takes_the_let_name_as_its_group():
    spec = archdsl.parse("let glob = shared(attn mlp)\nssm glob ssm glob")
    shared = [item for item in spec.body.items if isinstance(item, SharedNode)]
    assert [s.group for s in shared] == ["glob", "glob"]


def test_inline_shared_groups_are_numbered_in_order_of_use_avoiding_let_names():
    spec = archdsl.parse("let shared1 = shared(mlp)\nssm 2x(shared(attn)) shared1 shared(conv)")
    repeat = spec.body.items[1]
    assert isinstance(repeat, RepeatNode)
    assert repeat.body.items[0].group == "shared2"
    assert [spec.body.items[2].group, spec.body.items[3].group] == ["shared1", "shared3"]


def test_group_names_are_labels_not_meaning():
    assert archdsl.parse("let g = shared(attn)\ng mlp g") == archdsl.parse("let h = shared(attn)\nh mlp h")
    assert archdsl.parse("let g = shared(attn)\ng mlp g") != archdsl.parse("let g = shared(attn)\ng mlp attn")


def test_parallel_branches_are_kept():
    spec = archdsl.parse("(attn | ssm) mlp")
    assert isinstance(spec.body.items[0], ParallelNode)
    assert [b.items[0].type for b in spec.body.items[0].branches] == ["attn", "ssm"]


def test_different_parameters_make_different_specs():
    assert archdsl.parse("attn window=64") != archdsl.parse("attn window=65")
    assert archdsl.parse("attn window=64") == archdsl.parse("attn window=64")


def test_layer_nodes_hold_complete_parameters():
    node = archdsl.parse("ssm state=64").layers()[0]
    assert isinstance(node, LayerNode)
    assert node.params.state == 64 and node.params.head_dim == 64


@pytest.mark.parametrize(
    "text, message",
    [
        pytest.param("model d_model=7\nssm", "d_model", id="d-model-too-small"),
        pytest.param(
            "model widht=512\nssm", "did you mean 'width'|unknown model setting 'widht'", id="unknown-setting"
        ),
        pytest.param("let a = ssm\nlet a = mlp\na", "defined twice", id="let-twice"),
        pytest.param("let a = ssm b\nlet b = mlp a\na", "'b' is defined later", id="let-cycle"),
        pytest.param("let b = ssm\nb state=3", "takes no parameters", id="let-with-params"),
        pytest.param("shared(ssm shared(mlp))", "cannot be nested", id="nested-shared"),
        pytest.param("(ssm | (attn | mlp))", "cannot stand inside a parallel branch", id="parallel-in-branch"),
        pytest.param("attn window=1 window=2", "given twice", id="param-twice"),
    ],
)
def test_resolve_errors_are_positioned(text, message):
    with pytest.raises(archdsl.ArchDSLError, match=message) as info:
        archdsl.parse(text)
    if "model setting" not in str(info.value) or "header" in str(info.value):
        assert info.value.span is not None


def test_a_let_may_take_a_layer_name_as_design_md_does():
    spec = archdsl.parse("let mamba = ssm state=64 mlp\n2x(mamba)")
    assert [layer.type for layer in spec.layers()] == ["ssm", "mlp"] * 2
    windowed = archdsl.parse("let attn = attn window=64\nssm attn")  # inside its own let, the layer
    assert [layer.type for layer in windowed.layers()] == ["ssm", "attn"]
    assert windowed.layers()[1].params.window == 64
    shared = archdsl.parse("let attn = shared(attn mlp)\nattn ssm attn")
    assert [layer.type for layer in shared.layers()] == ["attn", "mlp", "ssm", "attn", "mlp"]
    assert archdsl.parse(str(shared)) == shared  # the group is printed under a name that is not a layer's
