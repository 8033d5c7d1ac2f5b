"""The base of every task: settings, a batch with its loss mask, and the registry.

A task is a pure function of (settings, seed) to token tensors (after Zoology's and MAD's data
generators): ``generate(n, generator)`` draws ``n`` examples, each an input sequence, the next
tokens it is scored against, and a mask of the positions that are scored (the answers). Training
batches come from the run's seed; the test set from the task's own ``test_seed``, so every run
and every architecture is scored on the very same examples.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field

from archdsl.errors import ArchDSLError, did_you_mean


class TaskError(ArchDSLError):
    """An unknown task, or task settings it cannot take."""


class TaskSettings(BaseModel):
    """Base of every task's settings (its fields are shown by ``archdsl tasks``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class SyntheticSettings(TaskSettings):
    """Settings every generated task shares."""

    train_examples: int | None = Field(
        None, ge=1, description="size of the training set; none: a fresh batch every step"
    )
    test_examples: int = Field(1280, ge=1, le=1_000_000, description="size of the fixed test set")
    test_seed: int = Field(1_000_003, ge=0, description="seed of the test set (separate from the run's seed)")


@dataclass(frozen=True)
class Batch:
    """``n`` examples: ``inputs`` (n, T) token ids, ``targets`` (n, T) the token each position
    must predict, ``mask`` (n, T) True where the prediction is scored (loss and accuracy)."""

    inputs: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def __getitem__(self, index: Any) -> Batch:
        return Batch(self.inputs[index], self.targets[index], self.mask[index])

    def to(self, device: torch.device | str) -> Batch:
        return Batch(*(t.to(device, non_blocking=True) for t in (self.inputs, self.targets, self.mask)))


