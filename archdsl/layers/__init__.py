"""Layer types: the contract, the registry and the built-in layers' torch-free halves.

``archdsl/layers/builtin/`` holds one file per built-in layer type: its parameters, description
and analytic cost, read without torch. Their modules (the torch halves, with the kernels) are
in ``archdsl/nn/layers/``, imported by build only. The built-in layers are registered the first
time the registry is read, so ``import archdsl`` stays cheap and a third-party layer registered
by entry point sits beside them.
"""

from archdsl.layers.base import InvalidParams, Layer, LayerContract, LayerParams, LayerType
from archdsl.layers.registry import (
    ENTRY_POINT_GROUP,
    get_layer,
    is_layer,
    list_layers,
    module_class,
    register_layer,
    unregister_layer,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "InvalidParams",
    "Layer",
    "LayerContract",
    "LayerParams",
    "LayerType",
    "get_layer",
    "is_layer",
    "list_layers",
    "module_class",
    "register_layer",
    "unregister_layer",
]
