"""The layer registry: explicit data with read APIs beside the write API (after timm's)."""

from __future__ import annotations

import importlib
import keyword
import re
from importlib.metadata import entry_points

from archdsl.errors import RegistryError
from archdsl.layers.base import LayerParams

ENTRY_POINT_GROUP = "archdsl.layers"
_NAME = re.compile(r"[a-z_][a-z0-9_]*\Z")
# Words of the language that a layer may not take as its name.
_RESERVED = {"model", "let", "shared", "true", "false", "x"}
_REQUIRED_METHODS = ("forward", "init_state", "step", "cost")

# Modules of archdsl.layers that define the built-in layer types.
BUILTIN_MODULES = ("attn", "mlp", "moe", "conv", "ssm", "mamba", "gdn", "rglru")

_layers: dict[str, type] = {}
_entry_points_loaded = False


def register_layer(cls: type) -> type:
    """Add a layer type (usable as a class decorator). Checks the whole contract up front, so a
    layer without, say, a cost formula is refused here rather than counted as zero later."""
    name = getattr(cls, "name", None)
    where = f"layer class {cls.__module__}.{cls.__qualname__}"
    if not isinstance(name, str) or not _NAME.match(name) or name in _RESERVED or keyword.iskeyword(name):
        raise RegistryError(f"{where}: 'name' must be a lower-case identifier that is not a keyword, got {name!r}")
    params = getattr(cls, "Params", None)
    if not (isinstance(params, type) and issubclass(params, LayerParams)):
        raise RegistryError(f"{where}: 'Params' must be a subclass of archdsl.layers.LayerParams")
    if not isinstance(getattr(cls, "description", None), str):
        raise RegistryError(f"{where}: 'description' must be a one-line string")
    missing = [m for m in _REQUIRED_METHODS if not callable(getattr(cls, m, None))]
    if missing:
        raise RegistryError(f"{where}: missing {', '.join(missing)} of the layer contract")
    existing = _layers.get(name)
    if existing is not None and existing is not cls:
        raise RegistryError(
            f"{where}: a layer named '{name}' is already registered by {existing.__module__}.{existing.__qualname__}"
        )
    _layers[name] = cls
    return cls


def unregister_layer(name: str) -> None:
    """Remove a layer type (for tests and interactive sessions)."""
    _layers.pop(name, None)


def _load_entry_points() -> None:
    """Import the built-in layers, then every layer registered by entry point (once)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for module in BUILTIN_MODULES:
        importlib.import_module(f"archdsl.layers.{module}")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plug-in must say which one, not crash with its traceback
            raise RegistryError(
                f"entry point '{ep.name}' in group '{ENTRY_POINT_GROUP}' failed to load: {exc}"
            ) from exc
        if _layers.get(getattr(cls, "name", None)) is not cls:
            register_layer(cls)


def get_layer(name: str) -> type:
    """The layer type registered under ``name``; :class:`KeyError` if there is none."""
    _load_entry_points()
    return _layers[name]


def is_layer(name: str) -> bool:
    _load_entry_points()
    return name in _layers


def list_layers() -> list[str]:
    """Names of all registered layer types, sorted."""
    _load_entry_points()
    return sorted(_layers)
