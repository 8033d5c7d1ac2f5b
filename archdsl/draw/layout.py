"""Place the picture of a Spec: a strip of blocks, one per sub-layer, wrapped into rows.

    >>> import archdsl
    >>> picture = layout(archdsl.parse("4x(ssm) attn window=512"))
    >>> sum(1 for s in picture.shapes if s.role == "block")
    5

From top to bottom: a title with the program text, a legend (the layer types in the colours of
:mod:`archdsl.draw.palette` with their counts, the marks used, the parameter abbreviations,
the highlighted choice sites), the rows of blocks on the residual stream (embedding first, LM
head last), and a caption with the totals from :func:`archdsl.cost`. In a row:

- a block is one layer call, labelled with its type and what the program writes about it
  (the parameters that differ from the defaults, abbreviated: ``win=512``);
- a parallel sub-layer ``(a | b)`` is a frame with its branches stacked in lanes and a ``+``
  where they are summed;
- a repeat is a bracket under its copies with the count (``4×``), a tick between copies;
  nested repeats get one bracket line each, innermost nearest;
- each use of shared weights is a dashed frame named after its group;
- a highlighted choice site is a thick outline with its number, listed in the legend.

Rows break where the fewest repeats and shared uses are cut (see ``Structure.break_costs``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from archdsl.draw import palette
from archdsl.draw.legend import ABBREVIATIONS, MARGIN, badge, caption_lines, draw_header, draw_wrapped, plus
from archdsl.draw.scene import Line, Picture, Polygon, Rect, Text, fit, text_width
from archdsl.draw.walk import Block, Column, Span, Structure, walk
from archdsl.errors import ArchDSLError
from archdsl.spec.model import Spec

GUTTER = 30.0  # the left column of row numbers
MAX_ROW = 960.0  # widest row of blocks, in pixels
MIN_WIDTH = 560.0
COL_GAP, LANE_GAP, PAD = 6.0, 4.0, 4.0
SUM_W = 14.0  # room for the "+" that sums parallel branches
TYPE_SIZE, PARAM_SIZE, LINE_H = 12.0, 10.0, 11.5
MIN_BLOCK_W, MAX_PARAM_LINES = 34.0, 3
TAG_H, BRACKET_H, ROW_GAP = 16.0, 19.0, 16.0
FORK_W = 10.0  # room on the left of a parallel frame for the lines that fork into its lanes


@dataclass(frozen=True)
class Highlight:
    """A choice site of a search space: the sub-layers it decides (``index`` numbers of the
    graph, or node ids such as ``"L3.b0.0"`` for one layer of a branch) and what it may become.

    >>> Highlight(positions=(4,), options=("ssm", "attn window=256"), name="mixer")
    Highlight(positions=(4,), options=('ssm', 'attn window=256'), name='mixer')
    """

    positions: tuple[int | str, ...]
    options: tuple[str, ...] = ()
    name: str = ""


def block_lines(params: str) -> list[str]:
    """The parameter lines under a block's type: ``window=512 kv_heads=2`` -> ``win=512``, ``kv=2``."""
    parts = []
    for item in params.split():
        key, _, value = item.partition("=")
        parts.append(f"{ABBREVIATIONS.get(key, key)}={value}")
    if len(parts) <= MAX_PARAM_LINES:
        return parts
    per_line = math.ceil(len(parts) / MAX_PARAM_LINES)
    return [" ".join(parts[i : i + per_line]) for i in range(0, len(parts), per_line)]


def layout(
    spec: Spec,
    *,
    highlights: Sequence[Highlight] = (),
    context: int = 8192,
    title: str | None = None,
    program: str | None = None,
    max_width: float = MAX_ROW,
) -> Picture:
    """The :class:`Picture` of ``spec``; totals in the caption are taken at ``context`` tokens.
    ``program`` replaces the text under the title (a search space shows its own)."""
    import archdsl
    from archdsl.syntax.printer import print_spec

    graph = archdsl.to_graph(spec)  # checks the spec as building it would
    totals = archdsl.cost(graph, seq_len=context, context=context)
    structure = walk(spec)
    text = print_spec(spec) if program is None else program
    lines = [line for line in text.splitlines() if not line.startswith("model ")]  # the header is in the caption
    name = title if title is not None else _default_title(spec)
    return _Layout(structure, list(highlights), max_width).draw(name, lines, caption_lines(structure, totals))


