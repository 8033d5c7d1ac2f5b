"""Resolve: AST -> Spec. Expands ``let`` names, checks layer names and parameters against the
registry, fills defaults and names shared weight groups. Every error carries the span of the
text it is about."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from archdsl.errors import LimitError, ParameterError, ResolveError, did_you_mean
from archdsl.layers.base import InvalidParams, LayerParams
from archdsl.layers.registry import get_layer, is_layer, list_layers
from archdsl.spec import limits
from archdsl.spec.model import (
    LayerNode,
    ModelSettings,
    Node,
    ParallelNode,
    RepeatNode,
    SeqNode,
    SharedNode,
    Spec,
)
from archdsl.syntax import ast

# words the grammar reserves: a let of one of these names could be defined but never used
KEYWORDS = frozenset({"model", "let", "shared", "true", "false"})


def resolve(program: ast.Program, **settings: Any) -> Spec:
    """Turn a parsed program into a Spec. ``settings`` override the ``model`` header."""
    model = _model_settings(program.header, settings)
    return _Resolver(program, model).run()


def _model_settings(header: ast.Header | None, overrides: dict[str, Any]) -> ModelSettings:
    fields = ModelSettings.model_fields
    for key in overrides:
        if key not in fields:
            raise ParameterError(
                f"unknown model setting '{key}'{did_you_mean(key, fields)}; known: {', '.join(fields)}"
            )
    values: dict[str, Any] = {}
    spans: dict[str, ast.Span] = {}
    for param in header.params if header else ():
        if param.key not in fields:
            raise ParameterError(
                f"unknown model setting '{param.key}'{did_you_mean(param.key, fields)}; known: {', '.join(fields)}",
                param.span,
            )
        if param.key in values:
            raise ParameterError(f"model setting '{param.key}' is given twice", param.span)
        values[param.key] = param.value
        spans[param.key] = param.value_span or param.span
    values.update({k: _plain(v) for k, v in overrides.items() if v is not None})
    try:
        return ModelSettings(**values)
    except ValidationError as exc:
        key = str(exc.errors()[0]["loc"][0]) if exc.errors()[0]["loc"] else ""
        where = "in the model header" if key in spans and key not in overrides else "in the model settings"
        raise ParameterError(
            f"model setting {_describe_validation(exc, ModelSettings)}; {where}",
            spans.get(key) if key not in overrides else None,
        ) from None


def _plain(value: Any) -> Any:
    """numpy and torch scalars (an Optuna draw, a config value) as the Python number they hold."""
    if isinstance(value, (bool, int, float, str)) or not hasattr(value, "item"):
        return value
    return value.item()


def _describe_validation(exc: ValidationError, model: type) -> str:
    """One readable line from pydantic's first error: field, value received, what was expected."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "?"
    expected = err["msg"].replace("Input should be", "expected").replace("input should be", "expected")
    info = model.model_fields.get(field) if hasattr(model, "model_fields") else None
    description = f" ({info.description})" if info is not None and info.description else ""
    return f"'{field}={_show(err.get('input'))}': {expected}{description}"


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _Resolver:
    """Lets have lexical scope: a name means what it meant where it stands in the text. Inside
    the definition of the i-th let only the lets above it are visible (its own name, if it is a
    layer's, is the layer: ``let attn = attn window=512``); the stack sees every let."""

    def __init__(self, program: ast.Program, model: ModelSettings):
        self.program = program
        self.model = model
        self.lets: dict[str, ast.Let] = {}
        self.let_index: dict[str, int] = {}  # name -> position among the lets
        self.resolved_lets: dict[str, list[Node]] = {}
        self.visible = 0  # the lets at positions < visible are in scope
        self.shared_depth = 0
        self.inline_groups = 0

    def run(self) -> Spec:
        for let in self.program.lets:
            if let.name in KEYWORDS:
                raise ResolveError(f"'{let.name}' is a keyword of the language; a let cannot take its name", let.span)
            if let.name in self.lets:
                first = self.lets[let.name].span
                raise ResolveError(f"'{let.name}' is defined twice (first at {first.line}:{first.column})", let.span)
            # a let may take a layer's name (DESIGN.md's own example writes `let mamba = ssm ...`):
            # below its definition the name means the let
            self.let_index[let.name] = len(self.lets)
            self.lets[let.name] = let
        _check_size(self.program, self.lets)
        self.visible = len(self.lets)
        items = self._seq_items(self.program.body)
        body = SeqNode(items=tuple(items), span=self.program.body.span)
        self._check_unused_lets()
        _check_parameters(body, self.model)
        return Spec(model=self.model, body=body, span=self.program.span, source_name=self.program.span.file)

    def _check_unused_lets(self) -> None:
        """A let that the stack never uses is still checked (a typo in it is still a typo); the
        inline group numbering of the used ones is left as it was."""
        counter = self.inline_groups
        for name in self.lets:
            if name not in self.resolved_lets:
                self._let(name)
        self.inline_groups = counter

    # --- expressions -------------------------------------------------------------------------

    def _seq_items(self, seq: ast.Seq) -> list[Node]:
        items: list[Node] = []
        for expr in seq.items:
            items.extend(self._expr(expr))
        return items

    def _expr(self, expr: ast.Expr) -> list[Node]:
        """Resolve one expression to the items it contributes to the enclosing sequence."""
        if isinstance(expr, ast.Call):
            return self._call(expr)
        if isinstance(expr, ast.Seq):
            return self._seq_items(expr)
        if isinstance(expr, ast.Group):
            return self._seq_items(expr.body)
        if isinstance(expr, ast.Repeat):
            if expr.count < 1:
                raise ResolveError(f"repeat count must be at least 1, got {expr.count}", expr.count_span or expr.span)
            body = SeqNode(items=tuple(self._seq_items(expr.body)), span=expr.body.span)
            return [RepeatNode(count=expr.count, body=body, span=expr.span)]
        if isinstance(expr, ast.Parallel):
            return [self._parallel(expr)]
        if isinstance(expr, ast.Shared):
            return [self._shared(expr, group=self._inline_group_name())]
        raise TypeError(f"unknown AST node {type(expr).__name__}")  # a bug, not user input

    def _parallel(self, expr: ast.Parallel) -> ParallelNode:
        branches = []
        for branch in expr.branches:
            items = self._seq_items(branch)
            for item in items:
                if not isinstance(item, (LayerNode, RepeatNode)):
                    what = "a parallel group" if isinstance(item, ParallelNode) else "shared(...)"
                    raise ResolveError(
                        f"{what} cannot stand inside a parallel branch; a branch is a sequence of layer calls",
                        item.span or branch.span,
                    )
            branches.append(SeqNode(items=tuple(items), span=branch.span))
        return ParallelNode(branches=tuple(branches), span=expr.span)

    def _inline_group_name(self) -> str:
        """``shared1``, ``shared2``, ... in order of use, never the name of a let or a layer (the
        printer writes the group as ``let NAME = shared(...)``)."""
        while True:
            self.inline_groups += 1
            name = f"shared{self.inline_groups}"
            if name not in self.lets and not is_layer(name):
                return name

    def _shared(self, expr: ast.Shared, group: str) -> SharedNode:
        if self.shared_depth:
            raise ResolveError("shared(...) cannot be nested inside another shared(...)", expr.span)
        self.shared_depth += 1
        try:
            body = SeqNode(items=tuple(self._seq_items(expr.body)), span=expr.body.span)
        finally:
            self.shared_depth -= 1
        return SharedNode(group=group, body=body, span=expr.span)

    def _call(self, call: ast.Call) -> list[Node]:
        index = self.let_index.get(call.name)
        if index is not None and index < self.visible:
            if call.params:
                raise ResolveError(
                    f"'{call.name}' is a let name and takes no parameters; write them inside its definition",
                    call.params[0].span,
                )
            return self._let(call.name)
        if not is_layer(call.name):
            name_span = ast.Span(
                call.span.line, call.span.column, call.span.line, call.span.column + len(call.name), call.span.file
            )
            if index is not None:  # a let not in scope here: its own definition, or one below
                where = self.lets[call.name].span
                if index == self.visible:
                    message = f"'{call.name}' is defined in terms of itself ({call.name} -> {call.name})"
                else:
                    message = (
                        f"'{call.name}' is defined later (at {where.line}:{where.column}); "
                        "a let can use only the lets defined above it"
                    )
                raise ResolveError(message, name_span)
            in_scope = [name for name, i in self.let_index.items() if i < self.visible]
            hint = did_you_mean(call.name, [*list_layers(), *in_scope])
            what = "unknown layer or let name" if in_scope else "unknown layer"
            raise ResolveError(
                f"{what} '{call.name}'{hint}; known layers: {', '.join(list_layers())}"
                + (f"; let names: {', '.join(in_scope)}" if in_scope else ""),
                name_span,
            )
        return [self._layer(call)]

    def _let(self, name: str) -> list[Node]:
        """The items of a let, resolved once, in the scope of its definition."""
        if name not in self.resolved_lets:
            let = self.lets[name]
            outer, self.visible = self.visible, self.let_index[name]
            try:
                body = let.body.items
                if len(body) == 1 and isinstance(body[0], ast.Shared):
                    # `let glob = shared(...)`: the weight group takes the let's name, unless it
                    # is a layer's name, which the printed `let NAME = shared(...)` could not reuse
                    group = self._inline_group_name() if is_layer(name) else name
                    self.resolved_lets[name] = [self._shared(body[0], group=group)]
                else:
                    self.resolved_lets[name] = self._seq_items(let.body)
            finally:
                self.visible = outer
        return self.resolved_lets[name]

    # --- layers ------------------------------------------------------------------------------

    def _layer(self, call: ast.Call) -> LayerNode:
        layer_type = get_layer(call.name)
        params_model: type[LayerParams] = layer_type.Params
        fields = params_model.model_fields
        given: dict[str, Any] = {}
        spans: dict[str, ast.Span] = {}
        for param in call.params:
            if param.key not in fields:
                raise ParameterError(
                    f"layer '{call.name}' has no parameter '{param.key}'{did_you_mean(param.key, fields)}; "
                    f"its parameters: {', '.join(fields) or 'none'}",
                    param.span,
                )
            if param.key in given:
                raise ParameterError(f"parameter '{param.key}' is given twice", param.span)
            given[param.key] = param.value
            spans[param.key] = param.value_span or param.span
        try:
            params = params_model(**given)
        except ValidationError as exc:
            key = str(exc.errors()[0]["loc"][0]) if exc.errors()[0]["loc"] else ""
            raise ParameterError(
                f"layer '{call.name}' parameter {_describe_validation(exc, params_model)}", spans.get(key, call.span)
            ) from None
        try:
            params = params.resolve(self.model)
        except InvalidParams as exc:
            raise ParameterError(f"layer '{call.name}': {exc.message}", spans.get(exc.field, call.span)) from None
        return LayerNode(type=call.name, params=params, span=call.span)


