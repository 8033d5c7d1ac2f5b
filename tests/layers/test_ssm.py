"""``ssm`` (Mamba-2): the chunked SSD path against a loop over time and against Hugging Face's
``Mamba2Mixer`` with the same weights; generation steps; the cost formulas against what runs."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from archdsl.costing.value import CostContext
from archdsl.errors import GenerationError
from archdsl.layers.base import InvalidParams
from archdsl.layers.builtin.ssm import chunk_length, ssd_product_flops
from archdsl.layers.registry import get_layer
from archdsl.nn.layers import ssd_masked
from archdsl.nn.layers.ssd import ssd_chunked, ssd_reference
from archdsl.nn.layers.ssm import SSM, SSMParams
from archdsl.nn.layers.state import state_nbytes
from archdsl.spec.model import ModelSettings
from tests.layers.helpers import assert_grads_close, fused_conv_counted_flops, grads, saved_activation_bytes

transformers = pytest.importorskip("transformers")
from transformers.models.mamba2.modeling_mamba2 import Mamba2Mixer  # noqa: E402


def make(d: int = 32, **kw) -> SSM:
    kw = {"state": 8, "head_dim": 16, "chunk": 16, **kw}
    layer = SSM(SSMParams(**kw), ModelSettings(d_model=d, vocab=10))
    with torch.no_grad():  # away from the init's exact values (zero conv bias, unit norm weight)
        layer.conv1d.bias.normal_(0, 0.1)
        layer.norm.weight.uniform_(0.5, 1.5)
        layer.D.uniform_(0.5, 1.5)
    return layer


def test_registered():
    assert get_layer("ssm").load() is SSM


@pytest.mark.parametrize(
    "T, groups, chunk", [(1, 1, 16), (2, 2, 16), (5, 1, 16), (16, 1, 16), (37, 2, 16), (50, 4, 8), (64, 1, 16)]
)
@pytest.mark.parametrize("onednn", [True, False], ids=["onednn", "no-onednn"])
def test_fast_path_matches_loop_over_time(monkeypatch, T, groups, chunk, onednn):
    """Without oneDNN the causal conv (and its input gradient) runs as multiply-adds per tap."""
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", onednn)  # restored after the test
    layer = make(groups=groups, chunk=chunk)
    x = torch.randn(2, T, 32, requires_grad=True)
    fast, ref = layer(x), layer(x, reference=True)
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-5)
    assert_grads_close(grads(layer, x, fast), grads(layer, x, ref))


def test_long_chunks_are_shortened_where_within_chunk_work_dominates():
    """State 128 with 8 heads of 8 channels: within-chunk products (2 L (G N + H P) per token)
    outweigh the state products (4 H P N) past L = 85, so chunk=256 runs chunks of 64; the result
    and the gradients are still the loop's, and the FLOPs the counter sees are the cost's."""
    layer = make(state=128, head_dim=8, chunk=256)
    assert chunk_length(150, 256, 8, 8, 1, 128) == 64
    assert chunk_length(150, 256, 8, 64, 1, 128) == 128  # Mamba-2's head_dim 64: balance at 171
    assert chunk_length(40, 256, 8, 8, 1, 128) == 40  # a short sequence is one chunk
    assert chunk_length(150, 48, 8, 8, 1, 128) == 48  # never longer than asked
    x = torch.randn(2, 150, 32, requires_grad=True)
    fast, ref = layer(x), layer(x, reference=True)
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-5)
    assert_grads_close(grads(layer, x, fast), grads(layer, x, ref))
    cost = get_layer("ssm").cost(layer.p, ModelSettings(d_model=32, vocab=10), CostContext(seq_len=150))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        layer(torch.randn(1, 150, 32))
    products, conv = ssd_product_flops(layer.p, 32, 150), fused_conv_counted_flops(layer.conv1d.weight, 150)
    assert counter.get_total_flops() == 150 * cost.matmul_flops + products + conv


def test_chunk_to_chunk_loop_matches_matrix(monkeypatch):
    """Beyond MAX_MATRIX_CHUNKS chunks the states are passed by a loop; both give the same."""
    x, dt = torch.randn(1, 45, 4, 8), torch.rand(1, 45, 4)
    A, B, C = -torch.rand(4) * 4, torch.randn(1, 45, 2, 6), torch.randn(1, 45, 2, 6)
    h0 = torch.randn(1, 4, 8, 6)
    y_ref, s_ref = ssd_reference(x, dt, A, B, C, initial_state=h0)
    y_mat, s_mat = ssd_chunked(x, dt, A, B, C, chunk=4, initial_state=h0)
    monkeypatch.setattr(ssd_masked, "MAX_MATRIX_CHUNKS", 2)
    y_loop, s_loop = ssd_chunked(x, dt, A, B, C, chunk=4, initial_state=h0)
    for y, s in ((y_mat, s_mat), (y_loop, s_loop)):
        torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(s, s_ref, rtol=1e-4, atol=1e-5)


def test_strong_decay_stays_finite_and_exact():
    """Decays far below float32's range (dt A = -50 per step) neither overflow nor turn into NaN."""
    x, dt = torch.randn(1, 40, 2, 4, requires_grad=True), torch.full((1, 40, 2), 5.0)
    A, B, C = torch.tensor([-10.0, -0.01]), torch.randn(1, 40, 1, 3), torch.randn(1, 40, 1, 3)
    y, _ = ssd_chunked(x, dt, A, B, C, chunk=16)
    y_ref, _ = ssd_reference(x, dt, A, B, C)
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-4)
    (g,) = torch.autograd.grad(y.sum(), x)
    assert torch.isfinite(g).all()


