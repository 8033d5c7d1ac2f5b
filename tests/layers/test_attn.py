"""`attn`: fast path against the per-query reference, against Hugging Face Llama / Qwen3 attention
with the same weights, generation against the sequence forward, and the cost formulas against
torch.utils.flop_counter and the allocated KV cache."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import archdsl.nn.layers.attn as attn_mod
from archdsl.costing.value import CostContext
from archdsl.errors import GenerationError
from archdsl.layers.base import InvalidParams
from archdsl.layers.builtin.attn import mean_keys
from archdsl.layers.registry import get_layer
from archdsl.nn.layers.attn import Attention, AttnParams
from archdsl.nn.layers.state import state_nbytes
from archdsl.spec.model import ModelSettings

D = 64
MODEL = ModelSettings(d_model=D)


def make(dtype=torch.float64, seed=0, model=MODEL, **kw) -> Attention:
    torch.manual_seed(seed)
    layer = Attention(AttnParams(**kw), model).to(dtype)
    if kw.get("qk_norm"):  # non-trivial norm weights, so a misplaced norm would show
        with torch.no_grad():
            layer.q_norm.weight.uniform_(0.5, 1.5)
            layer.k_norm.weight.uniform_(0.5, 1.5)
    return layer


def outputs_and_grads(layer, x, reference):
    layer.zero_grad()
    x = x.clone().requires_grad_()
    y = layer(x, reference=reference)
    gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=y.dtype)
    (y * gy).sum().backward()
    return y.detach(), x.grad, {n: p.grad.clone() for n, p in layer.named_parameters()}


def assert_fast_equals_reference(layer, x, tol=1e-10):
    y, gx, gp = outputs_and_grads(layer, x, reference=False)
    y_ref, gx_ref, gp_ref = outputs_and_grads(layer, x, reference=True)
    torch.testing.assert_close(y, y_ref, atol=tol, rtol=tol)
    torch.testing.assert_close(gx, gx_ref, atol=tol, rtol=tol)
    for name in gp:
        torch.testing.assert_close(gp[name], gp_ref[name], atol=tol, rtol=tol, msg=name)


def test_registered():
    assert get_layer("attn").load() is Attention


@pytest.mark.parametrize(
    "T,heads,kv_heads,window",
    [
        (1, 4, 2, None),
        (7, 4, 4, None),
        (64, 4, 1, None),
        (100, 4, 2, None),
        (100, 4, 2, 8),  # blocks of 64: the second one partly padding
        (100, 4, 1, 40),
        (100, 4, 4, 70),  # a block as long as the window
        (50, 4, 2, 200),  # window longer than the sequence
        (7, 4, 2, 3),  # one block with a banded mask
        (64, 4, 2, 64),
    ],
)
def test_fast_matches_reference(T, heads, kv_heads, window):
    layer = make(heads=heads, kv_heads=kv_heads, window=window)
    assert_fast_equals_reference(layer, torch.randn(2, T, D, dtype=torch.float64))


@pytest.mark.parametrize("window", [None, 5])
def test_fast_matches_reference_qk_norm(window):
    layer = make(heads=4, kv_heads=2, window=window, qk_norm=True)
    assert_fast_equals_reference(layer, torch.randn(2, 37, D, dtype=torch.float64))


@pytest.mark.parametrize("window,block,T", [(3, 4, 37), (5, 5, 37), (1, 4, 10), (4, 4, 16), (6, 8, 9)])
def test_sliding_window_many_small_blocks(monkeypatch, window, block, T):
    """Blocks much shorter than T, including a last block that is partly padding."""
    monkeypatch.setattr(attn_mod, "MIN_BLOCK", block)
    layer = make(heads=4, kv_heads=2, window=window)
    assert_fast_equals_reference(layer, torch.randn(2, T, D, dtype=torch.float64))


def test_sliding_window_against_dense_mask():
    """The blocked window path against one dense T x T computation with a banded mask."""
    torch.manual_seed(0)
    B, T, H, KV, hd, w = 2, 100, 4, 2, 16, 9
    q = torch.randn(B, T, H, hd, dtype=torch.float64)
    k = torch.randn(B, T, KV, hd, dtype=torch.float64)
    v = torch.randn(B, T, KV, hd, dtype=torch.float64)
    i = torch.arange(T)
    allowed = (i[:, None] >= i[None, :]) & (i[:, None] - i[None, :] < w)  # (T, T)
    kk, vv = k.repeat_interleave(H // KV, dim=2), v.repeat_interleave(H // KV, dim=2)
    scores = torch.einsum("bqhd,bkhd->bhqk", q, kk) / hd**0.5
    probs = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
    dense = torch.einsum("bhqk,bkhd->bqhd", probs, vv)
    torch.testing.assert_close(attn_mod.attend(q, k, v, w), dense)
    torch.testing.assert_close(attn_mod.sliding_blocked(q, k, v, w, 16), dense)


@pytest.mark.slow  # about 4 s of one-off tracing in create_block_mask and flex_attention
def test_flex_sliding_window_mask():
    """The FlexAttention mask of the CUDA path, run uncompiled on CPU (forward only there)."""
    pytest.importorskip("torch.nn.attention.flex_attention")
    torch.manual_seed(0)
    B, T, H, KV, hd, w = 1, 40, 4, 2, 16, 7
    q, k, v = (torch.randn(B, T, n, hd) for n in (H, KV, KV))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # flex_attention warns that uncompiled it is slow
        out = attn_mod.flex_sliding(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), w, compiled=False)
    ref = attn_mod.attend_reference(q, k, v, w)
    torch.testing.assert_close(out.transpose(1, 2), ref, atol=1e-5, rtol=1e-5)


def _llama_config(heads, kv_heads, head_dim, theta):
    from transformers import LlamaConfig

    return LlamaConfig(
        hidden_size=D,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        attention_bias=False,
        rope_parameters={"rope_type": "default", "rope_theta": theta},
        rms_norm_eps=MODEL.norm_eps,
        attn_implementation="eager",
    )


def _hf_mask(T, window, dtype):
    """HF eager attention adds the mask to the scores: 0 where allowed, -inf elsewhere."""
    i = torch.arange(T)
    allowed = i[:, None] >= i[None, :]
    if window is not None:
        allowed &= i[:, None] - i[None, :] < window
    return torch.zeros(T, T, dtype=dtype).masked_fill(~allowed, float("-inf"))[None, None]


@pytest.mark.parametrize("heads,kv_heads,head_dim,window", [(4, 2, 16, None), (8, 8, 8, None), (4, 1, 32, 10)])
def test_matches_hf_llama_attention(heads, kv_heads, head_dim, window):
    from transformers.models.llama.modeling_llama import LlamaAttention, LlamaRotaryEmbedding

    theta = 500.0
    layer = make(torch.float32, heads=heads, kv_heads=kv_heads, head_dim=head_dim, window=window, rope_theta=theta)
    config = _llama_config(heads, kv_heads, head_dim, theta)
    hf = LlamaAttention(config, layer_idx=0)
    hf.load_state_dict(layer.state_dict())  # same names and shapes, nothing left over
    T = 33
    x = torch.randn(2, T, D)
    cos_sin = LlamaRotaryEmbedding(config)(x, torch.arange(T)[None])
    expected, _ = hf(x, position_embeddings=cos_sin, attention_mask=_hf_mask(T, window, x.dtype))
    torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)


def test_qk_norm_matches_hf_qwen3_attention():
    from transformers import Qwen3Config
    from transformers.models.qwen3.modeling_qwen3 import Qwen3Attention, Qwen3RotaryEmbedding

    layer = make(torch.float32, heads=4, kv_heads=2, qk_norm=True)
    config = Qwen3Config(
        hidden_size=D,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        rms_norm_eps=MODEL.norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        attn_implementation="eager",
    )
    hf = Qwen3Attention(config, layer_idx=0)
    hf.load_state_dict(layer.state_dict())
    T = 21
    x = torch.randn(2, T, D)
    cos_sin = Qwen3RotaryEmbedding(config)(x, torch.arange(T)[None])
    expected, _ = hf(x, position_embeddings=cos_sin, attention_mask=_hf_mask(T, None, x.dtype))
    torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "kw,max_len",
    [
        (dict(heads=4, kv_heads=4), 20),
        (dict(heads=4, kv_heads=2, qk_norm=True), 25),
        (dict(heads=4, kv_heads=1, window=5), 20),  # the ring buffer wraps three times
        (dict(heads=4, kv_heads=2, window=30), 20),  # window longer than max_len: a plain cache
    ],
)
def test_step_matches_forward(kw, max_len):
    layer = make(**kw)
    T = 20
    x = torch.randn(3, T, D, dtype=torch.float64)
    with torch.no_grad():
        full = layer(x)
        state = layer.init_state(3, max_len=max_len, device="cpu", dtype=torch.float64)
        steps = []
        for t in range(T):
            y, state = layer.step(x[:, t], state)
            steps.append(y)
    torch.testing.assert_close(torch.stack(steps, dim=1), full)


def test_generation_past_max_len_is_an_error():
    layer = make(heads=4)
    state = layer.init_state(1, max_len=3, device="cpu", dtype=torch.float64)
    x = torch.randn(1, D, dtype=torch.float64)
    for _ in range(3):
        _, state = layer.step(x, state)
    with pytest.raises(GenerationError, match="past max_len=3"):
        layer.step(x, state)


def test_window_generation_runs_past_max_len_when_the_window_fits():
    layer = make(heads=4, window=2)
    state = layer.init_state(1, max_len=3, device="cpu", dtype=torch.float64)
    for _ in range(6):
        _, state = layer.step(torch.randn(1, D, dtype=torch.float64), state)
    assert state.pos == 6


def test_step_with_another_batch_is_an_error():
    layer = make(heads=4)
    state = layer.init_state(2, max_len=8, device="cpu", dtype=torch.float64)
    with pytest.raises(GenerationError, match="batch of 3.*made for 2"):
        layer.step(torch.randn(3, D, dtype=torch.float64), state)


@pytest.mark.parametrize("kw", [dict(heads=4, kv_heads=2), dict(heads=2, window=16, qk_norm=True)])
@pytest.mark.parametrize("context", [10, 48])
def test_state_bytes_match_cost(kw, context):
    layer = make(torch.float32, **kw)
    ctx = CostContext(seq_len=context, state_bytes=2)
    state = layer.init_state(1, max_len=context, device="cpu", dtype=torch.bfloat16)
    assert state_nbytes(state) == get_layer("attn").cost(layer.params, MODEL, ctx).state_bytes


@pytest.mark.parametrize(
    "kw", [dict(heads=4, kv_heads=2), dict(heads=4, window=6, qk_norm=True), dict(heads=2, head_dim=24)]
)
def test_cost_params_and_flops(kw):
    """params against the module; matmul + attention FLOPs against torch.utils.flop_counter on
    the reference path, which multiplies each query with exactly the keys it sees."""
    layer = make(torch.float32, **kw)
    B, T = 2, 23
    cost = get_layer("attn").cost(layer.params, MODEL, CostContext(seq_len=T))
    assert cost.params == sum(p.numel() for p in layer.parameters())
    with FlopCounterMode(display=False) as counter:
        layer(torch.randn(B, T, D), reference=True)
    assert counter.get_total_flops() == pytest.approx(B * T * (cost.matmul_flops + cost.attn_flops))
    # The fast path's projections (the CPU SDPA kernel is not one flop_counter knows).
    with FlopCounterMode(display=False) as counter:
        layer(torch.randn(B, T, D))
    mm = counter.get_flop_counts()["Global"].get(torch.ops.aten.mm, 0)
    assert mm == pytest.approx(B * T * cost.matmul_flops)


def test_mean_keys_matches_a_count():
    for T in (1, 5, 64):
        for w in (None, 1, 3, 64, 100):
            count = sum(min(i + 1, w if w is not None else T) for i in range(T))
            assert mean_keys(T, w) == pytest.approx(count / T)


def test_decode_cost_counts_cached_keys():
    p = AttnParams(heads=4, window=16).resolve(MODEL)
    cost = get_layer("attn").cost(p, MODEL, CostContext(seq_len=8, context=100))
    assert cost.decode_flops == cost.matmul_flops + 4 * 4 * 16 * 16
    assert cost.state_bytes == 2 * 4 * 16 * 16 * 2


def test_defaults():
    p = AttnParams().resolve(ModelSettings(d_model=256))
    assert (p.heads, p.kv_heads, p.head_dim, p.window) == (4, 4, 64, None)
    assert AttnParams().resolve(ModelSettings(d_model=32)).heads == 1
    message = r"the default heads=d_model//64=3 does not divide d_model=200; allowed: 1, 2, 4, 5"
    with pytest.raises(InvalidParams, match=message):
        AttnParams().resolve(ModelSettings(d_model=200))
    assert AttnParams(head_dim=40).resolve(ModelSettings(d_model=200)).heads == 3  # an explicit head_dim lifts it


@pytest.mark.parametrize(
    "kw,field,match",
    [
        (dict(heads=6), "heads", r"heads=6 does not divide d_model=64; allowed: 1, 2, 4, 8, 16, 32, 64"),
        (dict(heads=8, kv_heads=3), "kv_heads", r"kv_heads=3 does not divide heads=8; allowed: 1, 2, 4, 8"),
        (dict(window=0), "window", r"window=0 must be at least 1"),
        (dict(heads=0), "heads", r"heads=0 must be at least 1"),
        (dict(heads=4, head_dim=15), "head_dim", r"head_dim=15 must be even"),
        (dict(rope_theta=0.0), "rope_theta", r"rope_theta=0.0 must be in 1 .. 1e12"),
        (dict(rope_theta=1e-300), "rope_theta", r"rope_theta=1e-300 must be in 1 .. 1e12"),
    ],
)
def test_bad_params(kw, field, match):
    with pytest.raises(InvalidParams, match=match) as info:
        AttnParams(**kw).resolve(MODEL)
    assert info.value.field == field


def prefill_then_steps(layer, x, split, max_len):
    """Outputs of prefill over x[:, :split], then one step per remaining token."""
    state = layer.init_state(x.shape[0], max_len=max_len, device="cpu", dtype=x.dtype)
    y, state = layer.prefill(x[:, :split], state)
    rest = [layer.step(x[:, t], state)[0][:, None] for t in range(split, x.shape[1])]
    return torch.cat([y, *rest], dim=1)


PREFILL_CASES = [
    (dict(heads=4, kv_heads=2), 24, 24),
    (dict(heads=4, kv_heads=2, qk_norm=True), 24, 30),  # a cache longer than the sequence
    (dict(heads=4, kv_heads=1, window=5), 24, 24),  # ring buffer: wraps in the prompt and after
    (dict(heads=4, kv_heads=2, window=30), 24, 24),  # window longer than max_len: a plain cache
    (dict(heads=2, kv_heads=2, window=8), 70, 70),  # a prompt past MIN_BLOCK: the blocked path
]


@pytest.mark.parametrize("kw,T,max_len", PREFILL_CASES)
def test_prefill_then_steps_matches_forward(kw, T, max_len):
    layer = make(**kw)
    x = torch.randn(2, T, D, dtype=torch.float64)
    with torch.no_grad():
        full = layer(x)
        for split in sorted({1, 3, T // 2, T - 5, T - 1, T}):
            torch.testing.assert_close(prefill_then_steps(layer, x, split, max_len), full, msg=f"split {split}")


@pytest.mark.parametrize("kw,T,max_len", PREFILL_CASES)
def test_two_prefills_equal_one(kw, T, max_len):
    # the second prompt attends to the keys the first one cached (for a window, in the ring)
    layer = make(**kw)
    x = torch.randn(2, T, D, dtype=torch.float64)
    with torch.no_grad():
        full = layer(x)
        for split in sorted({1, 4, 7, T // 2, T - 1}):
            state = layer.init_state(2, max_len=max_len, device="cpu", dtype=torch.float64)
            first, state = layer.prefill(x[:, :split], state)
            second, state = layer.prefill(x[:, split:], state)
            assert state.pos == T
            torch.testing.assert_close(torch.cat([first, second], dim=1), full, msg=f"split {split}")


def test_prefill_past_max_len_is_an_error():
    layer = make(heads=4)
    state = layer.init_state(1, max_len=5, device="cpu", dtype=torch.float64)
    with pytest.raises(GenerationError, match="position 5 is past max_len=5"):
        layer.prefill(torch.randn(1, 6, D, dtype=torch.float64), state)
    _, state = layer.prefill(torch.randn(1, 5, D, dtype=torch.float64), state)  # exactly fills it
    with pytest.raises(GenerationError, match="past max_len=5"):
        layer.step(torch.randn(1, D, dtype=torch.float64), state)


def test_window_prefill_runs_past_max_len_when_the_window_fits():
    layer = make(heads=4, window=2)
    state = layer.init_state(1, max_len=3, device="cpu", dtype=torch.float64)
    _, state = layer.prefill(torch.randn(1, 7, D, dtype=torch.float64), state)
    assert state.pos == 7


def test_prefill_with_another_batch_is_an_error():
    layer = make(heads=4)
    state = layer.init_state(2, max_len=8, device="cpu", dtype=torch.float64)
    with pytest.raises(GenerationError, match="prefill got a batch of 3.*made for 2"):
        layer.prefill(torch.randn(3, 4, D, dtype=torch.float64), state)
