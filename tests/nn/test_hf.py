"""from_hf: logits equal Hugging Face transformers' for the same weights (float32, CPU)."""

from __future__ import annotations

import pytest
import torch

import archdsl
from archdsl.errors import ArchDSLError

transformers = pytest.importorskip("transformers")


def _compare(reference: torch.nn.Module, vocab: int, length: int = 37) -> None:
    reference.eval()
    ours = archdsl.from_hf(reference).eval()
    ids = torch.randint(0, vocab, (2, length))
    with torch.no_grad():
        expected = reference(ids).logits
        got = ours(ids)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("tied, kv_heads", [(False, 4), (True, 2)])
def test_llama_logits_match(tied, kv_heads):
    config = transformers.LlamaConfig(
        vocab_size=120,
        hidden_size=64,
        intermediate_size=160,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=kv_heads,
        tie_word_embeddings=tied,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
    )
    _compare(transformers.LlamaForCausalLM(config), 120)


@pytest.mark.parametrize("groups", [1, 2])
def test_mamba2_logits_match(groups):
    config = transformers.Mamba2Config(
        vocab_size=100,
        hidden_size=64,
        num_hidden_layers=2,
        state_size=16,
        head_dim=16,
        num_heads=8,
        n_groups=groups,
        expand=2,
        conv_kernel=4,
        chunk_size=16,
        tie_word_embeddings=False,
    )
    reference = transformers.Mamba2ForCausalLM(config)
    with torch.no_grad():  # move D and dt_bias off their defaults so that they matter
        for layer in reference.backbone.layers:
            layer.mixer.D.uniform_(0.5, 1.5)
            layer.mixer.dt_bias.uniform_(-2, 0)
    _compare(reference, 100)


def test_mamba_logits_match():
    config = transformers.MambaConfig(
        vocab_size=90,
        hidden_size=48,
        num_hidden_layers=2,
        state_size=8,
        expand=2,
        conv_kernel=4,
        tie_word_embeddings=True,
        use_mambapy=False,
    )
    _compare(transformers.MambaForCausalLM(config), 90)


def test_from_config_builds_the_same_shapes():
    config = transformers.LlamaConfig(
        vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2
    )
    model = archdsl.from_hf(config)
    assert [t.type for t in model.spec.layers()] == ["attn", "mlp"]
    assert model.spec.layers()[1].params.hidden == 64


def test_unsupported_configs_are_named():
    config = transformers.LlamaConfig(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        attention_bias=True,
    )
    with pytest.raises(ArchDSLError, match="attention_bias=True: archdsl's projections have no bias"):
        archdsl.from_hf(config)
    with pytest.raises(ArchDSLError, match="cannot import a 'gpt2' model"):
        archdsl.from_hf(transformers.GPT2Config())