def _default_title(spec: Spec) -> str:
    if spec.source_name and spec.source_name not in ("<string>", "<expr>"):
        return spec.source_name.replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".arch")
    return "architecture"


class _Layout:
    def __init__(self, structure: Structure, highlights: list[Highlight], max_width: float):
        self.s = structure
        self.max_width = max(max_width, 200.0)
        types = [b.type for col in structure.columns for lane in col.lanes for b in lane]
        self.colours = palette.colours_for(types)
        lines = max(
            (len(block_lines(b.params)) for col in structure.columns for lane in col.lanes for b in lane), default=0
        )
        self.block_h = max(36.0, 24.0 + lines * LINE_H)
        self.sites = self._sites(highlights)

    # ---- sizes ---------------------------------------------------------------------------

    def block_w(self, block: Block) -> float:
        texts = [text_width(block.type, TYPE_SIZE, bold=True)]
        texts += [text_width(line, PARAM_SIZE) for line in block_lines(block.params)]
        return max(MIN_BLOCK_W, max(texts) + 10)

    def lane_w(self, lane: list[Block]) -> float:
        return sum(self.block_w(b) for b in lane) + LANE_GAP * (len(lane) - 1)

    def column_size(self, col: Column) -> tuple[float, float]:
        if not col.parallel:
            return self.block_w(col.lanes[0][0]), self.block_h
        n = len(col.lanes)
        width = max(self.lane_w(lane) for lane in col.lanes) + FORK_W + PAD + SUM_W
        return width, n * self.block_h + (n - 1) * LANE_GAP + 2 * PAD

    # ---- rows ----------------------------------------------------------------------------

    def rows(self, widths: list[float]) -> list[range]:
        """Split items (embedding, columns, head) into rows no wider than ``max_width``.

        The split minimises, over all splits (dynamic programming, as a paragraph is broken
        into lines), ten times the square of the structure cut at each break (see
        ``Structure.break_costs``; squared, a break inside a copy costs four breaks between
        copies) plus, per row, one and three times the square of its unused fraction: rows are
        few and even, and the last row is not a stub."""
        n = len(widths)
        inner = self.s.break_costs()

        def cut(after: int) -> int:  # cost of a break between item ``after`` and ``after + 1``
            if after == 0 or after == n - 2:
                return 99  # keep the embedding with the first block, the head with the last
            return inner[after - 1]

        best = [0.0] + [math.inf] * n
        start_of = [0] * (n + 1)
        for end in range(1, n + 1):
            used = -COL_GAP
            for start in range(end - 1, -1, -1):
                used += widths[start] + COL_GAP
                if used > self.max_width and start < end - 1:
                    break
                slack = max(0.0, 1 - used / self.max_width)
                score = best[start] + 1 + 3 * slack * slack + (10 * cut(end - 1) ** 2 if end < n else 0)
                if score < best[end]:
                    best[end], start_of[end] = score, start
        rows, end = [], n
        while end > 0:
            rows.append(range(start_of[end], end))
            end = start_of[end]
        return rows[::-1]

    # ---- drawing -------------------------------------------------------------------------

    def draw(self, name: str, program: list[str], caption: list[str]) -> Picture:
        cols = self.s.columns
        sizes = [(44.0, 28.0)] + [self.column_size(c) for c in cols] + [(40.0, 28.0)]
        rows = self.rows([w for w, _ in sizes])
        x0 = MARGIN + GUTTER
        self.x: dict[int, float] = {}
        right = 0.0
        for row in rows:
            x = x0
            for item in row:
                self.x[item] = x
                x += sizes[item][0] + COL_GAP
            continues = 18.0 if row is not rows[-1] else 0.0  # the arrow into the next row
            right = max(right, x - COL_GAP + continues)
        width = float(math.ceil(max(MIN_WIDTH, right + MARGIN)))  # whole pixels: the PNG has them
        pic = Picture(width, 0.0, name, "\n".join(program + caption))
        y = draw_header(pic, name, program, self.s, self.colours, self.sites)
        for number, row in enumerate(rows):
            y = self.row(pic, number, row, sizes, y, last=number == len(rows) - 1)
        y = draw_wrapped(pic, caption, y + 4, width - 2 * MARGIN, 11.0, "#333333", "caption")
        pic.height = float(math.ceil(y + MARGIN))
        return pic

    def row(self, pic: Picture, number: int, row: range, sizes, top: float, last: bool) -> float:
        cols = [i - 1 for i in row if 0 < i <= len(self.s.columns)]
        spans = [s for s in self.s.spans if cols and s.start <= cols[-1] and s.end > cols[0]]
        tag = TAG_H if any(s.kind == "shared" for s in spans) else 0.0
        band = max(sizes[i][1] for i in row)
        levels = max((s.level + 1 for s in spans if s.kind == "repeat" and s.count > 1), default=0)
        mid = top + tag + band / 2
        start_x, end_x = self.x[row[0]], self.x[row[-1]] + sizes[row[-1]][0]
        # the residual stream behind the blocks, continued from the row before and into the next
        line_from = start_x - 12 if number > 0 else start_x
        line_to = end_x + (12 if not last else 0)
        pic.add(Line(((line_from, mid), (line_to, mid)), palette.FAINT, 2.0, role="stream"))
        if not last:
            pic.add(Polygon(((line_to, mid - 4), (line_to + 6, mid), (line_to, mid + 4)), palette.FAINT, role="stream"))
        if cols:
            pic.add(Text(start_x - 14, mid + 4, str(cols[0]), 10, palette.FAINT, "end", role="row-number"))
        for item in row:
            x, (w, h) = self.x[item], sizes[item]
            if item == 0 or item == len(self.s.columns) + 1:
                label = "embed" if item == 0 else "head"
                pic.add(
                    Rect(
                        x,
                        mid - h / 2,
                        w,
                        h,
                        palette.IO_FILL,
                        palette.FAINT,
                        1.0,
                        radius=4,
                        role="io",
                        data=(("part", label),),
                    )
                )
                pic.add(Text(x + w / 2, mid + 4, label, 10, palette.INK, "middle", role="io"))
            else:
                self.column(pic, self.s.columns[item - 1], x, mid, w, h)
        for span in spans:
            inside = [c for c in cols if span.start <= c < span.end]
            if span.kind == "shared":
                self.shared(pic, span, inside, sizes, mid)
            elif span.count > 1:
                self.bracket(pic, span, inside, sizes, top + tag + band + 5 + span.level * BRACKET_H)
        return top + tag + band + 5 + levels * BRACKET_H + ROW_GAP

    def column(self, pic: Picture, col: Column, x: float, mid: float, w: float, h: float) -> None:
        if not col.parallel:
            self.block(pic, col.lanes[0][0], x, mid - h / 2, w)
            self.mark(pic, col.index, x, mid - h / 2, w, h)
            return
        top = mid - h / 2
        pic.add(
            Rect(
                x,
                top,
                w,
                h,
                "#FFFFFF",
                palette.FAINT,
                1.0,
                radius=5,
                role="parallel",
                data=(("index", str(col.index)),),
            )
        )
        cx = x + w - SUM_W / 2 - 1
        for j, lane in enumerate(col.lanes):
            lane_top = top + PAD + j * (self.block_h + LANE_GAP)
            lane_mid = lane_top + self.block_h / 2
            bx = x + FORK_W
            fork = x + FORK_W / 2
            pic.add(
                Line(((x, mid), (fork, mid), (fork, lane_mid), (bx, lane_mid)), palette.FAINT, 1.2, role="branch-fork")
            )
            for block in lane:
                bw = self.block_w(block)
                self.block(pic, block, bx, lane_top, bw)
                self.mark(pic, block.node_id, bx, lane_top, bw, self.block_h)
                bx += bw + LANE_GAP
            towards = mid - 5 if lane_mid < mid else mid + 5
            pic.add(
                Line(((bx - LANE_GAP, lane_mid), (cx, lane_mid), (cx, towards)), palette.FAINT, 1.2, role="branch-join")
            )
        plus(pic, cx, mid)
        self.mark(pic, col.index, x, top, w, h)

    def block(self, pic: Picture, b: Block, x: float, y: float, w: float) -> None:
        fill = self.colours[b.type]
        data = [("node", b.node_id), ("index", str(b.index)), ("type", b.type)]
        if b.branch is not None:
            data.append(("branch", str(b.branch)))
        if b.group:
            data.append(("group", b.group))
        title = f"{b.node_id}: {b.type} {b.params}".rstrip() + (f"  [shared {b.group}]" if b.group else "")
        pic.add(
            Rect(x, y, w, self.block_h, fill, palette.INK, 0.8, radius=3, role="block", data=tuple(data), title=title)
        )
        ink = palette.text_colour(fill)
        lines = block_lines(b.params)
        text_h = TYPE_SIZE + len(lines) * LINE_H
        base = y + (self.block_h - text_h) / 2 + TYPE_SIZE - 1.5
        pic.add(Text(x + w / 2, base, b.type, TYPE_SIZE, ink, "middle", bold=True, role="block-type"))
        for i, line in enumerate(lines, start=1):
            pic.add(Text(x + w / 2, base + i * LINE_H, line, PARAM_SIZE, ink, "middle", role="block-params"))

    def shared(self, pic: Picture, span: Span, inside: list[int], sizes, mid: float) -> None:
        h = max(sizes[c + 1][1] for c in inside)
        x0, x1 = self.x[inside[0] + 1] - 3, self.x[inside[-1] + 1] + sizes[inside[-1] + 1][0] + 3
        data = (("group", str(span.group)), ("use", str(span.uid)))
        pic.add(
            Rect(x0, mid - h / 2 - 3, x1 - x0, h + 6, "none", palette.INK, 1.4, (4.0, 3.0), 5, role="shared", data=data)
        )
        label = fit(str(span.group), max(x1 - x0, 40), 10, bold=True)
        pic.add(Text(x0 + 1, mid - h / 2 - 6, label, 10, palette.INK, bold=True, role="shared-name", data=data))

    def bracket(self, pic: Picture, span: Span, inside: list[int], sizes, y: float) -> None:
        x0 = self.x[inside[0] + 1] + 1
        x1 = self.x[inside[-1] + 1] + sizes[inside[-1] + 1][0] - 1
        data = (("repeat", str(span.uid)), ("count", str(span.count)))
        left = (x0, y - 5) if inside[0] == span.start else (x0 - 4, y)
        right = (x1, y - 5) if inside[-1] == span.end - 1 else (x1 + 4, y)
        pic.add(Line((left, (x0, y), (x1, y), right), palette.INK, 1.3, role="bracket", data=data))
        for copy in span.copies[1:]:
            if copy in inside:
                tx = self.x[copy + 1] - COL_GAP / 2
                pic.add(Line(((tx, y - 3), (tx, y)), palette.INK, 1.0, role="bracket-tick", data=data))
        label = f"{span.count}×" if inside[0] == span.start else f"{span.count}× (continued)"
        pic.add(
            Text((x0 + x1) / 2, y + 12, label, 10.5, palette.INK, "middle", bold=True, role="repeat-count", data=data)
        )

    # ---- marks ---------------------------------------------------------------------------

    def mark(self, pic: Picture, key: int | str, x: float, y: float, w: float, h: float) -> None:
        """Outline a highlighted block (or parallel frame) once, with a numbered badge per site."""
        numbers = self.sites_at.get(key, [])
        if not numbers:
            return
        data = (("site", " ".join(map(str, numbers))),)
        pic.add(
            Rect(x - 2.5, y - 2.5, w + 5, h + 5, "none", palette.HIGHLIGHT, 2.5, radius=5, role="highlight", data=data)
        )
        for k, number in enumerate(numbers):
            badge(pic, x + w - 1 - 15 * k, y - 1, number)

    def _sites(self, highlights: list[Highlight]) -> list[Highlight]:
        # what a position names -> the key that ``mark`` is called with: a plain sub-layer by its
        # index (also when named "L3"), one layer of a branch by its node id
        known: dict[int | str, int | str] = {}
        for col in self.s.columns:
            known[col.index] = col.index
            for lane in col.lanes:
                for b in lane:
                    known[b.node_id] = b.node_id if col.parallel else col.index
        self.sites_at: dict[int | str, list[int]] = {}
        for number, site in enumerate(highlights, start=1):
            if not isinstance(site, Highlight):
                raise ArchDSLError(f"highlights take Highlight(positions, options, name), not {type(site).__name__}")
            for position in site.positions:
                if not isinstance(position, (int, str)) or isinstance(position, bool) or position not in known:
                    raise ArchDSLError(
                        f"highlight {site.name or number}: {position!r} is not a sub-layer of this layout "
                        f"(sub-layers 0..{len(self.s.columns) - 1}, or node ids such as 'L0')"
                    )
                self.sites_at.setdefault(known[position], []).append(number)
        return highlights
