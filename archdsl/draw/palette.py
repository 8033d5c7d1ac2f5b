"""Colours of the layer types: chosen to survive greyscale printing and colour-blindness.

The eight fills come from Okabe & Ito's and Paul Tol's colour-blind-safe schemes, picked so that
their CIE L* lightness values are at least 7 apart (so a greyscale print still tells them
apart) and so that they stay apart under simulated deuteranopia and protanopia
(``tests/draw/test_palette.py`` checks both, with its own colour science). Attention, the rare
and costly layer in a hybrid, gets the one hot colour; the recurrent layers take the blues and
greens; the MLP, in almost every stack, a light neutral so the rest stands out.

Text on a block is black or white, whichever contrasts more with the fill (WCAG ratio >= 4.5).
Layer types from third-party packages get greys, in order of their names.
"""

from __future__ import annotations

LAYER_COLOURS: dict[str, str] = {
    "rglru": "#332288",  # Tol indigo, L* 22
    "moe": "#882255",  # Tol wine, L* 32
    "gdn": "#0072B2",  # Okabe-Ito blue, L* 46
    "attn": "#D55E00",  # Okabe-Ito vermilion, L* 54
    "ssm": "#44AA99",  # Tol teal, L* 64
    "mamba": "#33BBEE",  # Tol cyan, L* 71
    "mlp": "#DDCC77",  # Tol sand, L* 82
    "conv": "#F0E442",  # Okabe-Ito yellow, L* 89
}
# for layer types the project does not ship: greys of distinct lightness
OTHER_COLOURS = ("#BBBBBB", "#777777", "#E8E8E8", "#555555")

INK = "#222222"  # lines, frames and text outside blocks
FAINT = "#888888"  # the residual stream, row numbers
IO_FILL = "#EEEEEE"  # embedding and LM head boxes
HIGHLIGHT = "#000000"


def _linear(channel: float) -> float:
    return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4


def relative_luminance(colour: str) -> float:
    """WCAG relative luminance of ``#rrggbb``."""
    r, g, b = (_linear(int(colour[i : i + 2], 16) / 255) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two colours (1 to 21)."""
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def text_colour(fill: str) -> str:
    """Black or white, whichever reads better on ``fill``."""
    return "#000000" if contrast(fill, "#000000") >= contrast(fill, "#FFFFFF") else "#FFFFFF"


def colours_for(types: list[str]) -> dict[str, str]:
    """The fill of each type in ``types``: the fixed colour of a built-in layer, a grey for
    any other (assigned in sorted order, so the same types always get the same greys)."""
    out = {t: LAYER_COLOURS[t] for t in types if t in LAYER_COLOURS}
    others = sorted(t for t in set(types) if t not in LAYER_COLOURS)
    for i, t in enumerate(others):
        out[t] = OTHER_COLOURS[i % len(OTHER_COLOURS)]
    return out
