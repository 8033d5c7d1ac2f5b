"""The training loop (after nanoGPT's ``train.py``: every knob visible, nothing hidden).

One loop for CPU and GPU and for every caller: ``archdsl train``, the search, and Python users.
"""

from __future__ import annotations

import contextlib
import math
import resource
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from archdsl.tasks import Batch, Task, get_task
from archdsl.training._memory import check_training_fits
from archdsl.training._optim import lr_at, make_optimizer
from archdsl.training._result import TrainEvent, TrainResult
from archdsl.training._settings import TrainError, TrainSettings

Callback = Callable[[TrainEvent], Any]


def train(
    spec: Any,
    task: str | Task,
    *,
    callback: Callback | None = None,
    progress: Callable[[int, float], None] | None = None,
    **settings: Any,
) -> TrainResult:
    """Train ``spec`` (a Spec or program text) on ``task`` (a name such as ``"mqar"``,
    ``"mad/in_context_recall"``, ``"text:notes.txt"``, or a Task from ``archdsl.tasks.get_task``).

    ``settings`` are the fields of :class:`TrainSettings` (``steps``, ``batch``, ``lr``, ``seed``,
    ``device``, ``dtype``, ``eval_every``, ...). The model's vocabulary is set to the task's
    unless ``vocab=`` is given. ``callback(event)`` runs after every evaluation; a true return
    value (a str is the reason) stops the run as ``stopped``, an exception it raises propagates.
    ``progress(step, loss)`` runs after every step (the command's progress bar).

    >>> import archdsl
    >>> r = archdsl.train("2x(attn)", "mqar", steps=20, batch=8, d_model=32)   # doctest: +SKIP
    >>> r.status, r.metrics["accuracy"]                                         # doctest: +SKIP
    """
    s = TrainSettings.parse(settings)
    task = get_task(task)
    spec = _model_spec(spec, task, s)
    device = _device(s.device)
    autocast_dtype = _autocast_dtype(s, device)

    from archdsl.api import build, to_graph

    graph = to_graph(spec)
    act_bytes = 2 if autocast_dtype is not None else 4
    check_training_fits(graph, task.seq_len, s.batch, device, act_bytes)

    threads_before = torch.get_num_threads()
    if s.threads is not None:
        torch.set_num_threads(s.threads)
    try:
        with torch.random.fork_rng(devices=[]):  # the caller's global RNG is left as it was
            torch.manual_seed(s.seed)
            model = build(graph)
        result = _run(model, task, s, device, autocast_dtype, callback, progress)
        result.spec = str(spec)
        return result
    finally:
        torch.set_num_threads(threads_before)


