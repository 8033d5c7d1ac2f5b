"""Search recipes: one TOML file says what to search, under which budget, on which task, how
to train each layout and how to run the study. Validated by pydantic; a mistake names the
file, the key and the form that was expected.

    >>> from archdsl.search.recipe import load_recipe
    >>> recipe = load_recipe("search/quickstart.toml")          # doctest: +SKIP
    >>> recipe.study.name, [o.name for o in recipe.objectives()]  # doctest: +SKIP
    ('quickstart', ['accuracy', 'state@4k'])
"""

from __future__ import annotations

import itertools
import re
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from archdsl.errors import ArchDSLError, did_you_mean

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the project is developed on 3.11
    import tomli as tomllib


class RecipeError(ArchDSLError):
    """A recipe file cannot be read, is not TOML, or breaks the recipe's schema. Without a
    span (a schema error has no column) the file name still leads the message."""

    def __init__(self, message: str, span: Any = None, source: str | None = None, *, file: str | None = None):
        super().__init__(message, span=span, source=source)
        self.file = file

    def location(self) -> str:
        if self.span is None and self.file:
            return f"{self.file}: "
        return super().location()


SAMPLERS = ("tpe", "nsgaii", "gp", "random")
PRUNERS = ("median", "successive_halving", "hyperband", "none")
DIRECTIONS = {"max": "maximize", "maximize": "maximize", "min": "minimize", "minimize": "minimize"}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*\Z")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: Any, *, origin: str = "timeout") -> float | None:
    """``90`` or ``"90s"`` -> 90.0, ``"30m"`` -> 1800.0, ``"2h"``; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise RecipeError(f"{origin}: expected a duration such as 90, '90s', '30m' or '2h'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if m is None:
            raise RecipeError(f"{origin}: expected a duration such as 90, '90s', '30m' or '2h'")
        seconds = float(m.group(1)) * _SECONDS[m.group(2)]
    if seconds <= 0:
        raise RecipeError(f"{origin}: a duration must be positive")
    return seconds


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SpaceSection(_Section):
    """``[space]``: the search space, as text or as a file next to the recipe."""

    text: str | None = Field(None, description="the search space in DSL text (a plain layout is a space of size 1)")
    file: str | None = Field(None, description="a .arch file holding the space, relative to the recipe")
    d_model: int | None = Field(None, gt=0, description="model width (overrides the space's model header)")
    vocab: int | None = Field(None, gt=0, description="vocabulary size; default: the task's")
    tie_embeddings: bool | None = Field(None, description="share embedding and LM head weights")

    @model_validator(mode="after")
    def _one_source(self) -> SpaceSection:
        if (self.text is None) == (self.file is None):
            raise ValueError('give exactly one of text = "..." or file = "space.arch"')
        return self

    def model_settings(self) -> dict[str, Any]:
        keys = ("d_model", "vocab", "tie_embeddings")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


class BudgetSection(_Section):
    """``[budget]``: limits on the analytic cost; a layout over them is infeasible, never built."""

    limits: str = Field("", description="archdsl.Budget text, e.g. 'params<=2M state@4k<=1MiB'")
    seq_len: int | None = Field(None, gt=0, description="training length for limits without @ (default: the task's)")


class TaskSection(BaseModel):
    """``[task]``: ``name`` plus the task's own settings (checked by the task)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str = Field(description="a task of `archdsl tasks`, e.g. 'mqar' or 'mad/in_context_recall'")

    def settings(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TrainSection(BaseModel):
    """``[train]``: the settings of ``archdsl.train`` (steps, batch, lr, ...), passed through."""

    model_config = ConfigDict(extra="allow", frozen=True)
    steps: int | None = Field(None, gt=0, description="training steps per trial (default: the ladder's last stage)")

    @model_validator(mode="after")
    def _not_ours(self) -> TrainSection:
        for key, why in (("seed", "each trial's seed comes from [study] seed"), ("callback", "the search sets it")):
            if key in (self.model_extra or {}):
                raise ValueError(f"'{key}' cannot be set here: {why}")
        return self

    def settings(self) -> dict[str, Any]:
        out = dict(self.model_extra or {})
        if self.steps is not None:
            out["steps"] = self.steps
        return out


class LadderSection(_Section):
    """``[ladder]``: the multi-objective fidelity ladder. After each stage only the trials in
    the best Pareto layers (a ``keep`` fraction of those that reached it) train on."""

    stages: list[int] = Field(description="increasing step counts, e.g. [100, 400, 1600]; the last is the full run")
    keep: float = Field(1 / 3, gt=0, le=1, description="fraction of the trials at a stage that go on")
    min_trials: int = Field(4, ge=1, description="trials that must reach a stage before any is stopped there")

    @field_validator("stages")
    @classmethod
    def _increasing(cls, stages: list[int]) -> list[int]:
        if len(stages) < 2 or any(s <= 0 for s in stages) or any(b <= a for a, b in itertools.pairwise(stages)):
            raise ValueError("expected two or more increasing positive step counts, e.g. [100, 400, 1600]")
        return stages


class Objective(BaseModel):
    """One objective: a task metric (``accuracy``, ``loss``) or a cost key (``state@4k``)."""

    model_config = ConfigDict(frozen=True)
    name: str
    direction: Literal["maximize", "minimize"] | None = None


class StudySection(_Section):
    """``[study]``: how Optuna runs the search."""

    name: str | None = Field(None, min_length=1, description="study name (default: the recipe file's stem)")
    objectives: list[str] | dict[str, str] = Field(
        description="metric or cost names: a list ['accuracy', 'state@4k'] or a table {accuracy = 'max', ...}"
    )
    trials: int = Field(20, gt=0, description="trials to add on each run")
    timeout: float | None = Field(None, description="stop starting trials after this long: seconds, '30m', '2h'")
    seed: int = Field(0, ge=0, description="seed of the sampler and of every trial's training")
    sampler: Literal["tpe", "nsgaii", "gp", "random"] = Field("tpe", description="one of: " + ", ".join(SAMPLERS))
    pruner: Literal["median", "successive_halving", "hyperband", "none"] = Field(
        "median", description="single-objective early stopping, one of: " + ", ".join(PRUNERS)
    )
    baselines: list[str] = Field([], description="layouts in DSL text, points of the space, run first")
    workers: int | None = Field(
        None,
        gt=0,
        description="processes on this machine (default: one per GPU with device cuda, else one per CPU core)",
    )
    heartbeat: int = Field(10, gt=0, description="seconds between a running trial's heartbeats")
    grace: int | None = Field(
        None,
        gt=0,
        description="seconds without heartbeat before a trial counts as lost and is retried (default 6 x heartbeat)",
    )
    retries: int = Field(2, ge=0, description="times a lost or interrupted trial is run again")

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        try:
            return parse_duration(value)
        except RecipeError as err:
            raise ValueError(err.message.split(": ", 1)[1]) from None

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, value: list[str] | dict[str, str]) -> list[str] | dict[str, str]:
        if not value:
            raise ValueError("expected one or more objectives")
        if isinstance(value, dict):
            for name, direction in value.items():
                if direction not in DIRECTIONS:
                    raise ValueError(f"direction of '{name}' must be 'max' or 'min' (or maximize/minimize)")
        elif len(set(value)) != len(value):
            raise ValueError("an objective is listed twice")
        return value


