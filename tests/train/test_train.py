"""The training loop: results, determinism, divergence, the callback contract, refusals."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

import archdsl
from archdsl.tasks import get_task
from archdsl.training import TrainError, TrainEvent, TrainResult
from archdsl.training._optim import lr_at, param_groups

TINY = get_task("mqar", vocab=32, seq_len=16, pairs=2, test_examples=64)


def quick(spec: str = "attn mlp", task=TINY, **settings):
    options = {"steps": 6, "batch": 4, "d_model": 16, "eval_every": 3, **settings}
    return archdsl.train(spec, task, **options)


def test_result_fields_and_json():
    result = quick()
    assert isinstance(result, TrainResult)
    assert result.status == "finished" and result.reason is None and result.steps == 6
    assert set(result.metrics) == {"loss", "accuracy"} and 0.0 <= result.metrics["accuracy"] <= 1.0
    assert [entry["step"] for entry in result.curve] == [3, 6]
    assert result.curve[-1]["loss"] == result.metrics["loss"]
    assert result.best["loss"] == min(entry["loss"] for entry in result.curve)
    assert result.best["accuracy"] == max(entry["accuracy"] for entry in result.curve)
    assert result.params == sum(p.numel() for p in result.model.parameters())
    assert result.tokens_per_s > 0 and result.wall_s > 0 and result.peak_mem_bytes > 0
    assert result.main_metric == "accuracy" and result.directions == TINY.metrics
    data = json.loads(json.dumps(result.to_dict()))
    assert data["status"] == "finished" and data["settings"]["steps"] == 6 and "model" not in data


def test_model_vocab_is_the_tasks_unless_given():
    assert quick().model.settings.vocab == 32
    assert quick(vocab=40).model.settings.vocab == 40
    with pytest.raises(TrainError, match="smaller than the vocabulary"):
        quick(vocab=20)


def test_same_seed_same_metrics_bit_for_bit_and_other_seeds_differ():
    a, b, c = quick(seed=3), quick(seed=3), quick(seed=4)
    assert a.curve == [dict(e, elapsed_s=f["elapsed_s"]) for e, f in zip(b.curve, a.curve)]
    assert a.metrics == b.metrics
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(p, q)
    assert a.metrics != c.metrics


def test_the_callers_random_state_is_left_alone():
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    quick()
    assert torch.equal(torch.rand(3), expected)


def test_huge_learning_rate_ends_as_diverged():
    result = quick(lr=1e30, steps=20, eval_every=10)
    assert result.status == "diverged"
    assert result.reason.startswith("the training loss became") and f"at step {result.steps + 1}" in result.reason
    assert result.steps < 20
    # the metrics are those of the last finite weights
    assert set(result.metrics) == {"loss", "accuracy"}


def test_callback_sees_every_evaluation_and_can_stop_the_run():
    events: list[TrainEvent] = []

    def stop_at_second(event: TrainEvent):
        events.append(event)
        return "enough" if event.step == 4 else None

    result = quick(steps=10, eval_every=2, callback=stop_at_second)
    assert [e.step for e in events] == [2, 4]
    assert result.status == "stopped" and result.reason == "enough" and result.steps == 4
    assert events[-1].metrics == result.metrics and events[-1].elapsed_s > 0
    assert quick(callback=lambda e: True).reason == "stopped by the callback at step 3"


def test_an_exception_from_the_callback_propagates_unchanged():
    class Pruned(Exception):
        pass

    def prune(event):
        raise Pruned(event.step)

    with pytest.raises(Pruned) as caught:
        quick(callback=prune)
    assert caught.value.args == (3,)


def test_a_model_that_cannot_fit_is_refused_before_allocation():
    with pytest.raises(
        TrainError, match=r"training needs [\d,.]+ GiB \(weights .* gradients .* optimizer .* activations"
    ):
        archdsl.train("64x(mlp)", TINY, d_model=16384, steps=1)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        pytest.param({"step": 5}, "no setting 'step' (did you mean 'steps'?)", id="unknown-setting"),
        pytest.param({"lr": -1}, "'lr'", id="negative-lr"),
        pytest.param({"device": "tpu9"}, "unknown device 'tpu9'", id="unknown-device"),
        pytest.param({"dtype": "float8"}, "'dtype'", id="unknown-dtype"),
        pytest.param({"warmup": 50, "steps": 10}, "warmup (50) is longer", id="warmup-too-long"),
    ],
)
def test_bad_settings_are_clear_errors(settings, message):
    with pytest.raises(archdsl.ArchDSLError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        quick(**settings)


def test_bad_task_is_a_clear_error():
    with pytest.raises(archdsl.ArchDSLError, match="did you mean 'mqar'"):
        archdsl.train("attn", "mqr", steps=1)


def test_weight_decay_spares_norms_biases_and_embeddings():
    model = quick("attn ssm head_dim=8 mlp").model
    decay, keep = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    kept = {names[id(p)] for p in keep["params"]}
    assert "embed.weight" in kept and "lm_head.weight" in decayed
    assert all(p.dim() >= 2 for p in decay["params"])
    assert any("norm" in n for n in kept) and any("A_log" in n for n in kept)
    assert decay["weight_decay"] == 0.1 and keep["weight_decay"] == 0.0
    assert len(decayed) + len(kept) == len(list(model.parameters()))


def test_schedule_warms_up_then_follows_a_cosine():
    lrs = [lr_at(s, peak=1.0, warmup=10, total=110, min_ratio=0.1) for s in range(110)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0) and lrs[-1] == pytest.approx(0.1)
    middle = 10 + 99 // 2
    assert lrs[middle] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (middle - 10) / 99)))
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))


def test_threads_setting_is_restored():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []
        quick(threads=1, callback=lambda event: seen.append(torch.get_num_threads()))
        assert seen == [1, 1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
