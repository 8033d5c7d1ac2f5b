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
        pytest.param([[True]], r"torch\.long \(or int32\), got a tensor of torch\.bool", id="bool"),
    ],
)
def test_forward_checks_token_ids(model, ids, message):
    with pytest.raises(GenerationError, match=message):
        model(torch.tensor(ids))


def test_forward_accepts_the_last_id(model):
    assert model(torch.tensor([[0, 99]])).shape == (1, 2, 100)


@pytest.mark.parametrize(
    "new, message",
    [
        # a KV cache of 10^9 tokens is ~0.5 TB: refused from the cost model
        pytest.param(10**9, r"generating 1,000,000,000 tokens after a prompt of 1 x 2 needs", id="too-big"),
        pytest.param(10**12, r"generating 1,000,000,000,000 tokens .* past the limit", id="past-the-limit"),
    ],
)
def test_generate_refuses_a_state_that_cannot_fit_before_allocating(model, monkeypatch, new, message):
    allocated = []
    monkeypatch.setattr(type(model), "init_state", lambda self, *a, **k: allocated.append(1))
    with pytest.raises(LimitError, match=message):
        model.generate(torch.tensor([[1, 2]]), max_new_tokens=new)
    assert not allocated


def test_other_integer_dtypes_are_refused_clearly(model):
    with pytest.raises(GenerationError, match=r"torch\.long \(or int32\), got a tensor of torch\.uint8"):
        model(torch.tensor([[1, 2]], dtype=torch.uint8))
    assert model(torch.tensor([[1, 2]], dtype=torch.int32)).shape == (1, 2, 100)


def test_generate_takes_numpy_integers(model):
    np = pytest.importorskip("numpy")
    out = model.generate(torch.tensor([[1]]), np.int64(2), temperature=0, top_k=np.int64(3))
    assert out.shape == (1, 3)


def test_cost_refuses_lengths_that_would_overflow():
    with pytest.raises(archdsl.ArchDSLError, match="seq_len=a number of 401 digits is more than the limit"):
        archdsl.cost("ssm", seq_len=10**400)


def test_from_hf_names_what_it_takes():
    with pytest.raises(archdsl.ArchDSLError, match="takes a Hugging Face model or config"):
        archdsl.from_hf(5)