class Recipe(_Section):
    """A whole recipe. ``path`` is where it was read from (relative files resolve against it)."""

    space: SpaceSection
    task: TaskSection
    study: StudySection
    budget: BudgetSection = BudgetSection()
    train: TrainSection = TrainSection()
    ladder: LadderSection | None = None
    path: str | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _steps_match_ladder(self) -> Recipe:
        if self.ladder is not None and self.train.steps is not None and self.train.steps != self.ladder.stages[-1]:
            raise ValueError(
                f"[train] steps = {self.train.steps} differs from the ladder's last stage {self.ladder.stages[-1]}; "
                "drop steps or make them equal"
            )
        return self

    @property
    def name(self) -> str:
        if self.study.name:
            return self.study.name
        return Path(self.path).stem if self.path else "search"

    def objectives(self) -> list[Objective]:
        """Objectives in order; directions not written here are filled in by the objective."""
        raw = self.study.objectives
        if isinstance(raw, dict):
            return [Objective(name=k, direction=DIRECTIONS[v]) for k, v in raw.items()]
        return [Objective(name=k) for k in raw]

    def space_text(self) -> tuple[str, str]:
        """The space's text and the file name its errors should point at."""
        if self.space.text is not None:
            return self.space.text, f"{self.path or '<recipe>'} [space] text"
        base = Path(self.path).parent if self.path else Path.cwd()
        file = base / self.space.file
        try:
            return file.read_text(), str(file)
        except OSError as err:
            raise RecipeError(f"[space] file: cannot read '{file}': {err.strerror}", file=self.path) from None

    def to_toml_dict(self) -> dict[str, Any]:
        """The recipe as plain data (stored in the study so a run can be joined or continued).
        A space file is inlined, so the study does not depend on it."""
        data = self.model_dump(mode="json", exclude_none=True)
        data["study"]["name"] = self.name  # the stored recipe keeps the name its file gave it
        if self.space.file is not None:
            data["space"].pop("file")
            data["space"]["text"] = self.space_text()[0]
        data["task"] = {"name": self.task.name, **self.task.settings()}
        data["train"] = self.train.settings()
        return data

    def identity(self) -> dict[str, Any]:
        """What makes two runs the same study: everything except how long and how wide to run."""
        data = self.to_toml_dict()
        for key in ("trials", "timeout", "workers", "heartbeat", "grace", "retries"):
            data["study"].pop(key, None)
        return data


