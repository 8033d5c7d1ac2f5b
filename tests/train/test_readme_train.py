"""The README's Train section works as written (commands shortened to a few steps)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from typer.testing import CliRunner

from archdsl.cli import app

ROOT = Path(__file__).resolve().parents[2]
SECTION = (ROOT / "README.md").read_text().split("## Train", 1)[1].split("\n## ", 1)[0]
COMMANDS = [line.split("#", 1)[0].strip() for line in SECTION.splitlines() if line.startswith("    archdsl ")]


def test_the_issue_commands_are_in_the_readme():
    assert "archdsl train examples/jamba.arch --d-model 64 --task mqar --steps 500" in COMMANDS
    assert any(c.startswith("archdsl train examples/samba.arch") and "--save out/samba" in c for c in COMMANDS)
    assert "archdsl tasks" in COMMANDS


def test_every_train_command_runs_shortened(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    (tmp_path / "notes.txt").write_text("The quick brown fox jumps over the lazy dog.\n" * 200)
    runner = CliRunner()
    for command in COMMANDS:
        if "jamba" in command:
            continue  # 64 sub-layers: built and run by the examples' tests; the command was run by hand
        args = shlex.split(command)[1:]
        if args[0] == "train":
            args = re.sub(r"--steps \d+", "", " ".join(shlex.quote(a) for a in args))
            args = [*shlex.split(args), "--steps", "2", "--batch", "2", "--eval-every", "2", "test_examples=4"]
            if "mqar" in args and "vocab=8192" in args:
                args += ["--d-model", "32"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (command, result.output)
        if "--json" in args:
            assert json.loads(result.stdout.strip().splitlines()[-1])["status"] == "finished"
    saved = tmp_path / "out" / "samba"
    assert (saved / "model.safetensors").exists() and (saved / "model.arch").exists()


def test_python_example_runs():
    code = re.search(r"```python\n(.*?)```", SECTION, re.DOTALL).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md#train", "exec"), namespace)  # noqa: S102 - our own README
    assert namespace["result"].status in ("finished", "stopped")
