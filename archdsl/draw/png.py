"""A :class:`~archdsl.draw.scene.Picture` as PNG through matplotlib (Agg, no display): the
same shapes as the SVG, in the same places. The file carries no date or version metadata, so the
same picture always gives the same bytes.
"""

from __future__ import annotations

import io

from archdsl.draw.scene import Line, Picture, Polygon, Rect, Text

PX = 0.72  # points per pixel: the figure is drawn at 100 pixels per inch of 72 points


def _dashes(dash: tuple[float, ...] | None, width: float):
    # matplotlib scales dash lengths by the line width; the scene gives them in pixels
    return "solid" if not dash else (0, tuple(d / max(width, 0.1) for d in dash))


def to_png_bytes(picture: Picture, scale: float = 2.0) -> bytes:
    """PNG bytes of ``picture``; ``scale`` 2 gives two device pixels per picture pixel."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyBboxPatch
    from matplotlib.patches import Polygon as PolygonPatch

    fig = Figure(figsize=(picture.width / 100, picture.height / 100), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, picture.width)
    ax.set_ylim(picture.height, 0)  # y grows downwards, as in SVG
    ax.set_axis_off()
    fig.patch.set_facecolor("#FFFFFF")
    for z, shape in enumerate(picture.shapes):
        if isinstance(shape, Rect):
            radius = min(shape.radius, shape.w / 2, shape.h / 2)
            # add_artist, not add_patch: the limits are fixed, and updating them per patch
            # took a third of the time of a 200-layer picture
            ax.add_artist(
                FancyBboxPatch(
                    (shape.x + radius, shape.y + radius),
                    max(shape.w - 2 * radius, 0.0),
                    max(shape.h - 2 * radius, 0.0),
                    boxstyle=f"round,pad={radius}" if radius else "square,pad=0",
                    facecolor=shape.fill if shape.fill != "none" else "none",
                    edgecolor=shape.stroke if shape.stroke != "none" else "none",
                    linewidth=shape.stroke_width * PX,
                    linestyle=_dashes(shape.dash, shape.stroke_width * PX),
                    zorder=z,
                )
            )
        elif isinstance(shape, Text):
            ax.text(
                shape.x,
                shape.y,
                shape.text,
                fontsize=shape.size * PX,
                color=shape.fill,
                ha={"start": "left", "middle": "center", "end": "right"}[shape.anchor],
                va="baseline",
                fontweight="bold" if shape.bold else "normal",
                family="monospace" if shape.mono else "sans-serif",
                zorder=z,
            )
        elif isinstance(shape, Line):
            xs, ys = zip(*shape.points)
            line = Line2D(
                xs,
                ys,
                color=shape.stroke,
                linewidth=shape.width * PX,
                linestyle=_dashes(shape.dash, shape.width * PX),
                solid_capstyle="round",
                solid_joinstyle="round",
                zorder=z,
            )
            ax.add_artist(line)
        elif isinstance(shape, Polygon):
            ax.add_artist(PolygonPatch(shape.points, closed=True, facecolor=shape.fill, edgecolor="none", zorder=z))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100 * scale, metadata={"Software": None})
    return buffer.getvalue()
