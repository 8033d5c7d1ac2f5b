"""The public functions of archdsl, one per pipeline stage (DESIGN.md section 4)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from archdsl.errors import ArchDSLError

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

    program = parse_program(text, filename)
    try:
        return resolve(program, **model_settings)
    except ArchDSLError as err:
        raise err.with_source(source_text(text, filename), filename) from None


def load(path: str | Path, **model_settings: Any) -> Spec:
    """Read an ``.arch`` file and parse it; errors name the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArchDSLError(f"cannot read '{path}': {exc.strerror or exc}") from None
    return parse(data, filename=str(path), **model_settings)


def to_graph(spec: Spec) -> nx.DiGraph:
    """Lower a Spec to its checked ``networkx.DiGraph`` (embedding -> sub-layers -> LM head)."""
    from archdsl.graph.lower import lower

    return lower(spec)


def build(spec: Spec | nx.DiGraph) -> nn.Module:
    """Build the PyTorch model of a Spec (or of its graph). ``model(ids)`` gives logits (B, T, vocab)."""
    from archdsl.nn.build import build_model

    return build_model(spec if not hasattr(spec, "body") else to_graph(spec))