def _run(model, task: Task, s: TrainSettings, device, autocast_dtype, callback, progress) -> TrainResult:
    start = time.perf_counter()
    model.to(device)
    params = sum(p.numel() for p in model.parameters())
    optimizer = make_optimizer(model, s.lr, s.weight_decay, s.betas, device)
    forward = torch.compile(model) if s.compile else model
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def autocast():
        if autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=autocast_dtype)

    def evaluate() -> dict[str, float]:
        return _evaluate(forward, task, s.batch, device, autocast)

    batches = task.train_batches(s.batch, seed=s.seed)
    tokens_per_step = s.batch * task.seq_len
    status, reason, done = "finished", None, 0
    curve: list[dict[str, float]] = []
    metrics: dict[str, float] = {}
    # train_time counts optimizer steps after the first (which pays for lazy initialisation and,
    # with compile, for compiling); evaluation is never counted
    train_time, loss_sum, loss_count = 0.0, 0.0, 0
    model.train()
    for step in range(s.steps):
        tick = time.perf_counter()
        lr = lr_at(step, peak=s.lr, warmup=s.warmup_steps, total=s.steps, min_ratio=s.min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = next(batches).to(device)
        with autocast():
            logits = forward(batch.inputs)
        loss = _masked_loss(logits, batch)
        aux = model.aux_loss()
        if s.aux_loss and isinstance(aux, torch.Tensor):
            loss = loss + s.aux_loss * aux.float()
        value = loss.item()
        if not math.isfinite(value):
            # checked before backward: the weights are still those of the last finite step
            status, reason = "diverged", f"the training loss became {value} at step {step + 1}"
            metrics = evaluate()
            break
        loss.backward()
        if s.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        done = step + 1
        loss_sum, loss_count = loss_sum + value, loss_count + 1
        if step > 0:
            train_time += time.perf_counter() - tick
        if progress is not None:
            progress(done, value)
        if done % s.eval_interval == 0 or done == s.steps:
            metrics = evaluate()
            model.train()
            speed = _speed(done, tokens_per_step, train_time)
            elapsed = time.perf_counter() - start
            curve.append({"step": done, "train_loss": loss_sum / loss_count, **metrics, "elapsed_s": elapsed})
            event = TrainEvent(done, dict(metrics), elapsed, loss_sum / loss_count, speed)
            loss_sum, loss_count = 0.0, 0
            if callback is not None:
                answer = callback(event)  # an exception (optuna.TrialPruned) propagates as it is
                if answer:
                    status = "stopped"
                    reason = answer if isinstance(answer, str) else f"stopped by the callback at step {done}"
                    break

    return TrainResult(
        status=status,
        reason=reason,
        steps=done,
        metrics=metrics,
        best=_best(curve, metrics, task.metrics),
        curve=curve,
        tokens_per_s=_speed(done, tokens_per_step, train_time),
        peak_mem_bytes=_peak_memory(device),
        wall_s=time.perf_counter() - start,
        params=params,
        task=task.label,
        main_metric=task.main_metric,
        directions=dict(task.metrics),
        settings=s.model_dump(mode="json"),
        model=model,
    )


def _speed(done: int, tokens_per_step: int, train_time: float) -> float:
    """Training tokens per second over the steps after the first."""
    return (done - 1) * tokens_per_step / train_time if done > 1 and train_time > 0 else 0.0


def _masked_loss(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Mean cross-entropy over the scored positions (the answers), in float32."""
    return F.cross_entropy(logits[batch.mask].float(), batch.targets[batch.mask])


@torch.no_grad()
def _evaluate(forward, task: Task, chunk: int, device, autocast) -> dict[str, float]:
    forward.eval()  # a compiled model is a module too
    test = task.test_set()
    sums: dict[str, float] = {}
    for start in range(0, len(test), chunk):
        part = test[start : start + chunk].to(device)
        with autocast():
            logits = forward(part.inputs)
        for key, value in task.evaluate(logits, part).items():
            sums[key] = sums.get(key, 0.0) + value
    return task.finish(sums)


def _best(curve: list[dict[str, float]], final: dict[str, float], directions: dict[str, str]) -> dict[str, float]:
    best: dict[str, float] = {}
    for entry in [*curve, final]:
        for name, direction in directions.items():
            value = entry.get(name)
            if value is None or not math.isfinite(value):
                continue
            if name not in best or (value > best[name] if direction == "maximize" else value < best[name]):
                best[name] = value
    return best


def _model_spec(spec: Any, task: Task, s: TrainSettings):
    """The Spec to build: the vocabulary set to the task's (or ``s.vocab``), d_model overridden
    if asked. Program text is parsed with both, so derived layer defaults follow d_model."""
    from archdsl.api import _as_spec, parse
    from archdsl.spec.model import ModelSettings, Spec

    vocab = s.vocab if s.vocab is not None else task.vocab_size
    if vocab < task.vocab_size:
        raise TrainError(f"vocab={vocab} is smaller than the vocabulary of task '{task.label}' ({task.vocab_size})")
    changes = {"vocab": vocab, **({"d_model": s.d_model} if s.d_model is not None else {})}
    if not isinstance(spec, Spec) and isinstance(spec, (str, bytes)):
        return parse(spec, **changes)
    spec = _as_spec(spec, "train")
    if s.d_model is not None and s.d_model != spec.model.d_model:
        # derived layer defaults (heads, hidden, ...) follow d_model: resolve the program again
        return parse(str(spec), **{**spec.model.model_dump(), **changes})
    return spec.model_copy(update={"model": ModelSettings.model_validate({**spec.model.model_dump(), **changes})})


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise TrainError(f"unknown device '{name}'; expected cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainError("device 'cuda' was asked for but torch sees no CUDA device; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise TrainError("device 'mps' was asked for but is not available; use --device cpu")
    return device


def _autocast_dtype(s: TrainSettings, device: torch.device) -> torch.dtype | None:
    """bfloat16 autocast on CUDA by default, float32 (no autocast) on CPU by default."""
    name = s.dtype if s.dtype is not None else ("bfloat16" if device.type == "cuda" else "float32")
    return torch.bfloat16 if name == "bfloat16" else None


def _peak_memory(device: torch.device) -> int:
    """Peak bytes allocated on a CUDA device during the run; on CPU, the process's peak
    resident memory (Linux reports it in KiB), which includes everything the process holds."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
