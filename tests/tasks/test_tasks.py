"""Every task: shapes, vocabulary ranges and masks against its settings; answers against a
brute-force reading of each generated sequence; seeds; errors with suggestions."""

from __future__ import annotations

import math

import pytest
import torch

from archdsl.tasks import Task, TaskError, get_task, list_tasks

# small settings so that every test runs in milliseconds
SMALL = {
    "mqar": {"vocab": 64, "seq_len": 32, "pairs": 4},
    "mad/in_context_recall": {"seq_len": 32},
    "mad/noisy_recall": {"seq_len": 32},
    "mad/fuzzy_recall": {"seq_len": 48},
    "mad/selective_copying": {"seq_len": 40, "to_copy": 8},
    "mad/compression": {"seq_len": 12},
    "mad/memorization": {"seq_len": 16},
}
SYNTHETIC = sorted(SMALL)


def draw(task: Task, n: int = 64, seed: int = 0, test: bool = False):
    return task.generate(n, torch.Generator().manual_seed(seed), test=test)


def test_every_task_is_listed():
    assert set(list_tasks()) == {*SYNTHETIC, "text"}


@pytest.mark.parametrize("name", SYNTHETIC)
def test_shapes_vocab_and_masks_follow_the_settings(name):
    task = get_task(name, **SMALL[name])
    batch = draw(task)
    assert batch.inputs.shape == batch.targets.shape == batch.mask.shape == (64, task.seq_len)
    assert batch.inputs.dtype == batch.targets.dtype == torch.long and batch.mask.dtype == torch.bool
    assert 0 <= int(batch.inputs.min()) and int(batch.inputs.max()) < task.vocab_size
    scored = batch.targets[batch.mask]
    assert scored.numel() > 0 and 0 <= int(scored.min()) and int(scored.max()) < task.vocab_size
    assert set(task.metrics) == {"loss", "accuracy"} and task.main_metric == "accuracy"


@pytest.mark.parametrize("name", SYNTHETIC)
def test_generation_is_a_function_of_the_seed(name):
    task = get_task(name, **SMALL[name])
    a, b, c = draw(task, seed=1), draw(task, seed=1), draw(task, seed=2)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets) and torch.equal(a.mask, b.mask)
    assert not torch.equal(a.inputs, c.inputs)
    # the test set comes from the task's own seed, whatever run asks for it
    assert torch.equal(task.test_set().inputs, get_task(name, **SMALL[name]).test_set().inputs)
    other = get_task(name, **SMALL[name], test_seed=7).test_set()
    assert not torch.equal(task.test_set().inputs, other.inputs)


@pytest.mark.parametrize("name", SYNTHETIC)
def test_training_batches_repeat_per_seed_and_cover_a_finite_set(name):
    task = get_task(name, **SMALL[name], train_examples=24)
    first = [b.inputs for _, b in zip(range(5), task.train_batches(8, seed=3))]
    again = [b.inputs for _, b in zip(range(5), task.train_batches(8, seed=3))]
    assert all(torch.equal(x, y) for x, y in zip(first, again))
    # three batches of eight are one epoch: each of the 24 examples once
    epoch = torch.cat(first[:3])
    assert len({tuple(row.tolist()) for row in epoch}) == len({tuple(r.tolist()) for r in torch.cat(first)}) <= 24


def test_mqar_answers_are_the_values_of_the_queried_keys():
    task = get_task("mqar", vocab=64, seq_len=32, pairs=4)
    batch = draw(task, n=200)
    half = 32
    for inputs, targets, mask in zip(batch.inputs.tolist(), batch.targets.tolist(), batch.mask.tolist()):
        block = inputs[:8]
        keys, values = block[0::2], block[1::2]
        assert all(0 < k < half for k in keys) and all(half <= v < 64 for v in values)
        assert len(set(keys)) == 4 and len(set(values)) == 4
        queried = [t for t in range(32) if mask[t]]
        assert len(queried) == 4 and min(queried) >= 8 and all((t - 8) % 2 == 0 for t in queried)
        for t in queried:
            assert targets[t] == dict(zip(keys, values))[inputs[t]]


