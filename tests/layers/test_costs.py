"""Every layer's cost formula against what its module runs and keeps, the same checks for every layer.

- Decode FLOPs: ``torch.utils.flop_counter`` over one :meth:`step` at a context of ``CTX`` tokens
  (on the meta device, where attention's SDPA decomposes into the products the counter sees), plus
  the element-wise work of that step, counted below from the module's own shapes.
- Forward FLOPs: the counter over a forward of T tokens plus the forward's element-wise work equal
  T times (matmul + scan) FLOPs exactly (attention scores are checked in tests/cost/test_flops.py).
- Activation bytes: within 2% of what autograd saves for backward (parameters left out).

The element-wise counts are written here from the code of each layer's ``step``/``forward``, not
from its ``cost``: a multiply or an add is 1 FLOP, a multiply-add 2, an ``exp`` 1, a depthwise conv
2 per tap and channel (as the counter counts ``conv1d``); activations, norms and biases are not
counted, as the cost model leaves out nonlinearities (Kaplan et al. 2020).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from archdsl.costing.value import CostContext
from archdsl.layers import get_layer, list_layers, module_class
from archdsl.spec.model import ModelSettings
from tests.layers.helpers import fused_conv_counted_flops, saved_activation_bytes

D = 32
MODEL = ModelSettings(d_model=D)
CTX = 10  # context of the decode step: the step reads CTX - 1 earlier tokens and its own


def _conv_taps(layer) -> int:
    """2 FLOPs per tap and channel of the layer's depthwise conv (weight (C, 1, K))."""
    return 2 * layer.conv1d.weight.numel()


def _conv_padding(layer, T) -> int:
    """What the counter counts of the fused conv + SiLU beyond the conv's cost, the K - 1 outputs
    of its padding (negative: subtracted from the count)."""
    return _conv_taps(layer) * T - fused_conv_counted_flops(layer.conv1d.weight, T)


def _doubling(length: int) -> int:
    """Element updates of a Hillis-Steele scan over ``length`` positions: sum of length - s over
    the steps s = 1, 2, 4, ... < length."""
    s, total = 1, 0
    while s < length:
        total += length - s
        s *= 2
    return total


# ---- element-wise work of one step (B = 1) -------------------------------------------------------


def _step_ssm(layer):
    h = layer.heads * layer.p.head_dim * layer.p.state
    return _conv_taps(layer) + 3 * h  # h * exp(dt A), (dt x) * B, the add; h C is a product


def _step_mamba(layer):
    EN = layer.A_log.numel()
    return _conv_taps(layer) + 5 * EN  # dt A, its exp, (dt x) B, h * decay and the add


def _step_gdn(layer):
    S = layer.heads * layer.k_dim * layer.v_dim
    return 2 * layer.conv1d.weight.numel() + 3 * S  # S * exp(g), k delta^T, the add; S^T k, S^T q are products


def _step_rglru(layer):
    return _conv_taps(layer) + 2 * layer.p.width  # a * h + u


def _step_conv(layer):
    return 2 * layer.conv.weight.numel()


STEP = {"ssm": _step_ssm, "mamba": _step_mamba, "gdn": _step_gdn, "rglru": _step_rglru, "conv": _step_conv}


# ---- element-wise work of a forward over T tokens (B = 1) -----------------------------------------


def _forward_ssm(layer, T):
    return _conv_padding(layer, T)  # the SSD is products


def _forward_gdn(layer, T):
    # per chunk and head the triangular solve for (I + A)^-1 against the identity: C columns of
    # C (C - 1) / 2 multiply-adds (unit diagonal)
    C = min(layer.p.chunk, T)
    return _conv_padding(layer, T) + layer.heads * math.ceil(T / C) * C * C * (C - 1)


def _forward_rglru(layer, T):
    W = layer.p.width
    # the scan: h0 into the first step (a multiply-add), then per doubling step a multiply-add on
    # u and a multiply on a at every position it updates; the conv is F.conv1d, which is counted
    return 2 * W + 3 * W * _doubling(T)


def _forward_mamba(layer, T):
    """The blocked sequential scan (selective_scan.py) over T padded to whole sub-chunks: per
    state element and padded token the decay's product, floor and exp2 (3), the input (dt x) B
    (1) and the update, a multiply-add (2); the read-out against C is a bmm the counter sees.
    Per channel and real token: dt x (1)."""
    from archdsl.nn.layers.selective_scan import SUB  # the scan's sub-chunk length, a kernel setting

    E, N = layer.A_log.shape
    sub = min(SUB, layer.p.chunk, T)
    Tp = math.ceil(T / sub) * sub
    return _conv_padding(layer, T) + E * T + 6 * E * N * Tp


FORWARD = {"ssm": _forward_ssm, "gdn": _forward_gdn, "rglru": _forward_rglru, "mamba": _forward_mamba}


