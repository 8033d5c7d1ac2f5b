"""The drawing as plain shapes in pixel coordinates (y grows downwards, as in SVG): the layout
produces a :class:`Picture`, and the SVG and PNG writers only translate its shapes.

Shapes carry a ``role`` (``block``, ``bracket``, ``shared``, ...) and ``data`` (what they
stand for) that the SVG writes as ``class`` and ``data-*`` attributes, so that a picture can be
read back and checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FONT = "DejaVu Sans, Verdana, Arial, sans-serif"  # matplotlib's own font comes first: same widths
MONO = "DejaVu Sans Mono, Menlo, Consolas, monospace"


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float
    fill: str = "none"
    stroke: str = "none"
    stroke_width: float = 0.0
    dash: tuple[float, ...] | None = None
    radius: float = 0.0
    role: str | None = None
    data: tuple[tuple[str, str], ...] = ()
    title: str | None = None  # a tooltip in a browser


@dataclass(frozen=True)
class Text:
    x: float
    y: float  # the baseline
    text: str
    size: float
    fill: str = "#222222"
    anchor: str = "start"  # start, middle or end
    bold: bool = False
    mono: bool = False
    role: str | None = None
    data: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Line:
    points: tuple[tuple[float, float], ...]
    stroke: str = "#222222"
    width: float = 1.0
    dash: tuple[float, ...] | None = None
    role: str | None = None
    data: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Polygon:
    points: tuple[tuple[float, float], ...]
    fill: str = "#222222"
    role: str | None = None


Shape = Rect | Text | Line | Polygon


@dataclass
class Picture:
    width: float
    height: float
    title: str
    description: str
    shapes: list[Shape] = field(default_factory=list)

    def add(self, shape: Shape) -> Shape:
        self.shapes.append(shape)
        return shape


# Advance widths of DejaVu Sans in ems, by character class: enough to size boxes without a font
# file (a browser's fallback font is a little narrower, never wider).
_NARROW = set("il.,:;|!'`[](){}jtf ")
_WIDE = set("mwMW@%")


def text_width(text: str, size: float, bold: bool = False, mono: bool = False) -> float:
    """Estimated width in pixels of ``text`` at font ``size`` pixels."""
    if mono:
        return len(text) * 0.602 * size
    ems = 0.0
    for ch in text:
        if ch in _NARROW:
            ems += 0.33
        elif ch in _WIDE:
            ems += 0.92
        elif ch.isupper() or ch.isdigit() or ch in "×=+-_":
            ems += 0.68
        else:
            ems += 0.6
    return ems * size * (1.08 if bold else 1.0)


def fit(text: str, width: float, size: float, bold: bool = False, mono: bool = False) -> str:
    """``text`` cut with an ellipsis to fit ``width`` pixels."""
    if text_width(text, size, bold, mono) <= width:
        return text
    while text and text_width(text + "…", size, bold, mono) > width:
        text = text[:-1]
    return text + "…"
