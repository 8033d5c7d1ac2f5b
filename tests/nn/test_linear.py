"""archdsl.nn.linear: the projections' oneDNN path against F.linear, the reference it replaces."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from archdsl.nn import linear as linear_module
from archdsl.nn.linear import MIN_ROWS, Linear, linear


def _pair(shape, out, bias, dtype=torch.float32):
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=dtype, requires_grad=True)
    w = torch.randn(out, shape[-1], dtype=dtype, requires_grad=True)
    b = torch.randn(out, dtype=dtype, requires_grad=True) if bias else None
    return x, w, b


def _outputs_and_grads(fn, x, w, b):
    y = fn(x, w, b)
    g = torch.randn_like(y, generator=torch.Generator().manual_seed(1))
    inputs = [t for t in (x, w, b) if t is not None]
    return (y, *torch.autograd.grad((y * g).sum(), inputs))


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch build has no oneDNN")
@pytest.mark.parametrize("shape", [(2, 100, 24), (300, 16), (1, 3, 64, 8)], ids=["batch", "2d", "4d"])
@pytest.mark.parametrize("bias", [False, True])
def test_onednn_path_equals_f_linear(monkeypatch, shape, bias):
    """Outputs and the gradients of input, weight and bias equal F.linear's, and the path taken is
    the convolution (the counter sees a convolution, not mm)."""
    _threads(monkeypatch, 2)
    x, w, b = _pair(shape, 40, bias)
    ours = _outputs_and_grads(linear, x, w, b)
    theirs = _outputs_and_grads(F.linear, x, w, b)
    assert ours[0].shape == theirs[0].shape
    for a, r in zip(ours, theirs):
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-5)
    calls = []
    conv2d = F.conv2d
    monkeypatch.setattr(linear_module.F, "conv2d", lambda *a: calls.append(1) or conv2d(*a))
    linear(x, w, b)
    assert calls == [1]


def _threads(monkeypatch, n, amd=True):
    """torch on n threads, on an AMD processor or not, for this test (the oneDNN path needs two
    threads or more, and AMD's processors)."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: n)
    monkeypatch.setattr(linear_module, "amd_cpu", lambda: amd)


@pytest.mark.parametrize("case", ["few rows", "float64", "mkldnn off", "one thread", "not AMD", "compiling"])
def test_other_cases_take_f_linear(monkeypatch, case):
    _threads(monkeypatch, 1 if case == "one thread" else 2, amd=case != "not AMD")
    rows = MIN_ROWS - 1 if case == "few rows" else 4 * MIN_ROWS
    x, w, b = _pair((rows, 8), 5, True, dtype=torch.float64 if case == "float64" else torch.float32)
    calls = []
    conv2d = F.conv2d
    monkeypatch.setattr(linear_module.F, "conv2d", lambda *a: calls.append(1) or conv2d(*a))
    if case == "mkldnn off":
        monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)  # restored after the test
    if case == "compiling":  # as under torch.compile, which chooses the product's kernel itself
        monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    y = linear(x, w, b)
    assert calls == []
    torch.testing.assert_close(y, F.linear(x, w, b))


def test_module_is_an_nn_linear_with_its_parameters():
    """Same parameter names, shapes and initialisation as nn.Linear, so state dicts load both ways."""
    torch.manual_seed(0)
    ours = Linear(16, 24)
    torch.manual_seed(0)
    theirs = nn.Linear(16, 24)
    assert isinstance(ours, nn.Linear)
    for (name, a), (other, r) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        assert name == other
        torch.testing.assert_close(a, r)
    x = torch.randn(4, 64, 16)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)  # through oneDNN on 2+ threads