CASES = [
    pytest.param("attn", {"heads": 4, "kv_heads": 2}, id="attn-gqa"),
    pytest.param("attn", {"heads": 4, "qk_norm": True}, id="attn-qk-norm"),
    pytest.param("attn", {"heads": 2, "kv_heads": 1, "window": 64}, id="attn-window"),
    pytest.param("mlp", {"hidden": 48}, id="mlp"),
    pytest.param("moe", {"experts": 4, "top_k": 2, "hidden": 24}, id="moe"),
    pytest.param("moe", {"experts": 3, "top_k": 1, "hidden": 16}, id="moe-top1"),
    pytest.param("conv", {"kernel": 3}, id="conv"),
    pytest.param("conv", {"kernel": 1}, id="conv-k1"),
    pytest.param("ssm", {"state": 6, "head_dim": 8, "chunk": 12, "groups": 2, "conv": 3}, id="ssm-groups"),
    pytest.param("ssm", {"state": 8, "head_dim": 16, "chunk": 16}, id="ssm"),
    pytest.param("mamba", {"state": 8, "chunk": 16}, id="mamba"),
    pytest.param("mamba", {"state": 4, "chunk": 64, "conv": 2}, id="mamba-long-chunk"),
    pytest.param("gdn", {"heads": 2, "head_dim": 8, "expand_v": 3.0, "chunk": 16}, id="gdn"),
    pytest.param("gdn", {"heads": 1, "head_dim": 8, "chunk": 8, "conv": 1}, id="gdn-conv1"),
    pytest.param("rglru", {"heads": 2}, id="rglru"),
    pytest.param("rglru", {"heads": 1, "conv": 1}, id="rglru-one-head"),
]


def make(name, kw, device=None):
    cls = get_layer(name)
    params = cls.Params(**kw)
    with torch.device(device or "cpu"):
        return cls(params, MODEL), cls, params


def test_every_layer_is_checked():
    checked = {case.values[0] for case in CASES}
    assert checked == {name for name in list_layers() if module_class(name).__module__.startswith("archdsl.")}


def _step_flops(layer, device):
    state = layer.init_state(1, max_len=CTX, device=device, dtype=torch.float32)
    with torch.no_grad():
        for _ in range(CTX - 1):
            layer.step(torch.randn(1, D, device=device), state)
        with FlopCounterMode(display=False) as counter:
            layer.step(torch.randn(1, D, device=device), state)
    return counter.get_total_flops()


@pytest.mark.parametrize("name, kw", CASES)
def test_decode_flops_are_the_step_counted(name, kw):
    torch.manual_seed(0)
    try:  # the meta device: shapes only, and SDPA as products the counter sees
        layer, cls, params = make(name, kw, "meta")
        measured = _step_flops(layer, "meta")
    except (NotImplementedError, RuntimeError):  # data-dependent routing (moe) needs real tensors
        layer, cls, params = make(name, kw)
        measured = _step_flops(layer, "cpu")
    cost = cls.cost(params, MODEL, CostContext(seq_len=CTX))
    assert cost.decode_flops == measured + STEP.get(name, lambda _: 0)(layer)


@pytest.mark.parametrize("T", [16, 40])
@pytest.mark.parametrize("name, kw", CASES)
def test_forward_flops_are_the_forward_counted(name, kw, T):
    torch.manual_seed(0)
    layer, cls, params = make(name, kw)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        layer(torch.randn(1, T, D))
    # attention scores: CPU's fused SDPA is not in the counter's table; checked on meta elsewhere
    counted = sum(f for op, f in counter.get_flop_counts()["Global"].items() if "scaled_dot" not in str(op))
    cost = cls.cost(params, MODEL, CostContext(seq_len=T))
    expected = counted + FORWARD.get(name, lambda *_: 0)(layer, T)
    assert T * (cost.matmul_flops + cost.scan_flops) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("T", [16, 40, 48])
@pytest.mark.parametrize("name, kw", CASES)
def test_activation_bytes_are_what_autograd_keeps(name, kw, T):
    torch.manual_seed(0)
    layer, cls, params = make(name, kw)
    kept = saved_activation_bytes(layer, torch.randn(1, T, D, requires_grad=True))
    cost = cls.cost(params, MODEL, CostContext(seq_len=T, act_bytes=4))
    assert cost.activation_bytes == pytest.approx(kept, rel=0.02)


def test_ssm_chunk_pass_as_a_loop_is_counted():
    """Past MAX_MATRIX_CHUNKS states to pass, the SSD passes them from chunk to chunk in a loop: a
    multiply by the chunk's decay and an add per state element and chunk, element-wise work. A
    forward starts from zeros and keeps no final state, so it passes n - 2 states on (the first
    chunk's end state is where the second starts; the last chunk's is not needed)."""
    from archdsl.nn.layers.ssd_masked import MAX_MATRIX_CHUNKS  # a kernel setting: where the loop starts

    n = MAX_MATRIX_CHUNKS + 10
    T = 2 * n - 1  # chunks of two tokens, the last one padded
    layer, cls, params = make("ssm", {"state": 2, "head_dim": 16, "chunk": 2, "conv": 2})
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        layer(torch.randn(1, T, D))
    states = layer.heads * layer.p.head_dim * layer.p.state
    expected = counter.get_total_flops() + _forward_ssm(layer, T) + 2 * (n - 2) * states
    cost = cls.cost(params, MODEL, CostContext(seq_len=T))
    assert T * (cost.matmul_flops + cost.scan_flops) == pytest.approx(expected, rel=1e-9)
