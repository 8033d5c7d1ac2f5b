"""The layer contract: what every layer type, built in or third-party, provides.

A layer type has two halves. The torch-free half is what the language, ``archdsl layers`` and
the cost model read: a :class:`LayerContract` with the name, a one-line description, the
parameter model and the analytic cost, plus where its module lives as ``"package.module:Class"``
text. That module (the torch half) is imported only when a model is built, so checking,
formatting and costing a program never import torch::

    register_layer(LayerContract(
        name="mylayer",
        description="one line for `archdsl layers`",
        Params=MyParams,                      # a LayerParams subclass: fields, defaults, docs
        cost=my_cost,                         # (params, model, ctx: CostContext) -> Cost
        module="my_package.torch_part:MyLayer",
    ))

The module class is built as ``MyLayer(params, model)`` and provides the instance side below.
The older form, one ``nn.Module`` subclass with both halves, is still accepted (it imports torch
when it is registered)::

    class MyLayer(nn.Module):
        name = "mylayer"                      # the word used in the language
        description = "one line for `archdsl layers`"
        Params = MyParams                     # a LayerParams subclass: fields, defaults, docs

        def __init__(self, params: MyParams, model: ModelSettings): ...
        def forward(self, x, *, reference=False): ...          # (B, T, D) -> (B, T, D)
        def init_state(self, batch, *, max_len, device, dtype): ...  # state before token one
        def step(self, x, state): ...                          # (B, D), state -> (B, D), state
        @classmethod
        def cost(cls, params, model, ctx: CostContext) -> Cost: ...   # analytic, no tensors

``reference=True`` runs the plain twin of the fast path (a loop over time) that the tests compare
against. A layer may also define ``prefill(x, state) -> (y, state)``: the fast path over a whole
prompt (B, T, D) that also fills the state, so that generation does not step through the prompt
token by token; without it, :meth:`ArchModel.generate` steps. Register a layer with
:func:`archdsl.layers.register_layer`, or from another package with an entry point in the group
``archdsl.layers``.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    import torch

    from archdsl.costing.value import Cost, CostContext
    from archdsl.spec.model import ModelSettings


def divisors(n: int, limit: int | None = 12, upto: int | None = None) -> str:
    """``"1, 2, 4, 8"``: the divisors of n (those up to ``upto`` if given), the allowed values
    quoted in error messages; shortened with ``", ..."`` past ``limit`` values (None: never)."""
    found = [k for k in range(1, (n if upto is None else min(n, upto)) + 1) if n % k == 0]
    if limit is not None and len(found) > limit:
        return ", ".join(map(str, found[:limit])) + ", ..."
    return ", ".join(map(str, found))


class InvalidParams(ValueError):
    """Raised by :meth:`LayerParams.resolve` for a combination a layer cannot build.

    ``field`` names the parameter the message is about, so the error can point at it.
    """

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


class LayerParams(BaseModel):
    """Base of every layer's parameter model. Fields left ``None`` are derived by ``resolve``."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    def resolve(self, model: ModelSettings) -> LayerParams:
        """Return a copy with derived defaults filled in; raise :class:`InvalidParams` if the
        combination cannot be built. Must not allocate tensors."""
        return self


@runtime_checkable
class Layer(Protocol):
    """The instance side of the contract (what the model builder and generation call)."""

    def forward(self, x: torch.Tensor, *, reference: bool = False) -> torch.Tensor: ...

    def init_state(self, batch: int, *, max_len: int, device: Any, dtype: Any) -> Any:
        """State before the first token, sized for ``max_len`` tokens in all (prompt + new):
        a full KV cache is allocated for ``max_len`` positions, a window's ring buffer for
        ``min(window, max_len)``, a recurrent state does not depend on it."""
        ...

    def step(self, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """One token: ``x`` (B, D) -> (B, D); may update ``state`` in place and return it."""
        ...


class LayerType(Protocol):
    """The class side of the contract (what the registry, resolver and cost model read)."""

    name: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[LayerParams]]

    def __call__(self, params: LayerParams, model: ModelSettings) -> Layer: ...

    def cost(self, params: LayerParams, model: ModelSettings, ctx: CostContext) -> Cost: ...


# the methods a module class must have (checked when it is imported)
MODULE_METHODS = ("forward", "init_state", "step")
MODULE_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*\Z")


@dataclass(frozen=True)
class LayerContract:
    """The torch-free half of a layer type; ``module`` names its ``nn.Module`` class, imported
    the first time a model of it is built. Calling the contract builds a module, as calling a
    module class does, so the builder treats both forms alike.

    >>> from archdsl.layers import get_layer
    >>> get_layer("mlp").module
    'archdsl.nn.layers.mlp:MLP'
    """

    name: str
    description: str
    Params: type[LayerParams]
    cost: Callable[..., Cost]
    module: str

    def load(self) -> type:
        """The module class, imported now; RegistryError if it cannot be, or lacks the contract."""
        from archdsl.errors import RegistryError

        where = f"layer '{self.name}' (module {self.module!r})"
        if not MODULE_PATH.match(self.module):
            raise RegistryError(f"{where}: 'module' must read 'package.module:Class'")
        module_name, class_name = self.module.split(":")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as exc:
            raise RegistryError(f"{where}: cannot import the module class: {exc}") from exc
        missing = [m for m in MODULE_METHODS if not callable(getattr(cls, m, None))]
        if not isinstance(cls, type) or missing:
            raise RegistryError(f"{where}: missing {', '.join(missing) or 'a class'} of the layer contract")
        return cls

    def __call__(self, params: LayerParams, model: ModelSettings) -> Layer:
        return self.load()(params, model)
