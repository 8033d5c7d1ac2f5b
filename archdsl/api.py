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
    from archdsl.tasks import Task
    from archdsl.training import TrainResult


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
    if not isinstance(path, (str, Path)):
        raise ArchDSLError(f"load() takes a file path, not {type(path).__name__}")
    path = Path(path)
    return parse(read_source(path), filename=str(path), **model_settings)


def read_source(path: Path) -> bytes:
    """The bytes of a program file, at most MAX_SOURCE_BYTES of them. A named pipe with no
    writer reads as empty instead of waiting for one forever; /dev/zero is cut at the limit."""
    import os
    import stat

    try:
        # O_NONBLOCK: opening a FIFO does not wait for a writer; cleared right after, so that
        # reading waits for the data of a writer that is there (a pipe, <(...))
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        with os.fdopen(fd, "rb") as file:
            data = read_bounded(file, str(path))
            if not data and stat.S_ISFIFO(os.fstat(file.fileno()).st_mode):
                raise ArchDSLError(f"'{path}' is a named pipe with nothing written to it: nothing to read")
    except OSError as exc:
        raise ArchDSLError(f"cannot read '{path}': {exc.strerror or exc}") from None
    return data


def read_bounded(file: Any, name: str) -> bytes:
    """Read one byte past the limit, so that /dev/zero or a stray binary is refused."""
    data = file.read(MAX_SOURCE_BYTES + 1)
    if len(data) > MAX_SOURCE_BYTES:
        raise LimitError(
            f"'{name}' is larger than {MAX_SOURCE_BYTES // 2**20} MiB; an architecture file is a few lines"
        )
    return data


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


def train(spec: Spec | str, task: str | Task, **settings: Any) -> TrainResult:
    """Train ``spec`` on ``task`` and return a ``TrainResult`` (see :func:`archdsl.training.train`
    for the settings). Torch is imported here, on the first call, not with ``archdsl``.

    >>> result = train("2x(attn)", "mqar", steps=20, batch=8, d_model=32)   # doctest: +SKIP
    >>> result.status                                                          # doctest: +SKIP
    'finished'
    """
    from archdsl import training

    return training.train(spec, task, **settings)