def parse_recipe(text: str, *, filename: str = "<recipe>") -> Recipe:
    """A recipe from TOML text; errors name ``filename``, the key and the expected form."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise _toml_error(err, text, filename) from None
    return recipe_from_dict(data, filename=filename)


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise RecipeError(f"cannot read the recipe: {err.strerror or err}", file=str(path)) from None
    return parse_recipe(text, filename=str(path))


def recipe_from_dict(data: dict[str, Any], *, filename: str = "<recipe>") -> Recipe:
    try:
        return Recipe.model_validate({**data, "path": filename})
    except ValidationError as err:
        raise _schema_error(err, filename) from None


# ---- messages --------------------------------------------------------------------------------


def _key_text(loc: tuple[Any, ...]) -> str:
    """('study', 'objectives', 0) -> "[study] objectives[0]"."""
    if not loc:
        return "top level"
    head, rest = str(loc[0]), loc[1:]
    text = f"[{head}]"
    for i, part in enumerate(rest):
        text += f"[{part}]" if isinstance(part, int) else (" " if i == 0 else ".") + str(part)
    return text


def _expected(loc: tuple[Any, ...]) -> str | None:
    """The field's description: what a user should have written there."""
    model: Any = Recipe
    field = None
    for part in loc:
        if isinstance(part, int) or model is None:
            break
        fields = getattr(model, "model_fields", {})
        field = fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
        for arg in getattr(annotation, "__args__", ()):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                model = arg
    return field.description if field is not None else None


def _schema_error(err: ValidationError, filename: str) -> RecipeError:
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        # pydantic names union members in the location ("list[str]", "function-after[...]"); drop them
        loc = tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in ("str", "int", "float"))))
        key = _key_text(loc)
        if e["type"] == "extra_forbidden":
            section_model = _section_model(loc[:-1])
            known = list(getattr(section_model, "model_fields", {}))
            known = [k for k in known if k != "path"]
            hint = did_you_mean(str(loc[-1]), known)
            lines.append(f"{key}: unknown key{hint}; expected one of: {', '.join(known)}")
            continue
        if e["type"] == "missing":
            what = _expected(loc)
            lines.append(f"{key}: missing" + (f"; expected {what}" if what else ""))
            continue
        own = e["type"] == "value_error"  # our validators' messages already say what is expected
        msg = e["msg"].removeprefix("Value error, ")
        what = None if own else _expected(loc)
        got = e.get("input")
        shown = (
            f" (got {got!r})"
            if got is not None and not isinstance(got, dict) and not (own and repr(got) in msg)
            else ""
        )
        lines.append(f"{key}: {msg}{shown}" + (f"; expected {what}" if what else ""))
    lines = list(dict.fromkeys(lines))
    head = "invalid recipe: " if len(lines) == 1 else "invalid recipe:\n  "
    return RecipeError(head + "\n  ".join(lines), file=filename)


def _section_model(loc: tuple[Any, ...]) -> Any:
    model: Any = Recipe
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return model
        annotation = field.annotation
        model = annotation
        for arg in getattr(annotation, "__args__", ()):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                model = arg
    return model


def _toml_error(err: Exception, text: str, filename: str) -> RecipeError:
    from archdsl.syntax.ast import Span

    message = str(err)
    m = re.search(r"\(at line (\d+), column (\d+)\)", message)
    if m is None:
        return RecipeError(f"not valid TOML: {message}", file=filename)
    line, col = int(m.group(1)), int(m.group(2))
    reason = message[: m.start()].strip()
    span = Span(line, col, line, col + 1, file=filename)
    return RecipeError(f"not valid TOML: {reason}", span=span, source=text)
