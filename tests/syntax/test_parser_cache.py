"""The grammar's parse tables are cached in the user's cache folder between runs: a cached parser
parses as a freshly built one, a cache written for another grammar or a damaged one is rebuilt,
and a cache folder that cannot be written costs the build, never an error."""

from __future__ import annotations

from pathlib import Path

import pytest
from lark import Lark

from archdsl.syntax import parse_program
from archdsl.syntax.parser import build_lark, grammar_path, parser_cache_file

PROGRAMS = [
    "4x(ssm) 1x(attn window=512)",
    "model d_model=64 vocab=100\nlet m = ssm state=16 mlp\n2x(m (attn heads=4 | conv)) shared(attn mlp)",
    "{2, 4}x(ssm) {attn window={64, 256}, gdn}",
]


@pytest.fixture
def cache_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path


def trees(parser: Lark) -> list:
    return [parser.parse(text) for text in PROGRAMS]


def header(path: str) -> bytes:
    return Path(path).read_bytes().split(b"\n", 1)[0]


def test_the_cache_file_is_in_the_user_cache_folder(cache_home):
    assert parser_cache_file() == str(cache_home / "archdsl" / "grammar.lark-cache")


def test_a_parser_loaded_from_the_cache_parses_as_a_built_one(cache_home):
    path = parser_cache_file()
    built = build_lark(cache=path)  # writes the cache
    assert Path(path).is_file()
    written = Path(path).stat().st_mtime_ns
    loaded = build_lark(cache=path)
    assert not hasattr(loaded, "grammar")  # lark keeps the analysed grammar only when it builds
    assert Path(path).stat().st_mtime_ns == written
    assert trees(loaded) == trees(built) == trees(build_lark(cache=False))


def test_a_cache_of_another_grammar_is_rebuilt(cache_home):
    path = parser_cache_file()
    build_lark(cache=path)
    ours = header(path)
    # the tables of an edited grammar (one rule more), written by the same lark to the same file
    edited = grammar_path().read_text() + "\nunused_rule: NAME\n"
    Lark(edited, parser="lalr", lexer="basic", start="program", propagate_positions=True, cache=path)
    assert header(path) != ours
    parser = build_lark(cache=path)
    assert header(path) == ours  # rebuilt from our grammar, and written back
    assert trees(parser) == trees(build_lark(cache=False))


def test_a_damaged_cache_is_rebuilt(cache_home):
    path = Path(parser_cache_file())
    build_lark(cache=str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # cut short, as by a crash while writing
    assert trees(build_lark(cache=str(path))) == trees(build_lark(cache=False))
    assert header(str(path)) == data.split(b"\n", 1)[0]  # written again, whole
    assert not hasattr(build_lark(cache=str(path)), "grammar")  # and loaded from the next time


def test_a_cache_folder_that_cannot_be_made_means_no_cache(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would go")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    assert parser_cache_file() is False
    assert [type(item).__name__ for item in parse_program("4x(ssm) attn").body.items] == ["Repeat", "Call"]


def test_a_cache_file_that_cannot_be_written_costs_the_build_only(cache_home, capfd):
    path = Path(parser_cache_file())
    path.mkdir()  # a folder in the way: opening it to read or write fails (even as root)
    parser = build_lark(cache=str(path))
    assert trees(parser) == trees(build_lark(cache=False))
    assert path.is_dir() and capfd.readouterr().err == ""