def _check_size(program: ast.Program, lets: dict[str, ast.Let]) -> None:
    """Refuse absurd programs by arithmetic on the AST (nothing is unrolled or allocated). Names
    are looked up as the resolver does: inside the i-th let, only the lets above it."""
    index = {name: i for i, name in enumerate(lets)}
    memo: dict[str, int] = {}

    def count(expr: ast.Expr, depth: int, visible: int) -> int:
        if depth > limits.MAX_NESTING:
            raise LimitError(f"nesting deeper than {limits.MAX_NESTING} levels", expr.span)
        if isinstance(expr, ast.Call):
            if index.get(expr.name, visible) >= visible:
                return 1  # a layer, or a name the resolver reports
            return let_size(expr.name, depth + 1)
        if isinstance(expr, ast.Seq):
            return sum(count(item, depth, visible) for item in expr.items)
        if isinstance(expr, (ast.Group, ast.Shared)):
            return count(expr.body, depth + 1, visible)
        if isinstance(expr, ast.Parallel):
            return sum(count(b, depth + 1, visible) for b in expr.branches)
        if isinstance(expr, ast.Repeat):
            if expr.count > limits.MAX_REPEAT:
                raise LimitError(
                    f"repeat count {expr.count} is larger than the limit of {limits.MAX_REPEAT}",
                    expr.count_span or expr.span,
                )
            inner = count(expr.body, depth + 1, visible)
            total = max(expr.count, 0) * inner
            if total > limits.MAX_SUBLAYERS:
                raise LimitError(
                    f"this repeat unrolls to {total:,} layer calls, more than the limit of {limits.MAX_SUBLAYERS:,}",
                    expr.span,
                )
            return total
        return 0

    def let_size(name: str, depth: int) -> int:
        if name not in memo:
            memo[name] = count(lets[name].body, depth, index[name])
        return memo[name]

    total = count(program.body, 0, len(lets))
    if total > limits.MAX_SUBLAYERS:
        raise LimitError(
            f"the program unrolls to {total:,} layer calls, more than the limit of {limits.MAX_SUBLAYERS:,}",
            program.body.span,
        )
    for name, let in lets.items():  # the unused ones too: the resolver expands them to check them
        size = let_size(name, 1)
        if size > limits.MAX_SUBLAYERS:
            raise LimitError(
                f"'{name}' unrolls to {size:,} layer calls, more than the limit of {limits.MAX_SUBLAYERS:,}", let.span
            )