@pytest.mark.parametrize(
    "rates, masked",
    [((-4.5, -0.5), 0), ((-6.0, -0.5), 1), ((-6.0, -7.0), 2)],
    ids=["factored-near-limit", "one-head-masked", "all-heads-masked"],
)
@pytest.mark.parametrize("T, initial", [(64, False), (128, True)], ids=["training", "prefill"])
def test_decays_near_and_past_the_factoring_limit(monkeypatch, rates, masked, T, initial):
    """Within a chunk of 32 the decay exp(g_l - g_s) is factored through the middle m of the
    chunk's range, exp(g_l - m) exp(m - g_s), for the heads none of whose chunks decays by more
    than 2 FACTOR_LIMIT (160) in all: at -4.5 per step (144 a chunk) the factors reach exp(+-72);
    a head at -6.0 or -7.0 (192, 224) gets per-head masks, beside factored heads or alone. All
    equal the loop (outputs, final state and gradients), from zeros over two chunks and from an
    initial state over four, where the states passed between chunks must not carry the factors
    (a state scaled by exp(72) would need a weight of exp(-144))."""
    H = 2
    x, B, C = torch.randn(1, T, H, 4, requires_grad=True), torch.randn(1, T, 1, 3), torch.randn(1, T, 1, 3)
    dt, A = torch.ones(1, T, H, requires_grad=True), torch.tensor(rates)
    h0 = torch.randn(1, H, 4, 3, requires_grad=True) if initial else None
    masks = []
    apply = ssd_masked._IntraChunk.apply
    monkeypatch.setattr(ssd_masked._IntraChunk, "apply", lambda *a: masks.append(a[2].shape[2]) or apply(*a))
    y, s = ssd_chunked(x, dt, A, B, C, chunk=32, initial_state=h0)
    assert sum(masks) == masked  # heads given masks
    y_ref, s_ref = ssd_reference(x, dt, A, B, C, initial_state=h0)
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(s, s_ref, rtol=1e-4, atol=1e-5)
    gy, gs = torch.randn_like(y), torch.randn_like(s)
    inputs = [x, dt] + ([h0] if initial else [])
    ours = torch.autograd.grad((y * gy).sum() + (s * gs).sum(), inputs)
    theirs = torch.autograd.grad((y_ref * gy).sum() + (s_ref * gs).sum(), inputs)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize(
    "batch, T, rates, initial",
    [(1, 64, (-6.0, -7.0), False), (2, 100, (-6.0, -0.5, -7.0, -9.0), True)],
    ids=["all-heads-masked", "some-heads-masked-from-a-state"],
)
def test_compiled_masked_form_equals_loop(batch, T, rates, initial):
    """Under torch.compile (the training setting ``compile``; DESIGN's GPU table, where every
    head takes the masks) the masked form runs and equals the loop: outputs, final state and the
    gradients of x, dt and the initial state, in a training forward and in a prefill.

    torch 2.13's inductor miscompiled two graphs of it on a CPU, which ``ssd.py`` steers around:
    dt's gradient came out up to 100 times too large in the first case (every time), and the
    second, where eager splits the heads into factored and masked, aborted on a corrupted heap in
    two of three runs of a script (never under pytest)."""
    torch._dynamo.reset()  # compile afresh: a cached graph would not exercise the tracing
    torch.manual_seed(0)
    H = len(rates)
    x, B, C = torch.randn(batch, T, H, 4, requires_grad=True), torch.randn(batch, T, 1, 3), torch.randn(batch, T, 1, 3)
    dt, A = (torch.rand(batch, T, H) + 0.5).requires_grad_(), torch.tensor(rates)
    h0 = torch.randn(batch, H, 4, 3, requires_grad=True) if initial else None
    # a training forward (no initial or final state) and a prefill (both)
    y, s = torch.compile(ssd_chunked)(x, dt, A, B, C, chunk=32, initial_state=h0, final_state=initial)
    y_ref, s_ref = ssd_reference(x, dt, A, B, C, initial_state=h0)
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-5)
    gy, gs = torch.randn_like(y), torch.randn_like(s_ref)
    loss, loss_ref = (y * gy).sum(), (y_ref * gy).sum()
    if initial:
        torch.testing.assert_close(s, s_ref, rtol=1e-4, atol=1e-5)
        loss, loss_ref = loss + (s * gs).sum(), loss_ref + (s_ref * gs).sum()
    inputs = [x, dt] + ([h0] if initial else [])
    ours, theirs = torch.autograd.grad(loss, inputs), torch.autograd.grad(loss_ref, inputs)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def hf_pair(groups: int = 2, chunk: int = 16):
    d, heads, head_dim, state = 32, 4, 16, 8
    config = transformers.Mamba2Config(
        hidden_size=d,
        num_heads=heads,
        head_dim=head_dim,
        state_size=state,
        n_groups=groups,
        expand=2,
        conv_kernel=4,
        chunk_size=chunk,
        num_hidden_layers=1,
        layer_norm_epsilon=1e-5,
    )
    theirs = Mamba2Mixer(config, layer_idx=0).eval()
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
        theirs.A_log.copy_(torch.rand(heads))
    ours = SSM(
        SSMParams(state=state, head_dim=head_dim, groups=groups, chunk=chunk),
        ModelSettings(d_model=d, vocab=10, norm_eps=1e-5),
    )
    ours.load_state_dict(theirs.state_dict())  # strict: same names and shapes
    return theirs, ours


