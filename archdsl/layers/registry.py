"""The layer registry: explicit data with read APIs beside the write API (after timm's).

A registered layer is a :class:`LayerContract` (the torch-free half; the built-in layers and
new plug-ins) or a module class carrying both halves (older plug-ins). Reading the registry
never imports torch unless a plug-in of the older form does.
"""

from __future__ import annotations

import importlib
import keyword
import re
from importlib.metadata import entry_points

from archdsl.errors import RegistryError
from archdsl.layers.base import MODULE_METHODS, MODULE_PATH, LayerContract, LayerParams

ENTRY_POINT_GROUP = "archdsl.layers"
_NAME = re.compile(r"[a-z_][a-z0-9_]*\Z")
# Words of the language that a layer may not take as its name.
_RESERVED = {"model", "let", "shared", "true", "false", "x"}
# Modules of archdsl.layers.builtin that register the built-in layer contracts.
BUILTIN_MODULES = ("attn", "mlp", "moe", "conv", "ssm", "mamba", "gdn", "rglru")

_layers: dict[str, LayerContract | type] = {}
_entry_points_loaded = False


def register_layer(cls: LayerContract | type) -> LayerContract | type:
    """Add a layer type: a :class:`LayerContract`, or a module class with both halves (usable as
    a class decorator). Checks the contract up front, so a layer without, say, a cost formula is
    refused here rather than counted as zero later; a contract's module class is checked when it
    is first imported (by build)."""
    name = getattr(cls, "name", None)
    contract = isinstance(cls, LayerContract)
    where = f"layer {name!r}" if contract else f"layer class {cls.__module__}.{cls.__qualname__}"
    if not isinstance(name, str) or not _NAME.match(name) or name in _RESERVED or keyword.iskeyword(name):
        raise RegistryError(f"{where}: 'name' must be a lower-case identifier that is not a keyword, got {name!r}")
    params = getattr(cls, "Params", None)
    if not (isinstance(params, type) and issubclass(params, LayerParams)):
        raise RegistryError(f"{where}: 'Params' must be a subclass of archdsl.layers.LayerParams")
    if not isinstance(getattr(cls, "description", None), str):
        raise RegistryError(f"{where}: 'description' must be a one-line string")
    required = ("cost",) if contract else (*MODULE_METHODS, "cost")
    missing = [m for m in required if not callable(getattr(cls, m, None))]
    if missing:
        raise RegistryError(f"{where}: missing {', '.join(missing)} of the layer contract")
    if contract and not (isinstance(cls.module, str) and MODULE_PATH.match(cls.module)):
        raise RegistryError(f"{where}: 'module' must read 'package.module:Class', got {cls.module!r}")
    existing = _layers.get(name)
    if existing is not None and existing is not cls:
        raise RegistryError(f"{where}: a layer named '{name}' is already registered by {_origin(existing)}")
    _layers[name] = cls
    return cls


def _origin(layer: LayerContract | type) -> str:
    if isinstance(layer, LayerContract):
        return f"the contract of module {layer.module}"
    return f"{layer.__module__}.{layer.__qualname__}"


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
        importlib.import_module(f"archdsl.layers.builtin.{module}")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plug-in must say which one, not crash with its traceback
            raise RegistryError(
                f"entry point '{ep.name}' in group '{ENTRY_POINT_GROUP}' failed to load: {exc}"
            ) from exc
        if _layers.get(getattr(cls, "name", None)) is not cls:
            register_layer(cls)


def get_layer(name: str) -> LayerContract | type:
    """The layer type registered under ``name`` (a contract, or an older plug-in's module class);
    :class:`KeyError` if there is none. Calling it builds the module."""
    _load_entry_points()
    return _layers[name]


def is_layer(name: str) -> bool:
    _load_entry_points()
    return name in _layers


def list_layers() -> list[str]:
    """Names of all registered layer types, sorted."""
    _load_entry_points()
    return sorted(_layers)


def module_class(name: str) -> type:
    """The ``nn.Module`` class of layer type ``name`` (imports it, and so torch)."""
    layer = get_layer(name)
    return layer.load() if isinstance(layer, LayerContract) else layer
