"""The layer colours survive greyscale printing and colour-blindness, and text on them reads.

Colour science written here from the published formulas, independently of archdsl.draw:
sRGB -> linear RGB -> CIE XYZ (D65) -> CIE L*a*b*; colour-vision deficiency simulated with the
matrices of Machado, Oliveira & Fernandes (2009) at full severity, applied in linear RGB."""

from __future__ import annotations

import itertools
import math

import pytest

from archdsl.draw.palette import LAYER_COLOURS, OTHER_COLOURS, text_colour
from archdsl.layers.registry import list_layers

DEUTERANOPIA = ((0.367322, 0.860646, -0.227968), (0.280085, 0.672501, 0.047413), (-0.011820, 0.042940, 0.968881))
PROTANOPIA = ((0.152286, 1.052583, -0.204868), (0.114503, 0.786281, 0.099216), (-0.003882, -0.048116, 1.051998))
TRITANOPIA = ((1.255528, -0.076749, -0.178779), (-0.078411, 0.930809, 0.147602), (0.004733, 0.691367, 0.303900))


def linear_rgb(colour: str) -> tuple[float, ...]:
    channels = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return tuple(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)


def lab(rgb: tuple[float, ...]) -> tuple[float, float, float]:
    r, g, b = rgb
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def simulate(matrix, colour: str) -> tuple[float, ...]:
    rgb = linear_rgb(colour)
    return tuple(min(1.0, max(0.0, sum(m * c for m, c in zip(row, rgb)))) for row in matrix)


def luminance(colour: str) -> float:
    r, g, b = linear_rgb(colour)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


PAIRS = list(itertools.combinations(sorted(LAYER_COLOURS), 2))


def test_every_built_in_layer_has_a_colour():
    missing = set(list_layers()) - set(LAYER_COLOURS)
    assert not missing, f"give {sorted(missing)} a colour in archdsl/draw/palette.py (distinct lightness)"


@pytest.mark.parametrize("a,b", PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_greyscale_lightness_apart(a, b):
    # a greyscale print keeps only lightness: every two layer types at least 7 L* apart
    assert abs(lab(linear_rgb(LAYER_COLOURS[a]))[0] - lab(linear_rgb(LAYER_COLOURS[b]))[0]) >= 7


@pytest.mark.parametrize("matrix", [DEUTERANOPIA, PROTANOPIA], ids=["deuteranopia", "protanopia"])
def test_colour_blind_viewers_tell_types_apart(matrix):
    # CIE76 colour difference after simulation; 20 is far past "just noticeable" (about 2.3)
    for a, b in PAIRS:
        distance = math.dist(lab(simulate(matrix, LAYER_COLOURS[a])), lab(simulate(matrix, LAYER_COLOURS[b])))
        assert distance >= 20, (a, b, distance)


def test_tritanopia_keeps_lightness():
    # tritan simulation changes hue, not lightness much: the greyscale separation still holds
    lightness = sorted(lab(simulate(TRITANOPIA, c))[0] for c in LAYER_COLOURS.values())
    assert min(b - a for a, b in itertools.pairwise(lightness)) >= 4


@pytest.mark.parametrize("fill", list(LAYER_COLOURS.values()) + list(OTHER_COLOURS))
def test_text_on_every_fill_reads(fill):
    # WCAG 2 contrast ratio of the chosen text colour against the fill: 4.5 is the AA level
    ink = text_colour(fill)
    hi, lo = sorted((luminance(fill), luminance(ink)), reverse=True)
    assert (hi + 0.05) / (lo + 0.05) >= 4.5


def test_other_types_get_distinct_greys():
    lightness = sorted(lab(linear_rgb(c))[0] for c in OTHER_COLOURS)
    assert min(b - a for a, b in itertools.pairwise(lightness)) >= 10