@pytest.mark.parametrize("T, groups", [(37, 2), (48, 1)])
def test_equals_hf_mamba2_mixer(T, groups):
    theirs, ours = hf_pair(groups=groups)
    x = torch.randn(2, T, 32, requires_grad=True)
    expected = theirs(x)
    got = ours(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    g_ours = grads(ours, x, got)
    g_theirs = grads(theirs, x, expected)
    assert_grads_close(g_ours, g_theirs, rtol=1e-4, atol=1e-4)


def test_parameter_count_equals_hf_and_cost():
    theirs, ours = hf_pair()
    n = sum(p.numel() for p in ours.parameters())
    assert n == sum(p.numel() for p in theirs.parameters())
    assert get_layer("ssm").cost(ours.p, ModelSettings(d_model=32, vocab=10), CostContext()).params == n


def test_init_follows_hf():
    layer = SSM(SSMParams(head_dim=16), ModelSettings(d_model=64, vocab=10))
    dt = torch.nn.functional.softplus(layer.dt_bias)
    assert (dt >= 1e-4 - 1e-9).all() and (dt <= 0.1 + 1e-6).all()
    torch.testing.assert_close(-layer.A_log.exp(), -torch.arange(1.0, 9.0))
    assert (layer.D == 1).all() and (layer.conv1d.bias == 0).all()


@pytest.mark.parametrize("groups, conv", [(1, 4), (2, 1)])
def test_steps_equal_forward(groups, conv):
    layer = make(groups=groups, conv=conv)
    x = torch.randn(3, 21, 32)
    with torch.no_grad():
        full = layer(x)
        state = layer.init_state(3, max_len=21, device=x.device, dtype=torch.float32)
        steps = torch.stack([layer.step(x[:, t], state)[0] for t in range(21)], 1)
    torch.testing.assert_close(steps, full, rtol=1e-4, atol=1e-5)


def test_state_bytes_match_cost_and_batch_is_checked():
    layer = make(groups=2)
    state = layer.init_state(2, max_len=100, device="cpu", dtype=torch.float32)
    cost = get_layer("ssm").cost(layer.p, ModelSettings(d_model=32, vocab=10), CostContext(seq_len=100, state_bytes=4))
    assert state_nbytes(state) == 2 * cost.state_bytes  # per sequence, independent of length
    assert state_nbytes(layer.init_state(1, max_len=5000, device="cpu", dtype=torch.float32)) == cost.state_bytes
    with pytest.raises(GenerationError, match="batch of 3"):
        layer.step(torch.randn(3, 32), state)


@pytest.mark.parametrize("T, chunk", [(64, 16), (50, 16), (10, 16)])
def test_flops_match_flop_counter(T, chunk):
    layer = make(groups=2, chunk=chunk)
    model = ModelSettings(d_model=32, vocab=10)
    cost = get_layer("ssm").cost(layer.p, model, CostContext(seq_len=T))
    with FlopCounterMode(display=False) as counter:
        layer(torch.randn(1, T, 32))
    # the counter sees the Linear layers, the SSD's products and the conv
    products, conv = ssd_product_flops(layer.p, 32, T), fused_conv_counted_flops(layer.conv1d.weight, T)
    assert counter.get_total_flops() == T * cost.matmul_flops + products + conv
    assert cost.scan_flops == pytest.approx(ssd_product_flops(layer.p, 32, T) / T + 2 * 4 * layer.conv_dim)


@pytest.mark.parametrize("T, kw", [(96, {"chunk": 16}), (50, {"chunk": 16, "groups": 2}), (40, {"chunk": 64})])
def test_activation_bytes_estimate(T, kw):
    """The estimate is within 15% of what autograd keeps for backward (parameters left out)."""
    layer = make(**kw)
    kept = saved_activation_bytes(layer, torch.randn(1, T, 32, requires_grad=True))
    cost = get_layer("ssm").cost(layer.p, ModelSettings(d_model=32, vocab=10), CostContext(seq_len=T, act_bytes=4))
    assert kept == pytest.approx(cost.activation_bytes, rel=0.15)


@pytest.mark.parametrize(
    "kw, field, match",
    [
        ({"head_dim": 48}, "head_dim", r"head_dim=48 does not divide the inner width expand \* d_model = 64"),
        ({"head_dim": 16, "groups": 3}, "groups", r"groups=3 does not divide the 4 heads; choose one of \[1, 2, 4\]"),
    ],
)
def test_bad_params_name_the_field(kw, field, match):
    with pytest.raises(InvalidParams, match=match) as info:
        SSMParams(**kw).resolve(ModelSettings(d_model=32, vocab=10))
    assert info.value.field == field


def test_bf16_runs_close_to_float32():
    layer = make()
    x = torch.randn(2, 40, 32)
    with torch.no_grad():
        full = layer(x)
        half = layer.to(torch.bfloat16)(x.bfloat16()).float()
    torch.testing.assert_close(half, full, rtol=0.05, atol=0.05)


def prefill_then_steps(layer, x, split):
    state = layer.init_state(x.shape[0], max_len=x.shape[1], device="cpu", dtype=x.dtype)
    y, state = layer.prefill(x[:, :split], state)
    rest = [layer.step(x[:, t], state)[0][:, None] for t in range(split, x.shape[1])]
    return torch.cat([y, *rest], dim=1)


# The SSD works in float32 inside, so float64 runs agree to float32 precision, not float64's.
TOL = dict(rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("groups, conv, loop", [(1, 4, False), (2, 1, False), (2, 4, True)])
def test_prefill_then_steps_matches_forward(monkeypatch, groups, conv, loop):
    if loop:  # the chunk-to-chunk pass as a loop, from the prefill's initial state
        monkeypatch.setattr(ssd_masked, "MAX_MATRIX_CHUNKS", 1)
    layer = make(groups=groups, conv=conv, chunk=8).double()
    x = torch.randn(2, 30, 32, dtype=torch.float64)
    with torch.no_grad():
        full = layer(x, reference=True)  # the loop over time
        for split in [1, 2, 8, 13, 29, 30]:  # within, at and across chunk boundaries
            torch.testing.assert_close(prefill_then_steps(layer, x, split), full, **TOL, msg=f"split {split}")


@pytest.mark.parametrize("conv", [4, 1])
def test_two_prefills_equal_one(conv):
    layer = make(conv=conv, chunk=8).double()
    x = torch.randn(2, 30, 32, dtype=torch.float64)
    with torch.no_grad():
        full = layer(x, reference=True)
        for split in [1, 2, 11, 16, 29]:
            state = layer.init_state(2, max_len=30, device="cpu", dtype=torch.float64)
            first, state = layer.prefill(x[:, :split], state)
            second, state = layer.prefill(x[:, split:], state)
            torch.testing.assert_close(torch.cat([first, second], dim=1), full, **TOL, msg=f"split {split}")


def test_prefill_with_another_batch_is_an_error():
    layer = make()
    state = layer.init_state(2, max_len=8, device="cpu", dtype=torch.float32)
    with pytest.raises(GenerationError, match="batch of 3"):
        layer.prefill(torch.randn(3, 5, 32), state)
