"""gdn: the chunked WY path against a loop over time, against Hugging Face's Qwen3-Next
functions and against the delta rule written as matrices; generation; parameters; cost."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from torch.utils.flop_counter import FlopCounterMode

from archdsl.costing.value import CostContext
from archdsl.errors import GenerationError
from archdsl.layers.base import InvalidParams
from archdsl.layers.registry import get_layer
from archdsl.nn.layers.gdn import (
    GatedDeltaNet,
    GDNParams,
    chunk_gated_delta_rule,
    l2norm,
    recurrent_gated_delta_rule,
)
from archdsl.nn.layers.state import state_nbytes
from archdsl.spec.model import ModelSettings
from tests.layers.helpers import assert_grads_close, grads, saved_activation_bytes

MODEL = ModelSettings(d_model=48)


def make(dtype=torch.float64, **kw) -> GatedDeltaNet:
    kw = {"heads": 2, "head_dim": 8, "chunk": 16, **kw}
    layer = GatedDeltaNet(GDNParams(**kw), MODEL).to(dtype)
    with torch.no_grad():  # decays strong enough that a chunk spans several orders of magnitude
        layer.dt_bias.fill_(0.5)
    return layer


def rule_inputs(B=2, T=37, H=2, K=8, V=16, dtype=torch.float64, strong=False):
    q = l2norm(torch.randn(B, T, H, K, dtype=dtype))
    k = l2norm(torch.randn(B, T, H, K, dtype=dtype))
    v = torch.randn(B, T, H, V, dtype=dtype)
    g = -torch.rand(B, T, H, dtype=dtype) * (20.0 if strong else 1.0)
    beta = torch.rand(B, T, H, dtype=dtype)
    return q, k, v, g, beta


def test_registered():
    assert get_layer("gdn").load() is GatedDeltaNet


@pytest.mark.parametrize("T", [1, 16, 37])
def test_fast_matches_reference_outputs_and_grads(T):
    layer = make()
    x = torch.randn(2, T, 48, dtype=torch.float64, requires_grad=True)
    fast, ref = layer(x), layer(x, reference=True)
    torch.testing.assert_close(fast, ref, rtol=1e-9, atol=1e-11)
    upstream = torch.randn_like(fast)
    inputs = [x, *layer.parameters()]
    for a, b in zip(torch.autograd.grad(fast, inputs, upstream), torch.autograd.grad(ref, inputs, upstream)):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_recurrent_rule_is_the_matrix_form():
    """S_t = alpha_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T,  o_t = S_t^T q_t * scale."""
    q, k, v, g, beta = rule_inputs(B=1, T=5, H=1, K=4, V=3)
    o, S_end = recurrent_gated_delta_rule(q, k, v, g, beta, scale=0.5)
    S = torch.zeros(4, 3, dtype=torch.float64)
    for t in range(5):
        kt, a, b = k[0, t, 0], g[0, t, 0].exp(), beta[0, t, 0]
        S = a * (torch.eye(4, dtype=torch.float64) - b * torch.outer(kt, kt)) @ S + b * torch.outer(kt, v[0, t, 0])
        torch.testing.assert_close(o[0, t, 0], S.T @ q[0, t, 0] * 0.5)
    torch.testing.assert_close(S_end[0, 0], S)


@pytest.mark.parametrize("strong", [False, True], ids=["mild-decay", "strong-decay"])
def test_chunk_rule_matches_recurrent_rule(strong):
    q, k, v, g, beta = rule_inputs(strong=strong)
    S0 = torch.randn(2, 2, 8, 16, dtype=torch.float64)
    o_c, S_c = chunk_gated_delta_rule(q, k, v, g, beta, scale=8**-0.5, chunk=16, initial_state=S0)
    o_r, S_r = recurrent_gated_delta_rule(q, k, v, g, beta, scale=8**-0.5, initial_state=S0)
    assert torch.isfinite(o_c).all()
    torch.testing.assert_close(o_c, o_r, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(S_c, S_r, rtol=1e-9, atol=1e-10)


def test_rules_match_transformers_qwen3_next():
    hf = pytest.importorskip("transformers.models.qwen3_next.modeling_qwen3_next")
    q, k, v, g, beta = rule_inputs(dtype=torch.float32)
    S0 = torch.randn(2, 2, 8, 16)
    scale = 8**-0.5
    # Hugging Face scales q by head_dim^-0.5 itself; q and k are already L2-normalised here
    their_kw = dict(g=g, beta=beta, initial_state=S0, output_final_state=True, use_qk_l2norm_in_kernel=False)
    o_hf, S_hf = hf.torch_chunk_gated_delta_rule(q, k, v, chunk_size=16, **their_kw)
    o, S = chunk_gated_delta_rule(q, k, v, g, beta, scale=scale, chunk=16, initial_state=S0)
    torch.testing.assert_close(o, o_hf, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(S, S_hf, rtol=1e-4, atol=1e-5)
    o_hf, S_hf = hf.torch_recurrent_gated_delta_rule(q, k, v, **their_kw)
    o, S = recurrent_gated_delta_rule(q, k, v, g, beta, scale=scale, initial_state=S0)
    torch.testing.assert_close(o, o_hf, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(S, S_hf, rtol=1e-5, atol=1e-6)


def test_step_matches_forward():
    layer = make(torch.float32)
    x = torch.randn(3, 21, 48)
    with torch.no_grad():
        full = layer(x)
        state = layer.init_state(3, max_len=21, device="cpu", dtype=torch.float32)
        steps = [layer.step(x[:, t], state)[0] for t in range(21)]
    torch.testing.assert_close(torch.stack(steps, 1), full, rtol=1e-4, atol=1e-5)


def test_bfloat16_runs_close_to_float32():
    layer = make(torch.float32)
    x = torch.randn(2, 37, 48)
    with torch.no_grad():
        ref = layer(x)
        low = layer.to(torch.bfloat16)(x.bfloat16()).float()
    assert (low - ref).norm() / ref.norm() < 3e-2


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_state_bytes_match_cost(dtype):
    layer = make(dtype)
    state = layer.init_state(3, max_len=50, device="cpu", dtype=dtype)
    ctx = CostContext(seq_len=50, state_bytes=torch.finfo(dtype).bits // 8)
    assert state_nbytes(state) == 3 * get_layer("gdn").cost(layer.p, MODEL, ctx).state_bytes


def test_step_refuses_another_batch():
    layer = make(torch.float32)
    state = layer.init_state(2, max_len=8, device="cpu", dtype=torch.float32)
    with pytest.raises(GenerationError, match="batch of 3"):
        layer.step(torch.randn(3, 48), state)


def test_defaults():
    p = GDNParams().resolve(ModelSettings(d_model=512))
    assert (p.heads, p.head_dim, p.v_head_dim, p.conv, p.chunk) == (4, 128, 256, 4, 64)
    assert all(type(v) is int for v in (p.heads, p.head_dim, p.v_head_dim))  # sizes of modules
    p = GDNParams().resolve(MODEL)
    assert (p.heads, p.head_dim, p.v_head_dim) == (1, 48, 96)
    assert GDNParams(heads=3, expand_v=1).resolve(MODEL).v_head_dim == 16


@pytest.mark.parametrize(
    "kw, field, match",
    [
        pytest.param({"heads": 64}, "heads", "heads=64 exceeds d_model=48", id="more-heads-than-width"),
        pytest.param({"head_dim": 10, "expand_v": 0.25}, "expand_v", "10 \\* 0.25 = 2.5", id="fractional-v-dim"),
    ],
)
def test_invalid_combinations(kw, field, match):
    with pytest.raises(InvalidParams, match=match) as err:
        GDNParams(**kw).resolve(MODEL)
    assert err.value.field == field


@pytest.mark.parametrize("kw", [{"conv": 0}, {"heads": 0}, {"chunk": 0}, {"expand_v": 0.0}, {"hedas": 2}])
def test_out_of_range_fields(kw):
    with pytest.raises(ValidationError):
        GDNParams(**kw)


def test_cost_params_and_flops():
    layer = make(torch.float32)
    p, T = layer.p, 37
    cost = get_layer("gdn").cost(p, MODEL, CostContext(seq_len=T))
    assert cost.params == sum(w.numel() for w in layer.parameters())
    with FlopCounterMode(display=False) as counter:
        layer(torch.randn(1, T, 48))
    # the counter sees Linear, the chunk matrix products and the conv (a conv2d over the sequence
    # padded by 3 zeros on both sides: 3 outputs more than kept), not the triangular solve for
    # (I + A)^-1 against the identity
    H, K, V, n, C = 2, 8, 16, 3, 16
    conv_dim = 2 * H * K + H * V
    solves = H * n * C * C * (C - 1)
    assert counter.get_total_flops() == pytest.approx(
        T * (cost.matmul_flops + cost.scan_flops) - solves + 3 * 2 * 4 * conv_dim
    )
    state = layer.init_state(1, max_len=T, device="cpu", dtype=torch.float32)
    with FlopCounterMode(display=False) as counter:
        layer.step(torch.randn(1, 48), state)
    # counted: Linear layers and the two einsums S^T k, S^T q; not the elementwise conv, decay, update
    assert counter.get_total_flops() == cost.decode_flops - 2 * 4 * conv_dim - 3 * H * K * V


def test_activation_estimate_near_measured():
    layer = make(torch.float32)
    T = 64
    cost = get_layer("gdn").cost(layer.p, MODEL, CostContext(seq_len=T, act_bytes=4))
    saved = saved_activation_bytes(layer, torch.randn(1, T, 48, requires_grad=True))
    assert cost.activation_bytes == pytest.approx(saved, rel=0.15)


def prefill_then_steps(layer, x, split):
    state = layer.init_state(x.shape[0], max_len=x.shape[1], device="cpu", dtype=x.dtype)
    y, state = layer.prefill(x[:, :split], state)
    rest = [layer.step(x[:, t], state)[0][:, None] for t in range(split, x.shape[1])]
    return torch.cat([y, *rest], dim=1)


@pytest.mark.parametrize("conv", [4, 1])
def test_prefill_then_steps_matches_forward(conv):
    layer = make(conv=conv, chunk=8)
    x = torch.randn(2, 30, 48, dtype=torch.float64)
    with torch.no_grad():
        full = layer(x, reference=True)  # step by step from the start
        for split in [1, 2, 8, 13, 29, 30]:  # within, at and across chunk boundaries
            torch.testing.assert_close(prefill_then_steps(layer, x, split), full, msg=f"split {split}")


def test_two_prefills_equal_one():
    layer = make(chunk=8)
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
    with pytest.raises(GenerationError, match="batch of 3"):
        layer.prefill(torch.randn(3, 5, 48), state)


def hf_pair():
    """Hugging Face's ``Qwen3NextGatedDeltaNet`` (its pure-PyTorch path) with random weights, and
    ours with the same weights: an implementation of the layer written by other people, so that the
    gates, the decay's parameterisation, the conv and the order of norm and gate are all checked."""
    qn = pytest.importorskip("transformers.models.qwen3_next.modeling_qwen3_next")
    from transformers import Qwen3NextConfig

    H, K, V, W = 2, 8, 16, 4
    config = Qwen3NextConfig(
        hidden_size=48,
        linear_num_key_heads=H,
        linear_num_value_heads=H,
        linear_key_head_dim=K,
        linear_value_head_dim=V,
        linear_conv_kernel_dim=W,
        rms_norm_eps=1e-5,
        hidden_act="silu",
        num_hidden_layers=1,
        layer_types=["linear_attention"],
        vocab_size=16,
    )
    theirs = qn.Qwen3NextGatedDeltaNet(config, layer_idx=0).eval()
    with torch.no_grad():
        for name, w in theirs.named_parameters():
            w.copy_(torch.randn_like(w) * (0.3 if "proj" in name or "conv" in name else 0.5))
        theirs.norm.weight.uniform_(0.5, 1.5)
        theirs.A_log.copy_(torch.empty(H).uniform_(1.0, 16.0).log())
    ours = GatedDeltaNet(GDNParams(heads=H, head_dim=K, expand_v=V / K, conv=W, chunk=16), MODEL)
    # their projection rows are grouped per key head, [q_h | k_h | v_h | z_h] and [b_h | a_h];
    # ours are [q | k | v | z | b | a] over all heads
    qkvz = theirs.in_proj_qkvz.weight.view(H, 2 * K + 2 * V, 48)
    q, k, v, z = qkvz.split([K, K, V, V], dim=1)
    b, a = theirs.in_proj_ba.weight.view(H, 2, 48).unbind(1)
    rows = [t.reshape(-1, 48) for t in (q, k, v, z)] + [b, a]
    ours.load_state_dict(
        {
            "in_proj.weight": torch.cat(rows),
            "conv1d.weight": theirs.conv1d.weight,
            "A_log": theirs.A_log,
            "dt_bias": theirs.dt_bias,
            "norm.weight": theirs.norm.weight,
            "out_proj.weight": theirs.out_proj.weight,
        }
    )
    return theirs, ours


