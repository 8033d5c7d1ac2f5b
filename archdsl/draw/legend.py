"""What surrounds the rows of blocks: the title, the program text, the legend (layer types with
their colours and counts, the marks in use, parameter abbreviations, choice sites) and the
caption with the totals from :func:`archdsl.cost`; and the two small marks (the ``+`` of a
parallel sum, a site's numbered badge) that the rows use too."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from archdsl.draw import palette
from archdsl.draw.scene import Line, Picture, Rect, Text, fit, text_width
from archdsl.draw.walk import Structure

MARGIN = 16.0
PROGRAM_LINES = 4  # the program text under the title wraps onto at most this many lines

# short names of parameters inside blocks (the legend spells out those used)
ABBREVIATIONS = {
    "window": "win",
    "heads": "h",
    "kv_heads": "kv",
    "head_dim": "hd",
    "experts": "E",
    "top_k": "top",
    "hidden": "ff",
    "state": "N",
    "groups": "grp",
    "expand": "exp",
    "rope_theta": "θ",
}


def caption_lines(structure: Structure, c: Any) -> list[str]:
    """The caption's pieces: sizes of the stack and the model, parameters, state and FLOPs at
    the context of ``c`` (a :class:`~archdsl.costing.ModelCost`)."""
    from archdsl.costing.budget import format_bytes, format_count
    from archdsl.costing.report import seq_label

    model = structure.model
    shared = any(span.kind == "shared" for span in structure.spans)
    at = seq_label(c.ctx.context_len)
    return [
        f"{len(structure.columns)} sub-layers ({c.n_layers} layer calls)",
        f"d_model {model.d_model}",
        f"vocab {model.vocab}" + (", tied embeddings" if model.tie_embeddings else ""),
        f"{format_count(c.params)} parameters ({format_count(c.non_embedding_params)} without embeddings"
        + ("; shared weights counted once)" if shared else ")"),
        (
            f"inference state at {at} context: {format_bytes(c.state_bytes)} per sequence in bf16 "
            f"(KV cache {format_bytes(c.kv_bytes)}, recurrent {format_bytes(c.recurrent_state_bytes)})"
        ),
        f"training at {at} tokens: {format_count(c.train_flops)} FLOPs/token",
    ]


def draw_header(pic: Picture, name: str, program: list[str], structure: Structure, colours, sites) -> float:
    """Title, program, legend and sites from the top of ``pic``; returns the y below them."""
    inner = pic.width - 2 * MARGIN
    pic.add(Text(MARGIN, MARGIN + 14, fit(name, inner, 17, bold=True), 17, palette.INK, bold=True, role="title"))
    y = MARGIN + 34
    for line in wrap_words(" ".join(line.strip() for line in program), inner, 11, PROGRAM_LINES):
        pic.add(Text(MARGIN, y, line, 11, "#444444", mono=True, role="program"))
        y += 14
    blocks = [b for col in structure.columns for lane in col.lanes for b in lane]
    # the legend: swatches with counts, then the marks in use
    items: list[tuple[str, Any, str]] = []
    for t, colour in colours.items():
        items.append(("swatch", (t, colour), f"{t} ×{sum(1 for b in blocks if b.type == t)}"))
    if any(col.parallel for col in structure.columns):
        items.append(("sum", None, "parallel branches, summed"))
    if any(span.kind == "repeat" and span.count > 1 for span in structure.spans):
        items.append(("bracket", None, "N copies in order"))
    uses: dict[str, int] = {}
    for span in structure.spans:
        if span.kind == "shared":
            uses[span.group] = uses.get(span.group, 0) + 1
    for group, n in uses.items():
        items.append(("shared", group, f"{group}: the same weights at all {n} uses" if n > 1 else f"{group}: shared"))
    y = _legend(pic, items, y + 6, inner)
    used = sorted({k for b in blocks for k in param_keys(b.params)})
    abbreviations = [f"{ABBREVIATIONS[k]} = {k}" for k in used if k in ABBREVIATIONS]
    if abbreviations:
        y = draw_wrapped(pic, abbreviations, y + 2, inner, 10.0, "#555555", "abbreviations")
    for number, site in enumerate(sites, start=1):
        badge(pic, MARGIN + 7, y + 5, number)
        label = (site.name + ": " if site.name else "") + " | ".join(site.options)
        if not site.positions:
            label += "  (not in this layout)"
        data = (("site", str(number)),)
        pic.add(Text(MARGIN + 18, y + 9, fit(label, inner - 18, 11), 11, palette.INK, role="site", data=data))
        y += 17
    return y + 14


def _legend(pic: Picture, items: Sequence[tuple[str, Any, str]], y: float, inner: float) -> float:
    """One mark and its words per item, left to right, wrapping to ``inner`` pixels."""
    x = MARGIN
    for kind, what, words in items:
        width = 18 + text_width(words, 11) + (8 if kind == "bracket" else 4 if kind == "shared" else 0)
        if x > MARGIN and x + width > MARGIN + inner:
            x, y = MARGIN, y + 19
        if kind == "swatch":
            t, colour = what
            pic.add(Rect(x, y - 1, 14, 14, colour, palette.INK, 0.6, radius=2, role="legend", data=(("type", t),)))
        elif kind == "sum":
            plus(pic, x + 7, y + 6)
        elif kind == "bracket":
            pic.add(Line(((x, y + 1), (x, y + 6), (x + 20, y + 6), (x + 20, y + 1)), palette.INK, 1.2, role="legend"))
            pic.add(Text(x + 10, y + 15, "N×", 8, palette.INK, "middle", bold=True, role="legend"))
        elif kind == "shared":
            dashed = Rect(
                x, y - 1, 16, 14, "none", palette.INK, 1.2, (3.0, 2.0), 3, role="legend", data=(("group", what),)
            )
            pic.add(dashed)
        shift = width - text_width(words, 11)
        pic.add(Text(x + shift, y + 11, words, 11, palette.INK, role="legend"))
        x += width + 16
    return y + 22


def draw_wrapped(
    pic: Picture, pieces: Iterable[str], y: float, inner: float, size: float, fill: str, role: str
) -> float:
    """``pieces`` as lines joined by `` · ``, wrapping between pieces (and between the words of
    a piece too long for a line of its own); returns the y below them."""
    fitted = []
    for piece in pieces:
        words = piece.split(" ")
        while len(words) > 1 and text_width(" ".join(words), size) > inner:
            cut = max([1] + [k for k in range(1, len(words)) if text_width(" ".join(words[:k]), size) <= inner])
            fitted.append(" ".join(words[:cut]))
            words = words[cut:]
        fitted.append(" ".join(words))
    line = ""
    for piece in fitted:
        candidate = piece if not line else line + " · " + piece
        if line and text_width(candidate, size) > inner:
            pic.add(Text(MARGIN, y + size, fit(line, inner, size), size, fill, role=role))
            y, line = y + size + 5, piece
        else:
            line = candidate
    if line:
        pic.add(Text(MARGIN, y + size, fit(line, inner, size), size, fill, role=role))
        y += size + 5
    return y


def plus(pic: Picture, cx: float, cy: float) -> None:
    """The circled ``+`` where parallel branches are summed."""
    pic.add(Rect(cx - 5, cy - 5, 10, 10, "#FFFFFF", palette.INK, 1.0, radius=5, role="sum"))
    pic.add(Line(((cx - 3, cy), (cx + 3, cy)), palette.INK, 1.2, role="sum"))
    pic.add(Line(((cx, cy - 3), (cx, cy + 3)), palette.INK, 1.2, role="sum"))


def badge(pic: Picture, cx: float, cy: float, number: int) -> None:
    """A choice site's number in a black disc."""
    pic.add(Rect(cx - 7, cy - 7, 14, 14, palette.HIGHLIGHT, "#FFFFFF", 1.0, radius=7, role="site-badge"))
    pic.add(Text(cx, cy + 3.5, str(number), 9.5, "#FFFFFF", "middle", bold=True, role="site-badge"))


def wrap_words(text: str, width: float, size: float, most: int) -> list[str]:
    """Monospaced ``text`` broken at spaces into lines of ``width`` pixels, at most ``most``
    lines (the last cut with an ellipsis)."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and text_width(lines[-1] + " " + word, size, mono=True) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    if len(lines) > most:
        lines = lines[: most - 1] + [" ".join(lines[most - 1 :])]
    return [fit(line, width, size, mono=True) for line in lines]


def param_keys(params: str) -> Iterable[str]:
    """The keys of ``key=value key=value``."""
    return (item.partition("=")[0] for item in params.split())