def _check_parameters(body: SeqNode, model: ModelSettings) -> None:
    """Refuse a model of more than MAX_PARAMS weights, counted from the layers' cost formulas
    (repeats multiplied, each shared group once, wherever it is used) without unrolling or
    allocating anything."""
    from archdsl.costing.value import CostContext

    ctx = CostContext(seq_len=1)
    per_layer: dict[tuple[str, LayerParams], int] = {}
    groups: dict[str, int] = {}  # shared group -> its weights, counted once at the end

    def count(node: Node) -> int:
        """Weights outside shared groups under ``node``, with repeats multiplied."""
        if isinstance(node, LayerNode):
            key = (node.type, node.params)
            if key not in per_layer:
                per_layer[key] = get_layer(node.type).cost(node.params, model, ctx).params + model.d_model
            return per_layer[key]
        if isinstance(node, SeqNode):
            return sum(count(item) for item in node.items)
        if isinstance(node, RepeatNode):
            return node.count * count(node.body)
        if isinstance(node, ParallelNode):
            return sum(count(branch) for branch in node.branches)
        if isinstance(node, SharedNode):
            if node.group not in groups:
                groups[node.group] = count(node.body)
            return 0
        return 0

    vocab_weights = (1 if model.tie_embeddings else 2) * model.vocab * model.d_model
    total = count(body) + sum(groups.values()) + vocab_weights
    if total > limits.MAX_PARAMS:
        raise LimitError(
            f"the program describes about {total:.3g} parameters, more than the limit of {limits.MAX_PARAMS:.0e}",
            body.span,
        )
