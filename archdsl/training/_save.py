"""A trained run on disk: weights (safetensors), the architecture text, settings and result.

    out/samba/model.safetensors   the state dict (shared and tied weights stored under every name)
    out/samba/model.arch          the canonical text, its d_model and vocab in the header
    out/samba/settings.json       the task (name and settings) and the training settings
    out/samba/result.json         TrainResult.to_dict()

Reading it back needs nothing but archdsl and safetensors::

    model = archdsl.build(archdsl.load("out/samba/model.arch"))
    model.load_state_dict(safetensors.torch.load_file("out/samba/model.safetensors"))
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from archdsl.training._result import TrainResult
from archdsl.training._settings import TrainError


def save_run(result: TrainResult, directory: str | Path, task_settings: dict[str, Any] | None = None) -> Path:
    """Write ``result`` (its model, spec, settings and metrics) into ``directory``."""
    from safetensors.torch import save_file

    if result.model is None:
        raise TrainError("this result has no model to save")
    out = Path(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
        # safetensors refuses tensors that share memory (tied or shared(...) weights): each name
        # gets its own copy, so that load_state_dict(strict=True) finds every key
        state = {name: t.detach().to("cpu").clone().contiguous() for name, t in result.model.state_dict().items()}
        save_file(state, str(out / "model.safetensors"), metadata={"format": "pt", "archdsl_task": result.task})
        (out / "model.arch").write_text(f"# trained on {result.task} by archdsl train\n{result.spec}", encoding="utf-8")
        settings = {"task": result.task, "task_settings": task_settings or {}, "train": result.settings}
        (out / "settings.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
        (out / "result.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise TrainError(f"cannot write the run to '{out}': {exc.strerror or exc}") from None
    return out
