"""``mamba`` (Mamba-1): the chunked selective scan against a loop over time and against Hugging
Face's ``MambaMixer`` with the same weights; generation steps; the cost formulas against what runs."""

from __future__ import annotations

import threading
import warnings

import pydantic
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from archdsl.costing.value import CostContext
from archdsl.errors import GenerationError
from archdsl.layers.registry import get_layer
from archdsl.nn.layers import selective_scan
from archdsl.nn.layers.mamba import Mamba, MambaParams
from archdsl.nn.layers.selective_scan import selective_scan_chunked, selective_scan_reference
from archdsl.nn.layers.state import state_nbytes
from archdsl.spec.model import ModelSettings
from tests.layers.helpers import assert_grads_close, fused_conv_counted_flops, grads, saved_activation_bytes

transformers = pytest.importorskip("transformers")
from transformers.models.mamba.modeling_mamba import MambaMixer  # noqa: E402

MODEL = ModelSettings(d_model=32, vocab=10)


@pytest.fixture
def small_sub(monkeypatch):
    """Sub-chunks of 4 tokens, so that short sequences exercise all three levels of the scan."""
    monkeypatch.setattr(selective_scan, "SUB", 4)


def make(**kw) -> Mamba:
    layer = Mamba(MambaParams(**{"state": 8, "chunk": 16, **kw}), MODEL)
    with torch.no_grad():  # away from the init's exact values (zero conv bias, unit D)
        layer.conv1d.bias.normal_(0, 0.1)
        layer.D.uniform_(0.5, 1.5)
    return layer


def test_registered():
    assert get_layer("mamba").load() is Mamba


@pytest.mark.parametrize("T, chunk", [(1, 16), (2, 16), (5, 16), (16, 16), (37, 16), (50, 8), (70, 12)])
def test_fast_path_matches_loop_over_time(small_sub, T, chunk):
    layer = make(chunk=chunk)
    x = torch.randn(2, T, 32, requires_grad=True)
    fast, ref = layer(x), layer(x, reference=True)
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-5)
    assert_grads_close(grads(layer, x, fast), grads(layer, x, ref))


@pytest.mark.parametrize("T, chunk", [(45, 12), (64, 64), (3, 16)])
def test_scan_with_states_matches_reference(small_sub, T, chunk):
    """Initial and final states, and their gradients, through sub-chunks and chunks."""
    _check_scan_with_states(batch=2, T=T, chunk=chunk)


def test_strong_decay_stays_finite_and_exact(small_sub):
    """Decays far below float32's range (dt A = -80 per step) neither underflow into NaN nor
    leave stale state behind."""
    x = torch.randn(1, 30, 2, requires_grad=True)
    dt = torch.full((1, 30, 2), 8.0)
    A, B, C = torch.tensor([[-10.0, -0.01], [-0.5, -3.0]]), torch.randn(1, 30, 2), torch.randn(1, 30, 2)
    y, _ = selective_scan_chunked(x, dt, A, B, C, chunk=8)
    y_ref, _ = selective_scan_reference(x, dt, A, B, C)
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-4)
    (g,) = torch.autograd.grad(y.sum(), x)
    assert torch.isfinite(g).all()


def hf_pair(chunk: int = 16):
    config = transformers.MambaConfig(
        hidden_size=32, state_size=8, expand=2, conv_kernel=4, num_hidden_layers=1, time_step_rank=4
    )
    theirs = MambaMixer(config, layer_idx=0).eval()
    with torch.no_grad():
        theirs.conv1d.bias.normal_(0, 0.1)
        theirs.D.uniform_(0.5, 1.5)
        theirs.A_log.copy_(torch.empty_like(theirs.A_log).uniform_(0.0, 3.0))
    ours = Mamba(MambaParams(state=8, dt_rank=4, chunk=chunk), MODEL)
    ours.load_state_dict(theirs.state_dict())  # strict: same names and shapes
    return theirs, ours


