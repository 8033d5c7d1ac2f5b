"""Layer types: the contract, the registry and the built-in layers (one file each).

The built-in layers are imported the first time the registry is read, so ``import archdsl``
stays cheap and a third-party layer registered by entry point sits beside them.
"""

from archdsl.layers.base import InvalidParams, Layer, LayerParams, LayerType
from archdsl.layers.registry import (
    ENTRY_POINT_GROUP,
    get_layer,
    is_layer,
    list_layers,
    register_layer,
    unregister_layer,
)
from archdsl.layers.state import state_nbytes

__all__ = [
    "ENTRY_POINT_GROUP",
    "InvalidParams",
    "Layer",
    "LayerParams",
    "LayerType",
    "get_layer",
    "is_layer",
    "list_layers",
    "register_layer",
    "state_nbytes",
    "unregister_layer",
]