def test_mqar_query_gaps_follow_the_power_law():
    def mean_gap(power_a: float) -> float:
        batch = draw(get_task("mqar", vocab=512, seq_len=256, pairs=4, power_a=power_a), n=400)
        return float((batch.mask.nonzero()[:, 1].float() - 8).mean() / 2)

    # a = 1 is uniform over the 124 slots (mean ~61.5); a = 0.01 puts most queries early
    assert 50 < mean_gap(1.0) < 73
    assert mean_gap(0.01) < 35


def test_mqar_paper_settings_are_reachable():
    task = get_task("mqar", vocab=8192, seq_len=256, pairs=16)
    assert draw(task, n=4).inputs.shape == (4, 256)


def recall_reference(inputs: list[int], targets: list[int], mask: list[int], keys: int, noise_from: int):
    """Walk the sequence pair by pair: a scored value must be the one its key had before."""
    tokens = inputs + [targets[-1]]
    seen: dict[int, int] = {}
    for i in range(0, len(tokens), 2):
        key, value = tokens[i], tokens[i + 1]
        scored = mask[i]  # the value at tokens[i + 1] is predicted at position i
        if key >= noise_from:
            assert not scored and value >= noise_from
            continue
        assert key < keys <= value < noise_from
        assert scored == (key in seen)
        if key in seen:
            assert seen[key] == value
        seen[key] = value