@pytest.mark.parametrize("T", [37, 48])
def test_equals_hf_mamba_mixer(small_sub, T):
    theirs, ours = hf_pair()
    x = torch.randn(2, T, 32, requires_grad=True)
    expected = theirs(x)
    got = ours(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert_grads_close(grads(ours, x, got), grads(theirs, x, expected), rtol=1e-4, atol=1e-4)


def test_parameter_count_equals_hf_and_cost():
    theirs, ours = hf_pair()
    n = sum(p.numel() for p in ours.parameters())
    assert n == sum(p.numel() for p in theirs.parameters())
    assert get_layer("mamba").cost(ours.p, MODEL, CostContext()).params == n


def test_defaults_and_init_follow_hf():
    layer = Mamba(MambaParams(), ModelSettings(d_model=64, vocab=10))
    assert layer.p.dt_rank == 4 and layer.x_proj.out_features == 4 + 2 * 16
    dt = torch.nn.functional.softplus(layer.dt_proj.bias)
    assert (dt >= 1e-4 - 1e-9).all() and (dt <= 0.1 + 1e-6).all()
    torch.testing.assert_close(-layer.A_log.exp(), -torch.arange(1.0, 17.0).expand(128, 16))
    assert (layer.D == 1).all() and (layer.conv1d.bias == 0).all()
    assert layer.dt_proj.weight.abs().max() <= 4**-0.5


@pytest.mark.parametrize("conv", [4, 1])
def test_steps_equal_forward(conv):
    layer = make(conv=conv)
    x = torch.randn(3, 21, 32)
    with torch.no_grad():
        full = layer(x)
        state = layer.init_state(3, max_len=21, device=x.device, dtype=torch.float32)
        steps = torch.stack([layer.step(x[:, t], state)[0] for t in range(21)], 1)
    torch.testing.assert_close(steps, full, rtol=1e-4, atol=1e-5)


def test_state_bytes_match_cost_and_batch_is_checked():
    layer = make()
    state = layer.init_state(2, max_len=100, device="cpu", dtype=torch.float32)
    cost = get_layer("mamba").cost(layer.p, MODEL, CostContext(seq_len=100, state_bytes=4))
    assert state_nbytes(state) == 2 * cost.state_bytes  # per sequence, independent of length
    assert state_nbytes(layer.init_state(1, max_len=5000, device="cpu", dtype=torch.float32)) == cost.state_bytes
    with pytest.raises(GenerationError, match="batch of 1"):
        layer.step(torch.randn(1, 32), state)


@pytest.mark.parametrize("T", [64, 50])
def test_flops_match_flop_counter(T):
    layer = make()
    cost = get_layer("mamba").cost(layer.p, MODEL, CostContext(seq_len=T))
    with FlopCounterMode(display=False) as counter:
        layer(torch.randn(1, T, 32))
    # the counter sees the four Linear layers, the scan's read-out h C (2 E N per token of the
    # sequence padded to whole sub-chunks of 16) and the conv (over T + K - 1 outputs)
    E, N, padded = layer.inner, layer.p.state, -(-T // 16) * 16
    conv = fused_conv_counted_flops(layer.conv1d.weight, T)
    assert counter.get_total_flops() == T * cost.matmul_flops + 2 * padded * E * N + conv
    assert cost.scan_flops > 9 * E * N  # at least a sequential scan's work


@pytest.mark.parametrize("T, chunk", [(96, 32), (50, 16), (40, 64)])
def test_activation_bytes_estimate(T, chunk):
    """The estimate is within 15% of what autograd keeps for backward (parameters left out)."""
    layer = make(chunk=chunk)
    kept = saved_activation_bytes(layer, torch.randn(1, T, 32, requires_grad=True))
    cost = get_layer("mamba").cost(layer.p, MODEL, CostContext(seq_len=T, act_bytes=4))
    assert kept == pytest.approx(cost.activation_bytes, rel=0.15)


@pytest.mark.parametrize("kw", [{"dt_rank": 0}, {"chunk": 0}, {"state": 2.5}, {"stat": 16}])
def test_bad_params_are_refused(kw):
    with pytest.raises(pydantic.ValidationError):
        MambaParams(**kw)


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


# The scan works in float32 inside, so float64 runs agree to float32 precision, not float64's.
TOL = dict(rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("conv", [4, 1])
def test_prefill_then_steps_matches_forward(small_sub, conv):
    layer = make(conv=conv, chunk=8).double()  # sub-chunks of 4 in chunks of 8
    x = torch.randn(2, 30, 32, dtype=torch.float64)
    with torch.no_grad():
        full = layer(x, reference=True)  # the loop over time
        for split in [1, 3, 8, 13, 29, 30]:  # within, at and across sub-chunk and chunk boundaries
            torch.testing.assert_close(prefill_then_steps(layer, x, split), full, **TOL, msg=f"split {split}")


def test_two_prefills_equal_one(small_sub):
    layer = make(chunk=8).double()
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
    with pytest.raises(GenerationError, match="batch of 1"):
        layer.prefill(torch.randn(1, 5, 32), state)


@pytest.fixture(params=["torchscript", "python"])
def kernels(request, monkeypatch):
    """A group's forward and backward as TorchScript compiles them (the default) and as the plain
    functions (under torch.compile, or with a torch that has no TorchScript)."""
    if request.param == "python":
        monkeypatch.setattr(selective_scan, "_kernels", lambda: (selective_scan._forward, selective_scan._backward))
    return request.param


@pytest.fixture(params=["1 thread", "2 threads, pool", "2 threads, OpenMP"])
def pool_expected(request, monkeypatch):
    """torch's threads, and with two whether the groups of sequences run on the scan's pool of
    Python threads (from POOL_MIN_TOKENS tokens) or one after another. Returns whether the pool
    should run them."""
    pool = request.param == "2 threads, pool"
    monkeypatch.setattr(selective_scan, "POOL_MIN_TOKENS", 1 if pool else selective_scan.POOL_MIN_TOKENS)
    before = torch.get_num_threads()
    torch.set_num_threads(1 if request.param == "1 thread" else 2)
    yield pool
    torch.set_num_threads(before)


@pytest.mark.parametrize("block_elements, chunk", [(2 * 6 * 5, 8), (100, 16), (3 * 4 * 6 * 5, 12)])
def test_blocks_of_tokens_and_sequences_match_reference(
    small_sub, monkeypatch, kernels, pool_expected, block_elements, chunk
):
    """Small blocks: the batch split into groups and the chunk into several blocks (the backward
    recomputes the states entering each block), with initial and final states; with two threads
    and enough tokens the groups run on the scan's pool (these 96 tokens are too few, unless the
    threshold is lowered)."""
    monkeypatch.setattr(selective_scan, "BLOCK_ELEMENTS", block_elements)
    ran_on = set()  # the threads each group's kernel ran on

    def noting_thread(kernel):
        def call(*args):
            ran_on.add(threading.current_thread().name)
            return kernel(*args)

        return call

    forward, backward = selective_scan._kernels()
    monkeypatch.setattr(selective_scan, "_kernels", lambda: (noting_thread(forward), noting_thread(backward)))
    _check_scan_with_states(batch=3, T=29, chunk=chunk)
    assert {name.startswith("archdsl-scan") for name in ran_on} == {pool_expected}


def test_group_kernels_compile_with_torchscript():
    """The scan's speed on two threads rests on TorchScript (see selective_scan._kernels); a change
    to the kernels that TorchScript cannot compile would fall back to the plain functions without
    a word, so it fails here, with TorchScript's message."""
    if not hasattr(torch.jit, "script"):
        pytest.skip("this torch has no TorchScript")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(selective_scan._forward)
        torch.jit.script(selective_scan._backward)
    assert selective_scan._scripted() is not None


def _check_scan_with_states(*, batch: int, T: int, chunk: int) -> None:
    """The chunked scan from a random initial state equals the loop reference: outputs, final
    state, and the gradients of every input (E = 6 channels, N = 5 state elements)."""
    x, dt = torch.randn(batch, T, 6, requires_grad=True), torch.rand(batch, T, 6).requires_grad_()
    A = (-torch.rand(6, 5) * 4).requires_grad_()
    B, C = torch.randn(batch, T, 5, requires_grad=True), torch.randn(batch, T, 5, requires_grad=True)
    h0 = torch.randn(batch, 6, 5, requires_grad=True)
    inputs = (x, dt, A, B, C, h0)
    y, s = selective_scan_chunked(x, dt, A, B, C, chunk=chunk, initial_state=h0)
    y_ref, s_ref = selective_scan_reference(x, dt, A, B, C, initial_state=h0)
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(s, s_ref, rtol=1e-4, atol=1e-5)
    gy, gs = torch.randn_like(y), torch.randn_like(s)
    got = torch.autograd.grad((y * gy).sum() + (s * gs).sum(), inputs)
    expected = torch.autograd.grad((y_ref * gy).sum() + (s_ref * gs).sum(), inputs)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4)
