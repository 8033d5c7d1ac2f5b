"""A :class:`~archdsl.draw.scene.Picture` as SVG text, written directly (no browser, no
library): the same picture always gives the same bytes.

Each shape's ``role`` becomes its ``class`` and its ``data`` ``data-*`` attributes, so the
blocks can be found again (``rect.block[data-type=attn]``) by a test, a script or CSS.
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from archdsl.draw.scene import FONT, MONO, Line, Picture, Polygon, Rect, Text


def _num(value: float) -> str:
    """Numbers rounded to 0.01 px without trailing zeros: short, and the same on every platform."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _attrs(role: str | None, data: tuple[tuple[str, str], ...]) -> str:
    out = f" class={quoteattr(role)}" if role else ""
    return out + "".join(f" data-{key}={quoteattr(value)}" for key, value in data)


def _dash(dash: tuple[float, ...] | None) -> str:
    return f' stroke-dasharray="{" ".join(_num(d) for d in dash)}"' if dash else ""


def _shape(shape) -> str:
    if isinstance(shape, Rect):
        stroke = f' stroke="{shape.stroke}" stroke-width="{_num(shape.stroke_width)}"' if shape.stroke != "none" else ""
        radius = f' rx="{_num(shape.radius)}"' if shape.radius else ""
        head = (
            f'<rect{_attrs(shape.role, shape.data)} x="{_num(shape.x)}" y="{_num(shape.y)}" '
            f'width="{_num(shape.w)}" height="{_num(shape.h)}"{radius} fill="{shape.fill}"{stroke}{_dash(shape.dash)}'
        )
        if shape.title:
            return f"{head}><title>{escape(shape.title)}</title></rect>"
        return head + "/>"
    if isinstance(shape, Text):
        anchor = f' text-anchor="{shape.anchor}"' if shape.anchor != "start" else ""
        weight = ' font-weight="bold"' if shape.bold else ""
        family = ' font-family="' + MONO + '"' if shape.mono else ""
        return (
            f'<text{_attrs(shape.role, shape.data)} x="{_num(shape.x)}" y="{_num(shape.y)}" '
            f'font-size="{_num(shape.size)}"{family}{anchor}{weight} fill="{shape.fill}">{escape(shape.text)}</text>'
        )
    if isinstance(shape, Line):
        points = " ".join(f"{_num(x)},{_num(y)}" for x, y in shape.points)
        return (
            f'<polyline{_attrs(shape.role, shape.data)} points="{points}" fill="none" stroke="{shape.stroke}" '
            f'stroke-width="{_num(shape.width)}"{_dash(shape.dash)}/>'
        )
    if isinstance(shape, Polygon):
        points = " ".join(f"{_num(x)},{_num(y)}" for x, y in shape.points)
        return f'<polygon{_attrs(shape.role, ())} points="{points}" fill="{shape.fill}"/>'
    raise TypeError(type(shape).__name__)  # pragma: no cover - the scene has no other shape


def to_svg_text(picture: Picture) -> str:
    """The SVG document of ``picture`` (UTF-8 text, one element per line)."""
    w, h = _num(picture.width), _num(picture.height)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
            f'font-family="{FONT}" stroke-linejoin="round" stroke-linecap="round">'
        ),
        f"<title>{escape(picture.title)}</title>",
        f"<desc>{escape(picture.description)}</desc>",
        f'<rect class="background" width="{w}" height="{h}" fill="#FFFFFF"/>',
    ]
    lines += [_shape(shape) for shape in picture.shapes]
    lines.append("</svg>")
    return "\n".join(lines) + "\n"
