"""``archdsl train`` and ``archdsl tasks`` end to end, and a saved run read back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

import archdsl
from archdsl.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
runner = CliRunner()
SMALL = ["--d-model", "16", "--steps", "4", "--batch", "4", "--eval-every", "2"]
TASK = ["vocab=32", "seq_len=16", "pairs=2", "test_examples=16"]


def run(*args: str):
    return runner.invoke(app, list(args))


def test_train_json_prints_one_result_line():
    result = run("train", "-e", "2x(attn mlp)", "--task", "mqar", *SMALL, "--json", *TASK)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1
    data = json.loads(lines[0])
    assert data["status"] == "finished" and data["steps"] == 4 and set(data["metrics"]) == {"loss", "accuracy"}
    assert data["task"] == "mqar test_examples=16 vocab=32 seq_len=16 pairs=2"
    assert data["spec"].startswith("model d_model=16 vocab=32")


def test_train_shows_progress_and_a_summary():
    result = run("train", str(EXAMPLES / "mamba2.arch"), "--task", "mqar", *SMALL, "--d-model", "32", *TASK)
    assert result.exit_code == 0, result.output
    assert "step" in result.output and "accuracy" in result.output and "finished" in result.output
    assert "tokens/s" in result.output


def test_save_writes_a_run_that_build_and_load_state_dict_read_back(tmp_path):
    out = tmp_path / "run"
    program = "model tie_embeddings=true\nlet g = shared(attn mlp)\ng ssm head_dim=8 g"
    result = run("train", "-e", program, "--task", "mqar", *SMALL, *TASK, "--save", str(out), "--json")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["model.arch", "model.safetensors", "result.json", "settings.json"]
    model = archdsl.build(archdsl.load(out / "model.arch"))
    model.load_state_dict(load_file(out / "model.safetensors"))  # strict: every name is there
    saved = json.loads((out / "result.json").read_text())
    settings = json.loads((out / "settings.json").read_text())
    assert settings["train"]["steps"] == 4 and settings["task_settings"]["pairs"] == 2
    # the weights read back give the test metrics the run reported
    from archdsl.tasks import get_task

    task = get_task("mqar", vocab=32, seq_len=16, pairs=2, test_examples=16)
    test = task.test_set()
    with torch.no_grad():
        metrics = task.finish(task.evaluate(model.eval()(test.inputs), test))
    assert metrics["loss"] == pytest.approx(saved["metrics"]["loss"], rel=1e-5)
    assert metrics["accuracy"] == saved["metrics"]["accuracy"]


def test_task_settings_errors_are_one_line_with_a_suggestion():
    result = run("train", "-e", "attn", "--task", "mqar", "pair=4", *SMALL)
    assert result.exit_code == 1
    assert "no setting 'pair' (did you mean 'pairs'?)" in result.output and "Traceback" not in result.output
    result = run("train", "-e", "attn", "--task", "mad/in_context_recal", *SMALL)
    assert result.exit_code == 1 and "did you mean 'mad/in_context_recall'" in result.output
    result = run("train", "-e", "attn", "--task", "mqar", *SMALL, "--dtype", "float8")
    assert result.exit_code == 1 and "dtype" in result.output and "Traceback" not in result.output


def test_diverged_run_exits_non_zero():
    result = run("train", "-e", "attn mlp", "--task", "mqar", *SMALL, *TASK, "--lr", "1e30", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout.strip().splitlines()[-1])["status"] == "diverged"


def test_tasks_lists_every_task_with_its_settings_and_defaults():
    result = run("tasks")
    assert result.exit_code == 0, result.output
    for name in ("mqar", "mad/in_context_recall", "mad/memorization", "text:PATH", "power_a", "frac_noise"):
        assert name in result.output
    listing = json.loads(run("tasks", "--json").stdout)
    assert listing["mqar"]["settings"]["pairs"]["default"] == 8
    assert listing["mad/noisy_recall"]["settings"]["vocab"]["default"] == 32
    assert listing["mad/memorization"]["settings"]["train_examples"]["default"] == 256
    assert listing["text:PATH"]["metrics"] == {"loss": "minimize", "bpb": "minimize"}
