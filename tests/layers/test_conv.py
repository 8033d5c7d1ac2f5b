"""`conv`: conv1d fast path against the loop over time (outputs and gradients), against Hugging
Face Lfm2ShortConv with the same weights, generation against the sequence forward, and the cost
formulas against the module, torch.utils.flop_counter and the allocated state."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from archdsl.costing.value import CostContext
from archdsl.errors import GenerationError
from archdsl.layers.base import InvalidParams
from archdsl.layers.registry import get_layer
from archdsl.nn.layers.conv import ConvParams, ShortConv
from archdsl.nn.layers.state import state_nbytes
from archdsl.spec.model import ModelSettings

D = 32
MODEL = ModelSettings(d_model=D)


def make(dtype=torch.float64, seed=0, **kw) -> ShortConv:
    torch.manual_seed(seed)
    return ShortConv(ConvParams(**kw), MODEL).to(dtype)


def outputs_and_grads(layer, x, reference):
    layer.zero_grad()
    x = x.clone().requires_grad_()
    y = layer(x, reference=reference)
    gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=y.dtype)
    (y * gy).sum().backward()
    return y.detach(), x.grad, {n: p.grad.clone() for n, p in layer.named_parameters()}


def test_registered():
    assert get_layer("conv").load() is ShortConv


@pytest.mark.parametrize("kernel,T", [(3, 1), (3, 20), (1, 6), (4, 64), (5, 3)])
def test_fast_matches_reference(kernel, T):
    layer = make(kernel=kernel)
    x = torch.randn(2, T, D, dtype=torch.float64)
    y, gx, gp = outputs_and_grads(layer, x, reference=False)
    y_ref, gx_ref, gp_ref = outputs_and_grads(layer, x, reference=True)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(gx, gx_ref)
    for name in gp:
        torch.testing.assert_close(gp[name], gp_ref[name], msg=name)


def test_matches_hf_lfm2_short_conv():
    from transformers import Lfm2Config
    from transformers.models.lfm2.modeling_lfm2 import Lfm2ShortConv

    layer = make(torch.float32, kernel=3)
    config = Lfm2Config(hidden_size=D, conv_L_cache=3, conv_bias=False, num_hidden_layers=1, layer_types=["conv"])
    hf = Lfm2ShortConv(config, layer_idx=0)
    hf.load_state_dict(layer.state_dict())  # in_proj, conv, out_proj
    x = torch.randn(2, 19, D)
    torch.testing.assert_close(layer(x), hf(x))


@pytest.mark.parametrize("kernel", [1, 3, 4])
def test_step_matches_forward(kernel):
    layer = make(kernel=kernel)
    x = torch.randn(3, 12, D, dtype=torch.float64)
    with torch.no_grad():
        state = layer.init_state(3, max_len=12, device="cpu", dtype=torch.float64)
        steps = []
        for t in range(12):
            y, state = layer.step(x[:, t], state)
            steps.append(y)
        torch.testing.assert_close(torch.stack(steps, dim=1), layer(x))


def test_step_with_another_batch_is_an_error():
    layer = make()
    state = layer.init_state(2, max_len=4, device="cpu", dtype=torch.float64)
    with pytest.raises(GenerationError, match="batch of 1.*made for 2"):
        layer.step(torch.randn(1, D, dtype=torch.float64), state)


@pytest.mark.parametrize("kernel", [2, 3, 5])
def test_cost_params_flops_and_state(kernel):
    layer = make(torch.float32, kernel=kernel)
    B, T = 2, 10
    cost = get_layer("conv").cost(layer.params, MODEL, CostContext(seq_len=T, state_bytes=4))
    assert cost.params == sum(p.numel() for p in layer.parameters())
    with FlopCounterMode(display=False) as counter:
        layer(torch.randn(B, T, D))
    assert counter.get_total_flops() == B * T * (cost.matmul_flops + cost.scan_flops)
    state = layer.init_state(1, max_len=T, device="cpu", dtype=torch.float32)
    assert state_nbytes(state) == cost.state_bytes


def test_bad_params():
    with pytest.raises(InvalidParams, match="kernel=0 must be at least 1") as info:
        ConvParams(kernel=0).resolve(MODEL)
    assert info.value.field == "kernel"


def prefill_then_steps(layer, x, split):
    state = layer.init_state(x.shape[0], max_len=x.shape[1], device="cpu", dtype=x.dtype)
    y, state = layer.prefill(x[:, :split], state)
    rest = [layer.step(x[:, t], state)[0][:, None] for t in range(split, x.shape[1])]
    return torch.cat([y, *rest], dim=1)


@pytest.mark.parametrize("kernel", [1, 3, 4])
def test_prefill_then_steps_matches_forward(kernel):
    layer = make(kernel=kernel)
    x = torch.randn(2, 20, D, dtype=torch.float64)
    with torch.no_grad():
        full = layer(x, reference=True)  # the loop over time
        for split in [1, 2, 7, 19, 20]:
            torch.testing.assert_close(prefill_then_steps(layer, x, split), full, msg=f"split {split}")


@pytest.mark.parametrize("kernel", [1, 4])
def test_two_prefills_equal_one(kernel):
    layer = make(kernel=kernel)
    x = torch.randn(2, 20, D, dtype=torch.float64)
    with torch.no_grad():
        full = layer(x, reference=True)
        for split in [1, 2, 10, 19]:  # a second prompt of 1 token reads two from the first
            state = layer.init_state(2, max_len=20, device="cpu", dtype=torch.float64)
            first, state = layer.prefill(x[:, :split], state)
            second, state = layer.prefill(x[:, split:], state)
            torch.testing.assert_close(torch.cat([first, second], dim=1), full, msg=f"split {split}")


def test_prefill_with_another_batch_is_an_error():
    layer = make()
    state = layer.init_state(2, max_len=4, device="cpu", dtype=torch.float64)
    with pytest.raises(GenerationError, match="prefill got a batch of 1.*made for 2"):
        layer.prefill(torch.randn(1, 3, D, dtype=torch.float64), state)
