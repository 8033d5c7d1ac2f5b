"""Hugging Face config -> DSL text: the layout of a published model, rolled, with its header.

    >>> import transformers, archdsl                                    # doctest: +SKIP
    >>> print(archdsl.from_hf_config(transformers.Mamba2Config(num_hidden_layers=4, hidden_size=256, num_heads=8)))
    # imported from <Mamba2Config> (model_type mamba2)
    model d_model=256 vocab=32768 tie_embeddings=false norm_eps=1e-05
    let ssm = ssm state=128 expand=2 head_dim=64 groups=8 conv=4 chunk=256
    4x(ssm)

Every field of the config is read, required to hold what archdsl computes, or ignored because
it does not change the architecture (:mod:`archdsl.interop.reader`). A field archdsl cannot
express is an :class:`ArchDSLError` naming it, its value and what archdsl does instead; with
``approximate=True`` the text is written anyway and each such difference heads it as a
``# differs:`` comment. Nothing here imports torch: a config is a dict or an object with
``to_dict()``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from archdsl.errors import ArchDSLError
from archdsl.interop import families_attention as attn_families
from archdsl.interop import families_ssm as ssm_families
from archdsl.interop.layout import Layout, render
from archdsl.interop.reader import Fields

FAMILIES: dict[str, Callable[[Fields], Layout]] = {
    "llama": attn_families.llama,
    "mistral": attn_families.llama,
    "qwen3": attn_families.qwen3,
    "qwen3_next": attn_families.qwen3_next,
    "lfm2": attn_families.lfm2,
    "mamba": ssm_families.mamba,
    "mamba2": ssm_families.mamba2_model,
    "jamba": ssm_families.jamba,
    "nemotron_h": ssm_families.nemotron_h,
    "zamba2": ssm_families.zamba2,
    "falcon_h1": ssm_families.falcon_h1,
}


def from_hf_config(config: Any, *, approximate: bool = False, name: str | None = None) -> str:
    """The DSL text of a Hugging Face config: a ``transformers.PretrainedConfig``, a dict as read
    from ``config.json``, or the path of such a file. ``name`` labels errors (default: the file
    name or the config class). ``approximate=True`` accepts fields archdsl cannot express and
    names each in a comment at the top of the text instead of raising."""
    data, name = _as_dict(config, name)
    kind = data.get("model_type")
    if kind is None:
        raise ArchDSLError(f"{name}: missing field 'model_type' (expected one of {', '.join(FAMILIES)})")
    if kind not in FAMILIES:
        raise ArchDSLError(f"{name}: cannot import model_type '{kind}'; supported: {', '.join(FAMILIES)}")
    fields = Fields(data, name)
    layout = FAMILIES[kind](fields)
    fields.finish()
    if fields.differences and not approximate:
        listed = "; ".join(str(d) for d in fields.differences)
        raise ArchDSLError(
            f"{name}: archdsl cannot express this {kind} config exactly: {listed} "
            "(approximate=True, or --approximate, writes it with these differences as comments)"
        )
    layout.comments = [f"imported from {name} (model_type {kind})"]
    layout.comments += [f"differs: {d}" for d in fields.differences]
    text = render(layout)
    _check(text, name)
    return text


def read_config(path: str | Path) -> dict[str, Any]:
    """The dict of a ``config.json``; an unreadable file or malformed JSON is an ArchDSLError."""
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ArchDSLError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ArchDSLError(f"{path}:{exc.lineno}:{exc.colno}: malformed JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise ArchDSLError(f"{path}: expected a JSON object of config fields, not a {type(data).__name__}")
    return data


def _as_dict(config: Any, name: str | None) -> tuple[dict[str, Any], str]:
    if isinstance(config, (str, Path)):
        return read_config(config), name or str(config)
    if isinstance(config, dict):
        return dict(config), name or "<config>"
    if hasattr(config, "to_dict"):
        data = config.to_dict()
        if getattr(config, "model_type", None) and "model_type" not in data:
            data["model_type"] = config.model_type
        return data, name or f"<{type(config).__name__}>"
    raise ArchDSLError(
        f"from_hf_config() takes a transformers config, a dict of config fields or a config.json path, "
        f"not {type(config).__name__}"
    )


def _check(text: str, name: str) -> None:
    """The text must read back (a value out of archdsl's ranges, such as a state of 4096, is
    reported against the config rather than as an error in text the user never wrote)."""
    from archdsl.api import parse

    try:
        parse(text, filename=f"<import of {name}>")
    except ArchDSLError as err:
        raise ArchDSLError(f"{name}: the imported layout does not resolve: {err.message}") from None