def in_chunks(n: int, elements_per_example: int, draw) -> Batch:
    """``draw(k)`` for chunks of at most ``k`` examples, concatenated: generators that build a
    (pairs x pairs) or (pairs x keys) table per example stay within ~16M elements at a time
    (MAD's longest settings would otherwise ask for gigabytes)."""
    size = max(1, 2**24 // max(1, elements_per_example))
    if n <= size:
        return draw(n)
    parts = [draw(min(size, n - start)) for start in range(0, n, size)]
    return Batch(*(torch.cat([getattr(p, f) for p in parts]) for f in ("inputs", "targets", "mask")))


def shift(tokens: torch.Tensor, answers: torch.Tensor) -> Batch:
    """A batch from whole sequences (n, T+1) and a mask of their answer tokens (n, T+1): the
    model reads tokens[:, :-1] and predicts tokens[:, 1:], scored where the predicted token is
    an answer."""
    return Batch(tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous(), answers[:, 1:].contiguous())


class Task(ABC):
    """A task: its settings, vocabulary, sequence length, metrics and a generator of examples.

    >>> from archdsl.tasks import get_task
    >>> task = get_task("mqar", pairs=4, seq_len=32)
    >>> batch = task.generate(2, torch.Generator().manual_seed(0))
    >>> batch.inputs.shape, task.metrics["accuracy"]
    (torch.Size([2, 32]), 'maximize')
    """

    name: ClassVar[str]
    description: ClassVar[str]
    Settings: ClassVar[type[TaskSettings]]
    # metric name -> "maximize" / "minimize"; the evaluation returns exactly these keys
    metrics: ClassVar[dict[str, str]] = {"loss": "minimize", "accuracy": "maximize"}
    main_metric: ClassVar[str] = "accuracy"

    def __init__(self, settings: TaskSettings):
        self.settings = settings
        self._test: Batch | None = None

    @property
    def vocab_size(self) -> int:
        """Token ids are in 0..vocab_size-1: the settings' ``vocab`` unless a task says otherwise."""
        return self.settings.vocab

    @property
    def seq_len(self) -> int:
        """Length of every input sequence: the settings' ``seq_len`` unless a task says otherwise."""
        return self.settings.seq_len

    @abstractmethod
    def generate(self, n: int, generator: torch.Generator, *, test: bool = False) -> Batch:
        """``n`` examples drawn with ``generator`` (on the CPU); ``test`` for the test set (a
        task may probe differently there, as MAD's fuzzy recall does)."""

    @property
    def label(self) -> str:
        """The name with the settings that differ from the defaults, e.g. ``mqar pairs=16``."""
        changed = self.settings.model_dump(exclude_defaults=True)
        return " ".join([self.name, *(f"{k}={v}" for k, v in changed.items())])

    def test_set(self) -> Batch:
        """The fixed test set, drawn once from ``test_seed``."""
        if self._test is None:
            generator = torch.Generator().manual_seed(getattr(self.settings, "test_seed", 0))
            self._test = self.generate(getattr(self.settings, "test_examples", 1280), generator, test=True)
        return self._test

    def train_batches(self, batch: int, seed: int) -> Iterator[Batch]:
        """Endless training batches of ``batch`` examples from ``seed``: fresh draws, or shuffled
        epochs over a fixed training set of ``train_examples`` (kept for the next run with the
        same settings and seed: a search trains many layouts on one set)."""
        size = getattr(self.settings, "train_examples", None)
        if size is None:
            generator = torch.Generator().manual_seed(seed)
            while True:
                yield self.generate(batch, generator)
        key = (type(self), self.settings, seed)
        data = _train_sets.pop(key, None)
        if data is None:
            data = self.generate(size, torch.Generator().manual_seed(seed))
        _train_sets[key] = data  # the most recent last
        while len(_train_sets) > TRAIN_SETS_KEPT:
            _train_sets.pop(next(iter(_train_sets)))
        shuffle = torch.Generator().manual_seed(seed + 1)  # the order of the examples, epoch after epoch
        while True:
            order = torch.randperm(size, generator=shuffle)
            # the last partial batch of an epoch is dropped, as DataLoader(drop_last=True) does
            for start in range(0, size - batch + 1, batch):
                yield data[order[start : start + batch]]
            if batch > size:
                yield data[torch.randint(size, (batch,), generator=shuffle)]

    def evaluate(self, logits: torch.Tensor, batch: Batch) -> dict[str, float]:
        """Sums over the scored positions of one chunk; :meth:`finish` turns them into metrics."""
        picked = logits[batch.mask].float()
        targets = batch.targets[batch.mask]
        loss = torch.nn.functional.cross_entropy(picked, targets, reduction="sum")
        return {
            "loss": float(loss),
            "correct": float((picked.argmax(-1) == targets).sum()),
            "count": float(targets.numel()),
        }

    def finish(self, sums: dict[str, float]) -> dict[str, float]:
        count = max(sums["count"], 1.0)
        return {"loss": sums["loss"] / count, "accuracy": sums["correct"] / count}


# training sets of the last few (task, settings, seed), generated once per process
TRAIN_SETS_KEPT = 4
_train_sets: dict[tuple, Batch] = {}


# ---- the registry --------------------------------------------------------------------------

_tasks: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Add a task class under ``cls.name`` (usable as a decorator); a duplicate name raises."""
    if cls.name in _tasks and _tasks[cls.name] is not cls:
        raise TaskError(f"a task named '{cls.name}' is already registered")
    _tasks[cls.name] = cls
    return cls


def list_tasks() -> dict[str, type[Task]]:
    """Every registered task class by name, sorted (``text:PATH`` is listed as ``text``)."""
    return dict(sorted(_tasks.items()))


def get_task(name: str | Task, **settings: Any) -> Task:
    """The task ``name`` with ``settings`` (keyword values, or strings from the command line).

    >>> get_task("mqar", pairs=16, seq_len=128).seq_len
    128
    """
    if isinstance(name, Task):
        if settings:
            raise TaskError("settings are given with a task name, not with a Task object")
        return name
    if not isinstance(name, str):
        raise TaskError(f"a task is a name such as 'mqar' or a Task, not {type(name).__name__}")
    if name.startswith("text:"):
        settings = {"path": name[len("text:") :], **settings}
        name = "text"
    cls = _tasks.get(name)
    if cls is None:
        raise TaskError(
            f"unknown task '{name}'{did_you_mean(name, _tasks)}; known tasks: {', '.join(sorted(_tasks))}"
            " (and text:PATH)"
        )
    return cls(parse_settings(cls, settings))


def parse_settings(cls: type[Task], settings: dict[str, Any]) -> TaskSettings:
    """Validate settings against the task's model; unknown keys get a "did you mean"."""
    from pydantic import ValidationError

    fields = cls.Settings.model_fields
    for key in settings:
        if key not in fields:
            raise TaskError(
                f"task '{cls.name}' has no setting '{key}'{did_you_mean(key, fields)}; "
                f"its settings: {', '.join(fields)}"
            )
    try:
        return cls.Settings.model_validate(settings)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        value = settings.get(first["loc"][0]) if first["loc"] else None
        shown = f" (got {value!r})" if first["loc"] else ""
        raise TaskError(f"task '{cls.name}': {where}: {first['msg']}{shown}") from None
