"""The README's language example and Python snippet work as written."""

from __future__ import annotations

import re
from pathlib import Path

import archdsl

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_language_tour_example_parses_and_builds():
    section = README.split("## The language", 1)[1]
    block = re.search(r"\n\n((?:    .*\n|\n)+)", section).group(1)
    program = "\n".join(line[4:] for line in block.splitlines())
    spec = archdsl.parse(program, d_model=64, vocab=50)
    assert len(spec.layers()) == 6 * (3 * 2 + 2) + 2
    archdsl.build(spec)


def test_python_snippet_runs():
    code = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert namespace["tokens"].shape == (2, 36)
