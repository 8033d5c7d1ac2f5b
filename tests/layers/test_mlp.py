"""`mlp`: equal to Hugging Face LlamaMLP with the same weights; default width; cost formulas
against the module and torch.utils.flop_counter."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from archdsl.costing.value import CostContext
from archdsl.layers.base import InvalidParams
from archdsl.layers.registry import get_layer
from archdsl.nn.layers.mlp import MLP, MLPParams
from archdsl.nn.layers.state import state_nbytes
from archdsl.spec.model import ModelSettings

D = 48
MODEL = ModelSettings(d_model=D)


def test_registered():
    assert get_layer("mlp").load() is MLP


@pytest.mark.parametrize("hidden", [None, 100])
def test_matches_hf_llama_mlp(hidden):
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaMLP

    torch.manual_seed(0)
    layer = MLP(MLPParams(hidden=hidden), MODEL)
    config = LlamaConfig(
        hidden_size=D, num_attention_heads=4, intermediate_size=layer.params.hidden, mlp_bias=False, hidden_act="silu"
    )
    hf = LlamaMLP(config)
    hf.load_state_dict(layer.state_dict())  # same names and shapes
    x = torch.randn(2, 13, D)
    torch.testing.assert_close(layer(x), hf(x))
    torch.testing.assert_close(layer(x, reference=True), hf(x))


@pytest.mark.parametrize("d_model,hidden", [(64, 192), (48, 128), (512, 1408), (4096, 10944), (8, 64)])
def test_default_hidden_is_8_thirds_rounded_up_to_64(d_model, hidden):
    assert MLPParams().resolve(ModelSettings(d_model=d_model)).hidden == hidden


def test_step_matches_forward():
    torch.manual_seed(0)
    layer = MLP(MLPParams(), MODEL)
    x = torch.randn(3, 5, D)
    state = layer.init_state(3, max_len=5, device="cpu", dtype=torch.float32)
    assert state_nbytes(state) == 0
    steps = []
    for t in range(5):
        y, state = layer.step(x[:, t], state)
        steps.append(y)
    torch.testing.assert_close(torch.stack(steps, dim=1), layer(x))


def test_cost_params_and_flops():
    torch.manual_seed(0)
    layer = MLP(MLPParams(hidden=80), MODEL)
    B, T = 2, 9
    cost = get_layer("mlp").cost(layer.params, MODEL, CostContext(seq_len=T))
    assert cost.params == sum(p.numel() for p in layer.parameters())
    with FlopCounterMode(display=False) as counter:
        layer(torch.randn(B, T, D))
    assert counter.get_total_flops() == B * T * cost.forward_flops
    assert cost.decode_flops == cost.matmul_flops
    assert cost.state_bytes == 0


def test_bad_params():
    with pytest.raises(InvalidParams, match="hidden=0 must be at least 1") as info:
        MLPParams(hidden=0).resolve(MODEL)
    assert info.value.field == "hidden"


def test_prefill_is_forward_and_keeps_no_state():
    torch.manual_seed(0)
    layer = MLP(MLPParams(hidden=64), MODEL).double()
    x = torch.randn(2, 9, D, dtype=torch.float64)
    state = layer.init_state(2, max_len=9, device="cpu", dtype=torch.float64)
    y, state = layer.prefill(x[:, :5], state)
    rest = [layer.step(x[:, t], state)[0][:, None] for t in range(5, 9)]
    assert state is None
    # each token on its own, against HF's formula written out
    expected = layer.down_proj(torch.nn.functional.silu(layer.gate_proj(x)) * layer.up_proj(x))
    torch.testing.assert_close(torch.cat([y, *rest], dim=1), expected)