@pytest.mark.parametrize("name", ["mad/in_context_recall", "mad/noisy_recall"])
def test_recall_answers_are_values_seen_before(name):
    task = get_task(name, **SMALL[name])
    clean = task.settings.vocab - getattr(task.settings, "noise_vocab", 0)
    batch = draw(task, n=100)
    for row in zip(batch.inputs.tolist(), batch.targets.tolist(), batch.mask.tolist()):
        recall_reference(*row, keys=clean // 2, noise_from=clean)
        assert row[2][-1]  # the final query is always scored


def test_noisy_recall_noise_fraction_follows_the_setting():
    task = get_task("mad/noisy_recall", frac_noise=0.6)
    inputs = draw(task, n=200).inputs
    noise_pairs = (inputs[:, 0:-1:2] >= 16).float().mean()
    assert abs(float(noise_pairs) - 0.6) < 0.03


def test_fuzzy_recall_final_query_repeats_an_earlier_pair():
    task = get_task("mad/fuzzy_recall", **SMALL["mad/fuzzy_recall"])
    for test in (False, True):
        batch = draw(task, n=100, test=test)
        for inputs, targets, mask in zip(batch.inputs.tolist(), batch.targets.tolist(), batch.mask.tolist()):
            tokens = inputs + [targets[-1]]
            value_len = 0
            while mask[len(mask) - 1 - value_len]:
                value_len += 1
            value = tokens[len(tokens) - value_len :]
            body = tokens[: len(tokens) - value_len]
            key_len = 0
            while body[len(body) - 1 - key_len] < 7:  # key tokens are 0..6 at vocab 16
                key_len += 1
            key = body[len(body) - key_len :]
            assert 1 <= value_len <= 3 and 1 <= key_len <= 3 and all(7 <= v < 15 for v in value)
            if test:
                assert key_len == 3  # the test set shows keys of the longest size, as MAD's does
            earlier = body[: len(body) - key_len]
            pair = key + value
            assert any(earlier[i : i + len(pair)] == pair for i in range(len(earlier))), (inputs, mask)


def test_selective_copying_answers_are_the_scattered_tokens_in_order():
    task = get_task("mad/selective_copying", **SMALL["mad/selective_copying"])
    batch = draw(task, n=50)
    for inputs, targets, mask in zip(batch.inputs.tolist(), batch.targets.tolist(), batch.mask.tolist()):
        copy_at = inputs.index(15)
        content = [t for t in inputs[:copy_at] if t != 14]
        assert len(content) == 8 and all(t == 14 for t in inputs[copy_at + 1 :])
        assert [t for t, m in zip(targets, mask) if m] == content and sum(mask) == 8


def test_compression_answers_reproduce_the_sequence():
    task = get_task("mad/compression", **SMALL["mad/compression"])
    batch = draw(task, n=50)
    for inputs, targets, mask in zip(batch.inputs.tolist(), batch.targets.tolist(), batch.mask.tolist()):
        content = inputs[:11]
        assert inputs[11] == 15 and all(t < 15 for t in content)
        assert [t for t, m in zip(targets, mask) if m] == content


def test_memorization_facts_are_fixed_and_shared_by_train_and_test():
    task = get_task("mad/memorization", **SMALL["mad/memorization"])
    facts: dict[int, int] = {}
    for batch in (draw(task, seed=0), draw(task, seed=5), task.test_set()):
        for inputs, targets, mask in zip(batch.inputs.tolist(), batch.targets.tolist(), batch.mask.tolist()):
            for t in range(0, len(inputs), 2):
                key, value = inputs[t], targets[t + 1]
                assert inputs[t + 1] == 255 and mask[t + 1] and not mask[t] and key < 127 <= value < 255
                assert facts.setdefault(key, value) == value
    assert len(set(facts.values())) == len(facts)  # one value per key, no value twice
    other = get_task("mad/memorization", facts_seed=1).facts
    assert not torch.equal(other, task.facts)


def test_text_task_holds_out_the_end_of_the_file(tmp_path):
    data = bytes(range(256)) * 40  # 10,240 bytes
    path = tmp_path / "notes.txt"
    path.write_bytes(data)
    task = get_task(f"text:{path}", seq_len=32)
    assert task.vocab_size == 256 and task.metrics == {"loss": "minimize", "bpb": "minimize"}
    split = len(data) - len(data) // 10
    test = task.test_set()
    assert test.inputs.shape == (min(64, (len(data) - split) // 33), 32)
    assert test.inputs[0].tolist() == list(data[split : split + 32])
    train = next(task.train_batches(16, seed=0))
    for row in train.inputs.tolist():
        assert bytes(row) in data[:split]
    assert torch.equal(train.targets[:, :-1], train.inputs[:, 1:])
    logits = torch.zeros(len(test), 32, 256)
    metrics = task.finish(task.evaluate(logits, test))
    assert metrics["loss"] == pytest.approx(math.log(256)) and metrics["bpb"] == pytest.approx(8.0)


def test_text_task_errors(tmp_path):
    with pytest.raises(TaskError, match="cannot read"):
        get_task(f"text:{tmp_path / 'missing.txt'}")
    small = tmp_path / "small.txt"
    small.write_text("hello")
    with pytest.raises(TaskError, match="too few for seq_len=256"):
        get_task(f"text:{small}")


@pytest.mark.parametrize(
    ("name", "settings", "message"),
    [
        pytest.param("mqr", {}, "unknown task 'mqr' (did you mean 'mqar'?)", id="unknown-task"),
        pytest.param("mad/in_context_recal", {}, "did you mean 'mad/in_context_recall'", id="misspelt-mad"),
        pytest.param("mqar", {"pair": 4}, "no setting 'pair' (did you mean 'pairs'?)", id="unknown-setting"),
        pytest.param("mqar", {"seq_len": 33}, "seq_len must be even", id="odd-length"),
        pytest.param("mqar", {"vocab": 32, "seq_len": 64}, "must exceed seq_len", id="vocab-too-small"),
        pytest.param("mqar", {"pairs": "many"}, "pairs", id="not-a-number"),
        pytest.param("mad/selective_copying", {"to_copy": 200}, "seq_len must exceed", id="too-much-to-copy"),
    ],
)
def test_bad_names_and_settings_say_what_is_wrong(name, settings, message):
    with pytest.raises(TaskError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        get_task(name, **settings)


def test_settings_from_the_command_line_are_strings():
    assert get_task("mqar", pairs="4", seq_len="32", vocab="64").settings.pairs == 4


@pytest.mark.parametrize(
    ("name", "settings"),
    [
        ("mad/in_context_recall", {"vocab": 128, "seq_len": 1024, "train_examples": 800}),
        ("mad/noisy_recall", {"vocab": 144, "seq_len": 1024, "frac_noise": 0.8}),
        ("mad/fuzzy_recall", {"vocab": 128, "seq_len": 1024}),
        ("mad/selective_copying", {"vocab": 128, "seq_len": 1024, "to_copy": 96}),
        ("mad/compression", {"vocab": 128, "seq_len": 256}),
        ("mad/memorization", {"vocab": 8192}),
    ],
)
def test_mads_hardest_settings_generate(name, settings):
    task = get_task(name, **settings)
    batch = draw(task, n=4)
    assert batch.inputs.shape == (4, task.seq_len) and int(batch.inputs.max()) < task.vocab_size
    assert batch.mask.any(dim=1).all()
