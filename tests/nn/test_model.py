"""The built model: parameter counts equal Hugging Face's, sharing is real, branches are summed."""

from __future__ import annotations

import pytest
import torch

import archdsl
from archdsl.nn.blocks import ParallelResidual

transformers = pytest.importorskip("transformers")


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    "d_model, layers, heads, kv_heads, vocab, tied",
    [(64, 2, 4, 4, 100, False), (128, 3, 8, 2, 333, True), (256, 4, 4, 1, 1000, False)],
)
def test_attn_mlp_stack_has_llama_parameter_count(d_model, layers, heads, kv_heads, vocab, tied):
    spec = archdsl.parse(
        f"{layers}x(attn heads={heads} kv_heads={kv_heads} mlp)", d_model=d_model, vocab=vocab, tie_embeddings=tied
    )
    hidden = spec.layers()[1].params.hidden
    config = transformers.LlamaConfig(
        vocab_size=vocab,
        hidden_size=d_model,
        intermediate_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        tie_word_embeddings=tied,
    )
    with torch.device("meta"):
        reference = transformers.LlamaForCausalLM(config)
        ours = archdsl.build(spec)
    assert n_params(ours) == n_params(reference)


@pytest.mark.parametrize(
    "d_model, layers, state, head_dim, groups, vocab",
    [(64, 2, 16, 16, 1, 100), (128, 3, 32, 32, 2, 500), (256, 4, 64, 64, 4, 1000)],
)
def test_ssm_stack_has_mamba2_parameter_count(d_model, layers, state, head_dim, groups, vocab):
    spec = archdsl.parse(
        f"{layers}x(ssm state={state} head_dim={head_dim} groups={groups})", d_model=d_model, vocab=vocab
    )
    config = transformers.Mamba2Config(
        vocab_size=vocab,
        hidden_size=d_model,
        num_hidden_layers=layers,
        state_size=state,
        head_dim=head_dim,
        num_heads=2 * d_model // head_dim,
        n_groups=groups,
        expand=2,
        conv_kernel=4,
        tie_word_embeddings=False,
    )
    with torch.device("meta"):
        reference = transformers.Mamba2ForCausalLM(config)
        ours = archdsl.build(spec)
    assert n_params(ours) == n_params(reference)


def test_shared_weights_are_one_tensor_counted_once():
    d = 32
    plain = archdsl.build(archdsl.parse("ssm attn mlp ssm attn mlp", d_model=d, vocab=50))
    shared = archdsl.build(archdsl.parse("let g = shared(attn mlp)\nssm g ssm g", d_model=d, vocab=50))
    once = archdsl.build(archdsl.parse("ssm attn mlp ssm", d_model=d, vocab=50))
    assert n_params(shared) == n_params(once) < n_params(plain)
    assert (
        shared.layers[1] is shared.layers[4]
        and shared.layers[1].mixer.q_proj.weight is shared.layers[4].mixer.q_proj.weight
    )
    # one gradient step moves both uses together
    ids = torch.randint(0, 50, (2, 8))
    shared(ids).sum().backward()
    assert shared.layers[1].mixer.q_proj.weight.grad is not None


def test_tied_embeddings_share_the_matrix():
    model = archdsl.build(archdsl.parse("mlp", d_model=32, vocab=50, tie_embeddings=True))
    assert model.lm_head.weight is model.embed.weight


def test_parallel_branches_are_summed_inside_one_residual():
    model = archdsl.build(archdsl.parse("(mlp | mlp hidden=64)", d_model=32, vocab=50))
    block = model.layers[0]
    assert isinstance(block, ParallelResidual)
    x = torch.randn(2, 5, 32)
    h = block.norm(x)
    expected = x + block.branches[0][0](h) + block.branches[1][0](h)
    torch.testing.assert_close(block(x), expected)


def test_forward_gives_logits_of_the_vocabulary():
    model = archdsl.build(archdsl.parse("2x(ssm) attn window=4 mlp", d_model=64, vocab=77))
    logits = model(torch.randint(0, 77, (3, 11)))
    assert logits.shape == (3, 11, 77) and torch.isfinite(logits).all()
