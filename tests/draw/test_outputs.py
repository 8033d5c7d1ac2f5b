"""PNG through matplotlib, the ``archdsl show --format svg|png`` command, and the notebook
display of a Spec."""

from __future__ import annotations

import io
import re
from pathlib import Path

import matplotlib.image
import pytest
from typer.testing import CliRunner

import archdsl
from archdsl.cli import app
from archdsl.draw import layout, to_png, to_svg
from tests.draw.svgread import elements

ROOT = Path(__file__).resolve().parents[2]
HYMBA = ROOT / "examples" / "hymba.arch"


def rgb(colour: str) -> tuple[float, ...]:
    return tuple(int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))


def test_png_draws_the_blocks_where_the_layout_puts_them(tmp_path):
    spec = archdsl.load(HYMBA)
    data = to_png(spec, tmp_path / "hymba.png", scale=2)
    assert (tmp_path / "hymba.png").read_bytes() == data
    image = matplotlib.image.imread(io.BytesIO(data), format="png")
    picture = layout(spec)
    assert image.shape[:2] == (round(picture.height * 2), round(picture.width * 2))
    blocks = [s for s in picture.shapes if s.role == "block"]
    assert len(blocks) == len([n for n, a in archdsl.to_graph(spec).nodes(data=True) if a["kind"] == "layer"])
    for block in blocks:  # a pixel just inside each block's corner has the block's colour
        pixel = image[round((block.y + 3) * 2), round((block.x + 3) * 2)][:3]
        assert max(abs(p - c) for p, c in zip(pixel, rgb(block.fill))) < 0.02, block
    # and the top margin is plain background
    assert (image[2:6, :, :3] == 1.0).all()


def test_png_and_svg_are_deterministic():
    small = archdsl.parse("2x(ssm (attn | ssm))", d_model=64)
    assert to_png(small, scale=1) == to_png(small, scale=1)
    spec = archdsl.load(HYMBA)
    assert to_svg(spec) == to_svg(archdsl.parse(str(spec), filename=str(HYMBA)))


def test_show_svg_to_stdout_and_files(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["show", str(HYMBA), "--format", "svg"])
    assert result.exit_code == 0, result.output
    assert len(elements(result.stdout, "rect", "block")) == 27
    assert result.stdout == to_svg(archdsl.load(HYMBA))
    out = tmp_path / "h.svg"
    result = runner.invoke(app, ["show", str(HYMBA), "--format", "svg", "--out", str(out)])
    assert result.exit_code == 0 and out.read_text() == to_svg(archdsl.load(HYMBA))
    png = tmp_path / "h.png"
    result = runner.invoke(app, ["show", "-e", "4x(ssm) attn", "--format", "png", "--out", str(png)])
    assert result.exit_code == 0, result.output
    assert matplotlib.image.imread(png).shape[2] == 4


@pytest.mark.parametrize(
    "args,message",
    [
        (["--format", "png"], "--format png needs --out FILE"),
        (["--out", "x.svg"], "--out writes pictures: give --format svg or png, not table"),
        (["--format", "gif"], "--format must be table, mermaid, dot, svg or png"),
        (["--format", "svg", "--out", "/nonexistent/dir/x.svg"], "cannot write '/nonexistent/dir/x.svg'"),
    ],
)
def test_show_picture_errors(args, message):
    result = CliRunner().invoke(app, ["show", "-e", "ssm", *args])
    assert result.exit_code in (1, 2) and message in result.output
    assert "Traceback" not in result.output


def test_notebook_display():
    spec = archdsl.parse("let g = shared(attn mlp)\n2x(2x(ssm) g)", d_model=64, vocab=100)
    assert len(elements(spec._repr_svg_(), "rect", "block")) == 8
    html = spec._repr_html_()
    # the parameter count of the built model (shared weights once), as an independent reference
    built = sum(p.numel() for p in archdsl.build(spec).parameters())
    assert f"{built:,}" in html
    assert re.search(r"inference state / sequence at 8k</th><td>[\d.]+MiB", html)
    assert html.count("<svg") == 1 and "<?xml" not in html
    assert to_svg(spec, inline=True) == to_svg(spec).split("\n", 1)[1]


def test_readme_pictures_exist_and_show_their_examples():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Pictures", 1)[1].split("\n## ", 1)[0]
    pictures = re.findall(r"\]\((docs/[^)]+\.png)\)", section)
    assert {Path(p).stem for p in pictures} >= {"jamba", "nemotron_h", "hymba", "zamba2"}
    for picture in pictures:
        png, svg = ROOT / picture, (ROOT / picture).with_suffix(".svg")
        assert matplotlib.image.imread(png).shape[2] == 4
        # the committed SVG still shows the example's layout (regenerate with
        # `archdsl show examples/NAME.arch --format svg --out docs/NAME.svg`, and --format png)
        graph = archdsl.to_graph(archdsl.load(ROOT / "examples" / f"{png.stem}.arch"))
        blocks = elements(svg.read_text(), "rect", "block")
        assert [(b.get("data-node"), b.get("data-type")) for b in blocks] == [
            (n, a["type"]) for n, a in graph.nodes(data=True) if a["kind"] == "layer"
        ]
