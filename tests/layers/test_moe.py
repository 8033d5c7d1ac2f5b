"""`moe`: grouped fast path against the per-token reference (outputs and gradients), against Hugging
Face MixtralSparseMoeBlock and its load-balancing loss with the same weights, and the cost
formulas against the module and torch.utils.flop_counter."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from archdsl.costing.value import CostContext
from archdsl.layers.base import InvalidParams
from archdsl.layers.registry import get_layer
from archdsl.nn.layers.moe import MoE, MoEParams
from archdsl.spec.model import ModelSettings
from tests.layers.helpers import assert_grads_close, grads

D = 32
MODEL = ModelSettings(d_model=D)


def make(dtype=torch.float64, seed=0, **kw) -> MoE:
    torch.manual_seed(seed)
    return MoE(MoEParams(**kw), MODEL).to(dtype)


def outputs_and_grads(layer, x, reference):
    layer.zero_grad()
    x = x.clone().requires_grad_()
    y = layer(x, reference=reference)
    gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=y.dtype)
    ((y * gy).sum() + layer.aux_loss).backward()
    grads = {n: p.grad.clone() for n, p in layer.named_parameters()}
    return y.detach(), layer.aux_loss.detach(), x.grad, grads


def test_registered():
    assert get_layer("moe").load() is MoE


@pytest.mark.parametrize("experts,top_k,T", [(4, 2, 17), (8, 2, 40), (4, 1, 9), (3, 3, 5), (8, 8, 1)])
def test_fast_matches_reference(experts, top_k, T):
    layer = make(experts=experts, top_k=top_k, hidden=40)
    x = torch.randn(2, T, D, dtype=torch.float64)
    fast = outputs_and_grads(layer, x, reference=False)
    ref = outputs_and_grads(layer, x, reference=True)
    for a, b in zip(fast[:3], ref[:3]):
        torch.testing.assert_close(a, b)
    for name in fast[3]:
        torch.testing.assert_close(fast[3][name], ref[3][name], msg=name)


def _hf_block(layer):
    from transformers import MixtralConfig
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock

    config = MixtralConfig(
        hidden_size=D,
        intermediate_size=layer.params.hidden,
        num_local_experts=layer.params.experts,
        num_experts_per_tok=layer.params.top_k,
        router_jitter_noise=0.0,
    )
    hf = MixtralSparseMoeBlock(config).to(layer.gate.weight.dtype)
    hf.load_state_dict(layer.state_dict())  # gate.weight, experts.gate_up_proj, experts.down_proj
    return hf


def test_matches_hf_mixtral_block_and_balancing_loss():
    from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

    layer = make(experts=4, top_k=2, hidden=24)
    hf = _hf_block(layer)
    x = torch.randn(2, 15, D, dtype=torch.float64)
    torch.testing.assert_close(layer(x), hf(x))
    expected = load_balancing_loss_func((layer.gate(x.reshape(-1, D)),), num_experts=4, top_k=2)
    torch.testing.assert_close(layer.aux_loss, expected.to(layer.aux_loss.dtype))


@pytest.mark.parametrize("reference", [False, True], ids=["grouped", "per-token"])
@pytest.mark.parametrize("experts, top_k", [(4, 2), (6, 3), (3, 1)])
def test_gradients_match_hf_mixtral_block(experts, top_k, reference):
    """Gradients of the input, the router (through the renormalised top-k weights) and every
    expert against transformers' block with the same weights; the balancing loss's own gradient
    is compared with the one of ``load_balancing_loss_func`` over the same router logits."""
    from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

    layer = make(experts=experts, top_k=top_k, hidden=24)
    hf = _hf_block(layer)
    x = torch.randn(2, 13, D, dtype=torch.float64, requires_grad=True)
    got, expected = layer(x, reference=reference), hf(x)
    torch.testing.assert_close(got, expected)
    aux = torch.autograd.grad(layer.aux_loss, layer.gate.weight, retain_graph=True)[0]
    # their router works in float32 even for float64 inputs: float32's precision
    assert_grads_close(grads(layer, x, got), grads(hf, x, expected), rtol=1e-5, atol=1e-6)
    loss = load_balancing_loss_func((hf.gate(x.reshape(-1, D))[0],), num_experts=experts, top_k=top_k)
    torch.testing.assert_close(aux, torch.autograd.grad(loss, hf.gate.weight)[0].to(aux.dtype), rtol=1e-5, atol=1e-7)


def test_aux_loss_trains_the_router_and_is_top_k_when_uniform():
    layer = make(experts=4, top_k=2, hidden=16)
    with torch.no_grad():
        layer.gate.weight.zero_()  # every expert equally probable: the loss is its minimum, top_k
    layer(torch.randn(1, 8, D, dtype=torch.float64))
    torch.testing.assert_close(layer.aux_loss, torch.tensor(2.0, dtype=torch.float64))
    layer = make(experts=4, top_k=2, hidden=16)
    layer(torch.randn(1, 8, D, dtype=torch.float64))
    layer.aux_loss.backward()
    assert layer.gate.weight.grad is not None and layer.gate.weight.grad.abs().sum() > 0


def test_step_matches_forward():
    layer = make(experts=4, top_k=2, hidden=16)
    x = torch.randn(3, 6, D, dtype=torch.float64)
    state = layer.init_state(3, max_len=6, device="cpu", dtype=torch.float64)
    steps = []
    for t in range(6):
        y, state = layer.step(x[:, t], state)
        steps.append(y)
    torch.testing.assert_close(torch.stack(steps, dim=1), layer(x))


def test_cost_params_and_active_flops():
    layer = make(torch.float32, experts=6, top_k=2, hidden=40)
    B, T = 2, 11
    cost = get_layer("moe").cost(layer.params, MODEL, CostContext(seq_len=T))
    assert cost.params == sum(p.numel() for p in layer.parameters())
    with FlopCounterMode(display=False) as counter:
        layer(torch.randn(B, T, D))
    # router d x E plus, for each of the top_k assignments, 3 * d * hidden weights
    assert counter.get_total_flops() == B * T * cost.matmul_flops == B * T * 2 * (D * 6 + 2 * 3 * D * 40)
    assert cost.state_bytes == 0 and cost.decode_flops == cost.matmul_flops


def test_default_hidden_follows_mlp():
    assert MoEParams().resolve(ModelSettings(d_model=512)).hidden == 1408


@pytest.mark.parametrize(
    "kw,field,match",
    [
        (dict(experts=4, top_k=5), "top_k", r"top_k=5 must be between 1 and experts=4; allowed: 1..4"),
        (dict(top_k=0), "top_k", r"top_k=0 must be between 1 and experts=8"),
        (dict(experts=0), "experts", r"experts=0 must be at least 1"),
        (dict(hidden=0), "hidden", r"hidden=0 must be at least 1"),
    ],
)
def test_bad_params(kw, field, match):
    with pytest.raises(InvalidParams, match=match) as info:
        MoEParams(**kw).resolve(MODEL)
    assert info.value.field == field


def test_prefill_then_steps_matches_forward_and_sets_aux_loss():
    layer = make(experts=4, top_k=2, hidden=16)
    x = torch.randn(2, 9, D, dtype=torch.float64)
    with torch.no_grad():
        full = layer(x, reference=True)  # the per-token twin
        state = layer.init_state(2, max_len=9, device="cpu", dtype=torch.float64)
        y, state = layer.prefill(x[:, :6], state)
        prompt_loss = layer.aux_loss  # the prompt's balancing loss, as forward over it gives
        rest = [layer.step(x[:, t], state)[0][:, None] for t in range(6, 9)]
        layer(x[:, :6])
        expected_loss = layer.aux_loss
    assert state is None
    torch.testing.assert_close(prompt_loss, expected_loss)
    torch.testing.assert_close(torch.cat([y, *rest], dim=1), full)
