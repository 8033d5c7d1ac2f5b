"""rglru: the associative scan against a loop over time and against Hugging Face's
RecurrentGemma block with the same weights; generation; parameters; cost."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from torch.utils.flop_counter import FlopCounterMode

from archdsl.costing.value import CostContext
from archdsl.errors import GenerationError
from archdsl.layers.base import InvalidParams
from archdsl.layers.registry import get_layer
from archdsl.nn.layers.rglru import RGLRU, LinearScan, RGLRUParams
from archdsl.nn.layers.state import state_nbytes
from archdsl.spec.model import ModelSettings
from tests.layers.helpers import assert_grads_close, grads, saved_activation_bytes

MODEL = ModelSettings(d_model=48)


def make(dtype=torch.float64, **kw) -> RGLRU:
    layer = RGLRU(RGLRUParams(**{"heads": 2, **kw}), MODEL).to(dtype)
    with torch.no_grad():  # biases away from zero so every term of the block is exercised
        for name, w in layer.named_parameters():
            if "bias" in name:
                w.normal_(0.0, 0.5)
    return layer


def test_registered():
    assert get_layer("rglru").load() is RGLRU


@pytest.mark.parametrize("T", [1, 2, 37, 100])
def test_scan_matches_loop_with_gradcheck(T):
    a = torch.rand(2, T, 3, dtype=torch.float64, requires_grad=True)
    u = torch.randn(2, T, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    h, hs = h0, []
    for t in range(T):
        h = a[:, t] * h + u[:, t]
        hs.append(h)
    torch.testing.assert_close(LinearScan.apply(a, u, h0), torch.stack(hs, 1))
    if T <= 37:  # gradcheck is quadratic in T
        assert torch.autograd.gradcheck(LinearScan.apply, (a, u, h0))


@pytest.mark.parametrize("T", [1, 37])
def test_fast_matches_reference_outputs_and_grads(T):
    layer = make()
    x = torch.randn(2, T, 48, dtype=torch.float64, requires_grad=True)
    fast, ref = layer(x), layer(x, reference=True)
    torch.testing.assert_close(fast, ref, rtol=1e-9, atol=1e-11)
    upstream = torch.randn_like(fast)
    inputs = [x, *layer.parameters()]
    for a, b in zip(torch.autograd.grad(fast, inputs, upstream), torch.autograd.grad(ref, inputs, upstream)):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("reference", [False, True], ids=["scan", "loop"])
def test_matches_transformers_recurrent_gemma_block(reference):
    rg = pytest.importorskip("transformers.models.recurrent_gemma.modeling_recurrent_gemma")
    from transformers import RecurrentGemmaConfig

    layer = make(torch.float32, conv=3, c=8.0)
    config = RecurrentGemmaConfig(
        hidden_size=48,
        lru_width=48,
        num_attention_heads=2,
        conv1d_width=3,
        num_hidden_layers=1,
        vocab_size=16,
        intermediate_size=64,
    )
    block = rg.RecurrentGemmaRecurrentBlock(config, layer_idx=0).eval()
    with torch.no_grad():
        for name in ("linear_x", "linear_y", "linear_out"):
            getattr(block, name).load_state_dict(getattr(layer, name).state_dict())
        block.conv_1d.load_state_dict(layer.conv1d.state_dict())
        for name in (
            "input_gate_weight",
            "input_gate_bias",
            "recurrent_gate_weight",
            "recurrent_gate_bias",
            "recurrent_param",
        ):
            getattr(block.rg_lru, name).copy_(getattr(layer, name))
    x = torch.randn(2, 30, 48, requires_grad=True)
    # positions from 1: RecurrentGemma resets (and skips sqrt(1 - a^2)) at position 0 only
    positions = torch.arange(1, 31).expand(2, -1)
    theirs, _ = block(x, position_ids=positions, attention_mask=None, use_cache=False)
    ours = layer(x, reference=reference)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    # gradients too: their gate and sqrt-bound backward written by other people
    # under our names: their conv is ``conv_1d``, their gates live in ``rg_lru``
    ours_name = {"conv_1d.weight": "conv1d.weight", "conv_1d.bias": "conv1d.bias"}
    g_theirs = {ours_name.get(n, n.removeprefix("rg_lru.")): g for n, g in grads(block, x, theirs).items()}
    assert_grads_close(grads(layer, x, ours), g_theirs, rtol=1e-4, atol=1e-5)


def test_step_matches_forward():
    layer = make(torch.float32)
    x = torch.randn(3, 21, 48)
    with torch.no_grad():
        full = layer(x)
        state = layer.init_state(3, max_len=21, device="cpu", dtype=torch.float32)
        steps = [layer.step(x[:, t], state)[0] for t in range(21)]
    torch.testing.assert_close(torch.stack(steps, 1), full, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_state_bytes_match_cost(dtype):
    layer = make(dtype)
    state = layer.init_state(3, max_len=50, device="cpu", dtype=dtype)
    ctx = CostContext(seq_len=50, state_bytes=torch.finfo(dtype).bits // 8)
    assert state_nbytes(state) == 3 * get_layer("rglru").cost(layer.p, MODEL, ctx).state_bytes


def test_step_refuses_another_batch():
    layer = make(torch.float32)
    state = layer.init_state(2, max_len=8, device="cpu", dtype=torch.float32)
    with pytest.raises(GenerationError, match="batch of 1"):
        layer.step(torch.randn(1, 48), state)


@pytest.mark.parametrize(
    "d_model, kw, width, heads",
    [
        (48, {}, 48, 1),
        (512, {}, 512, 4),
        (640, {}, 640, 5),
        (512, {"width": 100}, 100, 4),
        (512, {"width": 96, "heads": 8}, 96, 8),
    ],
)
def test_defaults(d_model, kw, width, heads):
    p = RGLRUParams(**kw).resolve(ModelSettings(d_model=d_model))
    assert (p.width, p.heads, p.conv, p.c) == (width, heads, 4, 8.0)


def test_heads_must_divide_width():
    with pytest.raises(InvalidParams, match="heads=5 must divide width=48; choose one of 1, 2, 3, 4, 6") as err:
        RGLRUParams(heads=5).resolve(MODEL)
    assert err.value.field == "heads"


@pytest.mark.parametrize("kw", [{"conv": 0}, {"heads": 0}, {"width": 0}, {"c": 0.0}, {"witdh": 64}])
def test_out_of_range_fields(kw):
    with pytest.raises(ValidationError):
        RGLRUParams(**kw)


def test_cost_params_and_flops():
    layer = make(torch.float32)
    T = 37
    cost = get_layer("rglru").cost(layer.p, MODEL, CostContext(seq_len=T))
    assert cost.params == sum(w.numel() for w in layer.parameters())
    with FlopCounterMode(display=False) as counter:
        layer(torch.randn(1, T, 48))
    # the counter sees Linear, the gate einsums and the conv, not the elementwise scan: h0 in
    # (2 W), then 3 W per position each doubling step s = 1, 2, .., 32 updates (T - s of them)
    scan = 2 * 48 + 3 * 48 * sum(T - s for s in (1, 2, 4, 8, 16, 32))
    assert counter.get_total_flops() == pytest.approx(T * (cost.matmul_flops + cost.scan_flops) - scan)
    state = layer.init_state(1, max_len=T, device="cpu", dtype=torch.float32)
    with FlopCounterMode(display=False) as counter:
        layer.step(torch.randn(1, 48), state)
    # a step's conv and recurrence are elementwise: the counter sees the matrix products only
    assert counter.get_total_flops() == cost.decode_flops - 2 * 4 * 48 - 2 * 48


def test_activation_estimate_near_measured():
    layer = make(torch.float32)
    T = 64
    cost = get_layer("rglru").cost(layer.p, MODEL, CostContext(seq_len=T, act_bytes=4))
    saved = saved_activation_bytes(layer, torch.randn(1, T, 48, requires_grad=True))
    assert cost.activation_bytes == pytest.approx(saved, rel=0.15)


def test_bfloat16_runs_close_to_float32():
    layer = make(torch.float32)
    x = torch.randn(2, 37, 48)
    with torch.no_grad():
        ref = layer(x)
        low = layer.to(torch.bfloat16)(x.bfloat16()).float()
    assert (low - ref).norm() / ref.norm() < 3e-2


def prefill_then_steps(layer, x, split):
    state = layer.init_state(x.shape[0], max_len=x.shape[1], device="cpu", dtype=x.dtype)
    y, state = layer.prefill(x[:, :split], state)
    rest = [layer.step(x[:, t], state)[0][:, None] for t in range(split, x.shape[1])]
    return torch.cat([y, *rest], dim=1)


@pytest.mark.parametrize("conv", [4, 1])
def test_prefill_then_steps_matches_forward(conv):
    layer = make(conv=conv)
    x = torch.randn(2, 30, 48, dtype=torch.float64)
    with torch.no_grad():
        full = layer(x, reference=True)  # step by step from the start
        for split in [1, 2, 5, 16, 17, 29, 30]:  # the doubling scan's powers of two and around them
            torch.testing.assert_close(prefill_then_steps(layer, x, split), full, msg=f"split {split}")


def test_two_prefills_equal_one():
    # the second prompt starts from h of the first: h_0 enters decayed by the products of a
    layer = make()
    x = torch.randn(2, 30, 48, dtype=torch.float64)
    with torch.no_grad():
        full = layer(x, reference=True)
        for split in [1, 2, 11, 16, 29]:
            state = layer.init_state(2, max_len=30, device="cpu", dtype=torch.float64)
            first, state = layer.prefill(x[:, :split], state)
            second, state = layer.prefill(x[:, split:], state)
            torch.testing.assert_close(torch.cat([first, second], dim=1), full, msg=f"split {split}")


def test_prefill_refuses_another_batch():
    layer = make(torch.float32)
    state = layer.init_state(2, max_len=8, device="cpu", dtype=torch.float32)
    with pytest.raises(GenerationError, match="batch of 1"):
        layer.prefill(torch.randn(1, 5, 48), state)
