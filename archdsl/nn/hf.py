"""Import Hugging Face models: the spec of a ``LlamaForCausalLM``, ``Mamba2ForCausalLM`` or
``MambaForCausalLM`` config, and a built model holding the same weights.

Only configurations archdsl reproduces exactly are accepted; anything else (biases, rope
scaling, another activation) is an :class:`ArchDSLError` naming the field, so an import never
silently computes something different from the original.
"""

from __future__ import annotations

from typing import Any

import torch

from archdsl.api import build, parse
from archdsl.errors import ArchDSLError
from archdsl.spec.model import Spec


def spec_from_hf(config: Any) -> Spec:
    """The Spec of a Hugging Face config (Llama, Mamba2 or Mamba), read exactly by
    :func:`archdsl.interop.from_hf_config` (any field it cannot express is an error)."""
    from archdsl.interop.hf_config import from_hf_config

    _kind(config)
    return parse(from_hf_config(config), filename=f"<{type(config).__name__}>")


def from_hf(model_or_config: Any) -> torch.nn.Module:
    """An archdsl model equal to a Hugging Face model: weights are copied when a model is given;
    from a config the model is freshly initialised. ``model.spec`` holds the Spec.

    >>> model = from_hf(transformers.LlamaForCausalLM(config))   # doctest: +SKIP
    """
    config = getattr(model_or_config, "config", model_or_config)
    spec = spec_from_hf(config)
    model = build(spec)
    if hasattr(model_or_config, "state_dict"):
        source = model_or_config.state_dict()
        mapped = {ours: source[theirs] for ours, theirs in _WEIGHT_NAMES[_kind(config)](config).items()}
        missing, unexpected = model.load_state_dict(mapped, strict=False)
        # the LM head of a tied model is the embedding itself and is not in the mapping
        missing = [k for k in missing if not (k == "lm_head.weight" and spec.model.tie_embeddings)]
        if missing or unexpected:
            raise ArchDSLError(f"weights did not map one to one: missing {missing}, unexpected {unexpected}")
        model.to(next(iter(source.values())).dtype)
    return model


def _kind(config: Any) -> str:
    kind = getattr(config, "model_type", None)
    if kind is None:
        raise ArchDSLError(
            f"from_hf() takes a Hugging Face model or config (with a model_type), not {type(config).__name__}; "
            f"supported: {', '.join(_WEIGHT_NAMES)}"
        )
    if kind not in _WEIGHT_NAMES:
        raise ArchDSLError(f"cannot import a '{kind}' model; supported: {', '.join(_WEIGHT_NAMES)}")
    return kind


def _llama_weights(config: Any) -> dict[str, str]:
    names = {"embed.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight"}
    if not config.tie_word_embeddings:
        names["lm_head.weight"] = "lm_head.weight"
    for i in range(config.num_hidden_layers):
        attn, mlp, theirs = f"layers.{2 * i}", f"layers.{2 * i + 1}", f"model.layers.{i}"
        names[f"{attn}.norm.weight"] = f"{theirs}.input_layernorm.weight"
        names[f"{mlp}.norm.weight"] = f"{theirs}.post_attention_layernorm.weight"
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            names[f"{attn}.mixer.{proj}.weight"] = f"{theirs}.self_attn.{proj}.weight"
        for proj in ("gate_proj", "up_proj", "down_proj"):
            names[f"{mlp}.mixer.{proj}.weight"] = f"{theirs}.mlp.{proj}.weight"
    return names


def _ssm_weights(parameters: tuple[str, ...]):
    def names(config: Any) -> dict[str, str]:
        out = {"embed.weight": "backbone.embeddings.weight", "norm.weight": "backbone.norm_f.weight"}
        if not config.tie_word_embeddings:
            out["lm_head.weight"] = "lm_head.weight"
        for i in range(config.num_hidden_layers):
            out[f"layers.{i}.norm.weight"] = f"backbone.layers.{i}.norm.weight"
            for name in parameters:
                out[f"layers.{i}.mixer.{name}"] = f"backbone.layers.{i}.mixer.{name}"
        return out

    return names


_WEIGHT_NAMES = {
    "llama": _llama_weights,
    "mamba2": _ssm_weights(
        ("in_proj.weight", "conv1d.weight", "conv1d.bias", "dt_bias", "A_log", "D", "norm.weight", "out_proj.weight")
    ),
    "mamba": _ssm_weights(
        (
            "in_proj.weight",
            "conv1d.weight",
            "conv1d.bias",
            "x_proj.weight",
            "dt_proj.weight",
            "dt_proj.bias",
            "A_log",
            "D",
            "out_proj.weight",
        )
    ),
}
