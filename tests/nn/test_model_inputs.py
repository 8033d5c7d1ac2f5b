"""model(ids) and generate refuse what they cannot do, before doing anything (issue 14, item 2)."""

from __future__ import annotations

import pytest
import torch

import archdsl
from archdsl.errors import GenerationError, LimitError


@pytest.fixture(scope="module")
def model():
    return archdsl.build(archdsl.parse("attn mlp", d_model=64, vocab=100))


@pytest.mark.parametrize(
    "ids, message",
    [
        pytest.param([[1, 100]], r"token ids must be in 0\.\.99 \(vocab=100\), got 1\.\.100", id="past-vocab"),
        pytest.param([[-1, 3]], r"token ids must be in 0\.\.99 \(vocab=100\), got -1\.\.3", id="negative"),
        pytest.param([[1.0, 2.0]], r"integer token ids .* torch\.float32", id="float"),
        pytest.param([[True]], r"integer token ids, got a tensor of torch\.bool", id="bool"),
    ],
)
def test_forward_checks_token_ids(model, ids, message):
    with pytest.raises(GenerationError, match=message):
        model(torch.tensor(ids))


def test_forward_accepts_the_last_id(model):
    assert model(torch.tensor([[0, 99]])).shape == (1, 2, 100)


def test_generate_refuses_a_state_that_cannot_fit_before_allocating(model, monkeypatch):
    # the KV cache of 10^12 tokens is ~0.5 PB: refused from the cost model, nothing allocated
    allocated = []
    monkeypatch.setattr(type(model), "init_state", lambda self, *a, **k: allocated.append(1))
    with pytest.raises(LimitError, match=r"generating 1,000,000,000,000 tokens after a prompt of 1 x 2 needs"):
        model.generate(torch.tensor([[1, 2]]), max_new_tokens=10**12)
    assert not allocated
