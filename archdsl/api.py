"""The public functions of archdsl, one per pipeline stage (DESIGN.md section 4)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from archdsl.errors import ArchDSLError, LimitError
from archdsl.spec.limits import MAX_SOURCE_BYTES

if TYPE_CHECKING:
    import networkx as nx
    from torch import nn

    from archdsl.spec.model import Spec


def parse(text: str | bytes, *, filename: str | None = None, **model_settings: Any) -> Spec:
    """Parse and resolve a program. Keyword settings (``d_model``, ``vocab``, ...) override the
    program's ``model`` header.

    >>> spec = parse("4x(ssm) 1x(attn window=512)", d_model=256, vocab=1000)
    >>> len(spec.layers())
    5
    """
    from archdsl.spec.resolve import resolve
    from archdsl.syntax.parser import parse_program, source_text

    if not isinstance(text, (str, bytes, bytearray)):
        raise ArchDSLError(f"parse() takes the program as str or bytes, not {type(text).__name__}")
    from archdsl.space.walk import refuse_choices

    program = parse_program(text, filename)
    try:
        refuse_choices(program)
        return resolve(program, **model_settings)
    except ArchDSLError as err:
        raise err.with_source(source_text(text, filename), filename) from None


def load(path: str | Path, **model_settings: Any) -> Spec:
    """Read an ``.arch`` file and parse it; errors name the file."""
    data, name = read_source(path, "load")
    return parse(data, filename=name, **model_settings)


def read_source(path: str | Path, caller: str = "load_space") -> tuple[bytes, str]:
    """The bytes of an ``.arch`` file (refusing huge or unreadable ones) and its name."""
    if not isinstance(path, (str, Path)):
        raise ArchDSLError(f"{caller}() takes a file path, not {type(path).__name__}")
    path = Path(path)
    try:
        with path.open("rb") as file:
            # read one byte past the limit, so that /dev/zero or a stray binary is refused
            data = file.read(MAX_SOURCE_BYTES + 1)
    except OSError as exc:
        raise ArchDSLError(f"cannot read '{path}': {exc.strerror or exc}") from None
    if len(data) > MAX_SOURCE_BYTES:
        raise LimitError(
            f"'{path}' is larger than {MAX_SOURCE_BYTES // 2**20} MiB; an architecture file is a few lines"
        )
    return data, str(path)


def _as_spec(target: Any, caller: str) -> Spec:
    """A Spec from a Spec or program text (what to_graph and build accept)."""
    from archdsl.spec.model import Spec

    if isinstance(target, Spec):
        return target
    if isinstance(target, (str, bytes)):
        return parse(target)
    raise ArchDSLError(
        f"{caller}() takes a Spec (from archdsl.parse or archdsl.load) or program text, not {type(target).__name__}"
    )


def to_graph(spec: Spec | str) -> nx.DiGraph:
    """Lower a Spec to its checked ``networkx.DiGraph`` (embedding -> sub-layers -> LM head)."""
    from archdsl.graph.lower import lower

    return lower(_as_spec(spec, "to_graph"))


def build(spec: Spec | nx.DiGraph | str) -> nn.Module:
    """Build the PyTorch model of a Spec (or of its graph). ``model(ids)`` gives logits (B, T, vocab)."""
    import networkx as nx

    from archdsl.nn.build import build_model

    return build_model(spec if isinstance(spec, nx.DiGraph) else to_graph(spec))
