"""The layer contract: what every layer type, built in or third-party, provides.

A layer type is an ``nn.Module`` subclass with three class attributes and five methods::

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

from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    import torch

    from archdsl.cost.value import Cost, CostContext
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