def _their_grads(theirs, x, y):
    """Their gradients under our parameter names (the projection rows put back in our order)."""
    g = grads(theirs, x, y)
    H, K, V = 2, 8, 16
    q, k, v, z = g["in_proj_qkvz.weight"].view(H, 2 * K + 2 * V, 48).split([K, K, V, V], dim=1)
    b, a = g["in_proj_ba.weight"].view(H, 2, 48).unbind(1)
    return {
        "x": g["x"],
        "in_proj.weight": torch.cat([t.reshape(-1, 48) for t in (q, k, v, z)] + [b, a]),
        "conv1d.weight": g["conv1d.weight"],
        "A_log": g["A_log"],
        "dt_bias": g["dt_bias"],
        "norm.weight": g["norm.weight"],
        "out_proj.weight": g["out_proj.weight"],
    }


@pytest.mark.parametrize("T", [37, 70])
@pytest.mark.parametrize("reference", [False, True], ids=["chunked", "loop"])
def test_equals_transformers_qwen3_next_gated_deltanet(T, reference):
    theirs, ours = hf_pair()
    x = torch.randn(2, T, 48, requires_grad=True)
    expected = theirs(x)
    got = ours(x, reference=reference)
    # float32 both (theirs works in float32 inside); outputs reach about 16
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=2e-4)
    assert_grads_close(grads(ours, x, got), _their_grads(theirs, x, expected), rtol=1e-4, atol=2e-5)
