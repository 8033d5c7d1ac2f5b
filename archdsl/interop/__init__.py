"""Published configs in and out: Hugging Face ``config.json`` -> DSL text (:func:`from_hf_config`)
and DSL layout -> the ``layer_types`` / ``hybrid_override_pattern`` fields (:func:`to_hf_layer_types`).
Nothing here imports torch."""

from archdsl.interop.hf_config import FAMILIES, from_hf_config, read_config

__all__ = ["FAMILIES", "from_hf_config", "read_config"]
