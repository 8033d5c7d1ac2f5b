"""Reading a Hugging Face config field by field, so that nothing is dropped unseen.

Every field an importer looks at is *read* (:meth:`Fields.get`), *required* to hold the value
archdsl computes (:meth:`Fields.expect`) or *ignored* because it does not change the
architecture (:meth:`Fields.ignore`, and :data:`NEUTRAL`: ids, dtype, cache and output flags).
What is left at the end is a field archdsl does not know: a :class:`Difference`, like a value
archdsl cannot express. Differences stop the import with an error that names each one, unless
the caller accepts them (``approximate=True``), and then each is written at the top of the text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from archdsl.errors import ArchDSLError

# Fields of every PretrainedConfig that say nothing about the architecture: identity, tokens,
# what the forward pass returns, caching, serialisation, task heads.
NEUTRAL = frozenset(
    {
        "_name_or_path", "architectures", "auto_map", "transformers_version", "model_type", "dtype",
        "torch_dtype", "bos_token_id", "eos_token_id", "pad_token_id", "sep_token_id",
        "decoder_start_token_id", "id2label", "label2id", "problem_type", "return_dict",
        "output_hidden_states", "output_attentions", "output_router_logits", "use_cache",
        "is_encoder_decoder", "chunk_size_feed_forward", "tokenizer_class", "prefix",
        "task_specific_params", "finetuning_task", "initializer_range", "max_position_embeddings",
        "num_logits_to_keep", "use_mamba_kernels", "use_mambapy", "use_associative_scan",
        "use_mem_eff_path", "use_kernels", "mamba_ssm_cache_dtype", "residual_in_fp32",
        "router_aux_loss_coef", "router_z_loss_coef", "time_step_min", "time_step_max",
        "time_step_floor", "time_step_init_scheme", "time_step_scale", "rescale_prenorm_residual",
        "_attn_implementation", "_attn_implementation_autoset", "_commit_hash", "tie_encoder_decoder",
        "pruned_heads", "torchscript", "use_bfloat16", "tf_legacy_loss", "cross_attention_hidden_size",
        "add_cross_attention", "is_decoder", "quantization_config", "_experts_implementation",
    }
)  # fmt: skip
# initializer_range, time_step_* and rescale_prenorm_residual set the random initialisation,
# router_aux_loss_coef the training loss, residual_in_fp32 and the cache dtype the precision:
# none of them changes which function the trained model computes.

MISSING = object()


@dataclass(frozen=True)
class Difference:
    """A field whose value archdsl cannot reproduce: ``field=value (what archdsl does)``."""

    field: str
    value: Any
    archdsl: str

    def __str__(self) -> str:
        value = self.value if isinstance(self.value, str) else repr(self.value)
        return f"{self.field}={value}: {self.archdsl}"


class Fields:
    """The fields of one config (a dict), with what has been read and what differs."""

    def __init__(self, data: dict[str, Any], name: str):
        self.data = data
        self.name = name
        self.seen: set[str] = set()
        self.differences: list[Difference] = []

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def get(self, key: str, default: Any = MISSING, kind: type | tuple[type, ...] | None = None) -> Any:
        """The value of ``key`` (``default`` when absent or null); a missing required field or a
        value of the wrong kind is an error that names the field and what was expected."""
        self.seen.add(key)
        value = self.data.get(key)
        if value is None:
            if default is MISSING:
                raise self.error(f"missing field '{key}'" + (f" (expected {_kind_name(kind)})" if kind else ""))
            return default
        value = _number(value)
        if kind is not None and not _is_kind(value, kind):
            raise self.error(f"field '{key}' is {value!r}; expected {_kind_name(kind)}")
        return value

    def expect(self, key: str, supported: Any, archdsl: str, default: Any = MISSING) -> None:
        """``key`` must hold ``supported`` (absent counts as ``default``, or as supported if no
        default is given); anything else is a difference described by ``archdsl``."""
        value = self.get(key, supported if default is MISSING else default)
        if not _same(value, supported):
            self.differ(key, value, archdsl)

    def differ(self, field: str, value: Any, archdsl: str) -> None:
        self.differences.append(Difference(field, value, archdsl))

    def ignore(self, *keys: str) -> None:
        self.seen.update(keys)

    def finish(self) -> None:
        """Every field not read, required or ignored is a difference: archdsl does not know it."""
        for key, value in self.data.items():
            if key not in self.seen and key not in NEUTRAL and value is not None:
                self.differ(key, value, "a field archdsl does not read")

    def error(self, message: str) -> ArchDSLError:
        return ArchDSLError(f"{self.name}: {message}")


def _number(value: Any) -> Any:
    """transformers writes infinities in config.json as ``{"__float__": "Infinity"}``."""
    if isinstance(value, dict) and set(value) == {"__float__"}:
        return float(value["__float__"])
    if isinstance(value, list):
        return [_number(v) for v in value]
    return value


def _is_kind(value: Any, kind: type | tuple[type, ...]) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool):
        return bool in kinds
    if isinstance(value, int) and float in kinds:
        return True
    return isinstance(value, kinds)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string", list: "a list"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _same(value: Any, supported: Any) -> bool:
    if isinstance(value, (int, float)) and isinstance(supported, (int, float)) and not isinstance(value, bool):
        return value == supported or (math.isinf(value) and math.isinf(supported) and value * supported > 0)
    if isinstance(value, (list, tuple)) and isinstance(supported, (list, tuple)):
        return len(value) == len(supported) and all(_same(a, b) for a, b in zip(value, supported))
    return value == supported
