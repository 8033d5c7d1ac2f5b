"""Pictures of architectures: one coloured block per sub-layer, as SVG or PNG.

    >>> import archdsl
    >>> from archdsl.draw import to_svg
    >>> svg = to_svg(archdsl.load("examples/jamba.arch"))          # doctest: +SKIP
    >>> to_png(archdsl.load("examples/jamba.arch"), "jamba.png")   # doctest: +SKIP

``archdsl show FILE --format svg`` / ``--format png --out FILE`` call these, and a ``Spec``
displays as its picture in a notebook. :mod:`~archdsl.draw.layout` places the shapes,
:mod:`~archdsl.draw.svg` and :mod:`~archdsl.draw.png` write them; pass ``highlights`` (a list
of :class:`Highlight`) to mark the choice sites of a search space with their options.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archdsl.draw.layout import Highlight, layout
from archdsl.draw.sites import highlights_for
from archdsl.errors import ArchDSLError

if TYPE_CHECKING:
    from archdsl.spec.model import Spec

__all__ = ["Highlight", "highlights_for", "layout", "show_picture", "spec_html", "to_png", "to_svg"]


def _picture(target: Any, highlights: Sequence[Highlight], **options: Any):
    """The layout of a Spec or program text; a search space draws as one of its layouts with
    its choice sites highlighted (before any ``highlights`` given)."""
    from archdsl.api import _as_spec
    from archdsl.draw.sites import is_space, space_layout

    if is_space(target):
        spec, sites = space_layout(target)
        return layout(spec, highlights=[*sites, *highlights], program=str(target), **options)
    return layout(_as_spec(target, "to_svg"), highlights=highlights, **options)


def to_svg(
    spec: Spec | str,
    *,
    highlights: Sequence[Highlight] = (),
    context: int = 8192,
    title: str | None = None,
    inline: bool = False,
) -> str:
    """The picture of ``spec`` (a Spec, program text, or a search space: one of its layouts
    with the choice sites highlighted) as SVG text; the caption's state and FLOPs are at
    ``context`` tokens. ``inline=True`` leaves out the XML declaration, to put the ``<svg>``
    inside an HTML page (a notebook, the search report).

    >>> import archdsl
    >>> to_svg(archdsl.parse("4x(ssm) attn")).startswith("<?xml")
    True
    """
    from archdsl.draw.svg import to_svg_text

    text = to_svg_text(_picture(spec, highlights, context=context, title=title))
    return text.split("\n", 1)[1] if inline else text


def to_png(
    spec: Spec | str,
    path: str | Path | None = None,
    *,
    highlights: Sequence[Highlight] = (),
    context: int = 8192,
    title: str | None = None,
    scale: float = 2.0,
) -> bytes:
    """The picture of ``spec`` as PNG bytes (matplotlib), written to ``path`` if given."""
    from archdsl.draw.png import to_png_bytes

    data = to_png_bytes(_picture(spec, highlights, context=context, title=title), scale=scale)
    if path is not None:
        _write(Path(path), data)
    return data


def show_picture(spec: Spec, format: str, out: Path | None, **options: Any) -> None:
    """What ``archdsl show --format svg|png [--out FILE]`` does: SVG to standard output, or
    the picture written to ``out`` (a PNG needs ``out``)."""
    if format not in ("svg", "png"):
        raise ArchDSLError(f"--out writes pictures: give --format svg or png, not {format}")
    if out is None:
        if format == "png":
            raise ArchDSLError("--format png needs --out FILE (a PNG is not written to the terminal)")
        sys.stdout.write(to_svg(spec, **options))
        return
    if format == "png":
        to_png(spec, out, **options)
    else:
        _write(Path(out), to_svg(spec, **options).encode("utf-8"))
    print(f"wrote {out}", file=sys.stderr)


def spec_html(spec: Spec, context: int = 8192) -> str:
    """The picture with a table of the parameter count and the cost at ``context`` tokens
    (what a notebook shows for a Spec)."""
    import html

    import archdsl
    from archdsl.costing.budget import format_bytes, format_count
    from archdsl.costing.report import seq_label

    c = archdsl.cost(spec, seq_len=context, context=context)
    at = seq_label(context)
    rows = [
        ("parameters", f"{c.params:,} ({format_count(c.params)})"),
        ("without embeddings", f"{c.non_embedding_params:,}"),
        ("layer calls", f"{c.n_layers}"),
        (f"training FLOPs / token at {at}", format_count(c.train_flops)),
        (f"activations / sequence at {at}", format_bytes(c.activation_bytes)),
        (f"inference state / sequence at {at}", f"{format_bytes(c.state_bytes)} (KV cache {format_bytes(c.kv_bytes)})"),
        ("weights + AdamW state (bf16)", format_bytes(c.training_memory(2))),
    ]
    table = "".join(
        f'<tr><th style="text-align:left;padding-right:1em">{html.escape(k)}</th><td>{html.escape(v)}</td></tr>'
        for k, v in rows
    )
    svg = to_svg(spec, context=context, inline=True)
    return f"<div>{svg}<table>{table}</table></div>"


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise ArchDSLError(f"cannot write '{path}': {exc.strerror or exc}") from None
