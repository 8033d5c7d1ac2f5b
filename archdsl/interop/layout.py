"""A layout read from a published config, and its text: ``let`` lines and a rolled stack.

A :class:`Layout` is what an importer builds: the model settings and one :data:`Block` per
decoder layer of the original (a Jamba layer is ``mamba moe``, a Nemotron-H layer one sub-layer).
:func:`render` writes it as a program: one ``let`` per distinct layer call that carries
parameters (named after its layer type), one per shared block, one per distinct decoder layer
when there are several kinds, then the stack rolled into ``Nx(...)`` over decoder layers:

    model d_model=4096 vocab=32000 tie_embeddings=false norm_eps=1e-06
    let attn = attn heads=32 kv_heads=32 head_dim=128 rope_theta=10000.0
    let mlp = mlp hidden=11008
    32x(attn mlp)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from archdsl.syntax.printer import format_value, wrap_items
from archdsl.syntax.roll import Run, roll


@dataclass(frozen=True)
class Call:
    """One layer call: ``attn heads=8 window=512`` is ``Call("attn", (("heads", 8), ("window", 512)))``."""

    type: str
    params: tuple[tuple[str, Any], ...] = ()

    @staticmethod
    def of(type: str, **params: Any) -> Call:
        """A call with the parameters that are not None, in the order given."""
        return Call(type, tuple((k, v) for k, v in params.items() if v is not None))

    def text(self) -> str:
        return " ".join([self.type, *(f"{k}={format_value(v)}" for k, v in self.params)])


@dataclass(frozen=True)
class Parallel:
    """Branches on the same input, summed: ``(attn | ssm)``."""

    branches: tuple[tuple[Call, ...], ...]


@dataclass(frozen=True)
class Shared:
    """One set of weights used wherever it appears; ``index`` tells apart distinct shared blocks."""

    index: int
    body: tuple[Call, ...]


Item = Union[Call, Parallel, Shared]
Block = tuple[Item, ...]


@dataclass
class Layout:
    """Model settings, the decoder layers as blocks, and the comment lines that head the text."""

    d_model: int
    vocab: int
    tie_embeddings: bool
    norm_eps: float
    blocks: list[Block]
    comments: list[str] = field(default_factory=list)


def render(layout: Layout) -> str:
    """The program text of ``layout`` (see the module docstring)."""
    names = _Names()
    calls = [c for block in layout.blocks for item in block for c in _calls(item)]
    for call in sorted(dict.fromkeys(calls), key=lambda c: bool(c.params)):  # bare names first
        names.call(call)
    lines = [f"# {line}" for line in layout.comments]
    tied = format_value(layout.tie_embeddings)
    lines.append(
        f"model d_model={layout.d_model} vocab={layout.vocab} tie_embeddings={tied} "
        f"norm_eps={format_value(float(layout.norm_eps))}"
    )
    # `let attn = attn ...` makes later `attn` mean the let: the lets named after a layer type
    # come after every other let that calls that type
    named = [(call, name) for call, name in names.calls.items() if call.params]
    named.sort(key=lambda pair: pair[1] == pair[0].type)
    lines += [f"let {name} = {call.text()}" for call, name in named]
    for item in dict.fromkeys(i for block in layout.blocks for i in block if isinstance(i, Shared)):
        name = names.fresh("shared_block")  # `shared` itself is a keyword
        names.items[item] = name
        lines.append(f"let {name} = shared({' '.join(names.calls[c] for c in item.body)})")
    distinct = list(dict.fromkeys(layout.blocks))
    if len(distinct) > 1:
        for block in distinct:
            if len(block) > 1:
                name = names.fresh("_".join(_word(names, i) for i in block))
                lines.append(f"let {name} = {names.block(block)}")
                names.blocks[block] = name
    words = [names.blocks.get(b) or names.block(b) for b in layout.blocks]
    lines += wrap_items([_rolled(x) for x in roll(words)])
    return "\n".join(lines) + "\n"


def _calls(item: Item) -> list[Call]:
    if isinstance(item, Call):
        return [item]
    if isinstance(item, Shared):
        return list(item.body)
    return [c for branch in item.branches for c in branch]


def _rolled(x: Any) -> str:
    if isinstance(x, Run):
        return f"{x.count}x({' '.join(_rolled(y) for y in x.body)})"
    return x


def _word(names: _Names, item: Item) -> str:
    """A name part for a block's let: the call's name, ``shared``, or the branches joined."""
    if isinstance(item, Parallel):
        return "_".join(names.calls[c] for branch in item.branches for c in branch)
    return names.items.get(item) or names.calls[item]


class _Names:
    """Let names: a call with parameters is named after its layer type (``attn``, then ``swa``
    for a windowed one, ``attn2`` ...); a call without parameters is written as the layer name."""

    def __init__(self) -> None:
        self.calls: dict[Call, str] = {}
        self.items: dict[Item, str] = {}
        self.blocks: dict[Block, str] = {}
        self.taken: set[str] = set()

    def call(self, call: Call) -> None:
        if not call.params:
            self.calls[call] = call.type
            self.taken.add(call.type)
            return
        base = "swa" if call.type == "attn" and dict(call.params).get("window") else call.type
        self.calls[call] = self.fresh(base)

    def fresh(self, base: str) -> str:
        name, n = base, 1
        while name in self.taken:
            n += 1
            name = f"{base}{n}"
        self.taken.add(name)
        return name

    def block(self, block: Block) -> str:
        parts = []
        for item in block:
            if isinstance(item, Parallel):
                parts.append("(" + " | ".join(" ".join(self.calls[c] for c in b) for b in item.branches) + ")")
            else:
                parts.append(self.items.get(item) or self.calls[item])
        return " ".join(parts)
