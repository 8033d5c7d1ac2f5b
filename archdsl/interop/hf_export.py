"""DSL layout -> Hugging Face layer fields: ``layer_types`` and Nemotron-H's ``hybrid_override_pattern``.

    >>> import archdsl
    >>> to_hf_layer_types(archdsl.parse("2x(3x(gdn mlp) attn mlp)"))["layer_types"][:4]
    ['linear_attention', 'linear_attention', 'linear_attention', 'full_attention']
    >>> to_hf_layer_types(archdsl.parse("2x(ssm mlp ssm attn)"))["hybrid_override_pattern"]
    'M-M*M-M*'

``layer_types`` has one entry per decoder layer, a token mixer followed by its feed-forward
(``mlp`` or ``moe``, listed as ``dense`` / ``sparse`` in ``mlp_layer_types`` when the layout has
experts): ``attn`` is ``full_attention`` (``sliding_attention`` with a ``window``, the window in
``sliding_window``), ``conv`` is ``conv``, and a recurrent mixer (``ssm``, ``mamba``, ``gdn``,
``rglru``) is ``linear_attention``, which the model type reads as its one recurrent kind.
``hybrid_override_pattern`` has one character per sub-layer: M ``ssm``, * ``attn``, - ``mlp``,
E ``moe``. A layout is written in whichever of the two can express it; parallel branches, shared
blocks and other layer types are an error naming the sub-layer and where it is written.
"""

from __future__ import annotations

from typing import Any

from archdsl.errors import ArchDSLError
from archdsl.spec.model import LayerNode, ParallelNode, Spec, iter_sublayers

RECURRENT = ("ssm", "mamba", "gdn", "rglru")
FEED_FORWARD = {"mlp": "dense", "moe": "sparse"}
PATTERN = {"ssm": "M", "attn": "*", "mlp": "-", "moe": "E"}


class _Unexpressible(Exception):
    pass


def to_hf_layer_types(spec: Spec) -> dict[str, Any]:
    """The Hugging Face fields of ``spec``'s layout (see the module docstring)."""
    layers = _flat(spec)
    out: dict[str, Any] = {
        "hidden_size": spec.model.d_model,
        "vocab_size": spec.model.vocab,
        "tie_word_embeddings": spec.model.tie_embeddings,
    }
    reasons = []
    try:
        out.update(_layer_types(layers))
    except _Unexpressible as why:
        reasons.append(f"layer_types: {why}")
    try:
        pattern = _pattern(layers)
        out["hybrid_override_pattern"] = pattern
        out.setdefault("num_hidden_layers", len(pattern))
    except _Unexpressible as why:
        reasons.append(f"hybrid_override_pattern: {why}")
    if len(reasons) == 2:
        raise ArchDSLError(f"cannot write this layout as Hugging Face layer types: {'; '.join(reasons)}")
    return out


def _flat(spec: Spec) -> list[LayerNode]:
    """The sub-layers in order, repeats unrolled; a branch group or a shared block cannot be a
    Hugging Face layer type."""
    out: list[LayerNode] = []
    for node in iter_sublayers(spec.body):
        if not isinstance(node, LayerNode):
            what = "parallel branches (a | b)" if isinstance(node, ParallelNode) else "a shared(...) block"
            raise ArchDSLError(
                f"cannot write this layout as Hugging Face layer types: sub-layer {len(out) + 1}{_where(node)} is "
                f"{what}, which no layer_types entry or hybrid_override_pattern character expresses"
            )
        out.append(node)
    return out


def _layer_types(layers: list[LayerNode]) -> dict[str, Any]:
    kinds, ffns, windows, recurrent = [], [], set(), {}
    i = 0
    while i < len(layers):
        mixer = layers[i]
        if mixer.type in FEED_FORWARD:
            raise _Unexpressible(f"sub-layer {i + 1}{_where(mixer)} is {mixer.type} with no token mixer before it")
        if mixer.type == "attn":
            window = mixer.params.window
            kinds.append("sliding_attention" if window else "full_attention")
            if window:
                windows.add(window)
        elif mixer.type == "conv":
            kinds.append("conv")
        elif mixer.type in RECURRENT:
            recurrent.setdefault(mixer.type, i)
            kinds.append("linear_attention")
        else:
            raise _Unexpressible(f"sub-layer {i + 1}{_where(mixer)} is {mixer.type}, which has no layer type")
        ffn = layers[i + 1] if i + 1 < len(layers) else None
        if ffn is None or ffn.type not in FEED_FORWARD:
            raise _Unexpressible(
                f"sub-layer {i + 1}{_where(mixer)} ({mixer.type}) is not followed by an mlp or moe; "
                "each layer_types entry is a token mixer and its feed-forward"
            )
        ffns.append(FEED_FORWARD[ffn.type])
        i += 2
    if len(recurrent) > 1:
        seen = ", ".join(f"{t} (sub-layer {i + 1})" for t, i in recurrent.items())
        raise _Unexpressible(f"linear_attention stands for one recurrent mixer per model; this layout has {seen}")
    if len(windows) > 1:
        raise _Unexpressible(f"sliding_window is one size per model; this layout has windows {sorted(windows)}")
    out: dict[str, Any] = {"num_hidden_layers": len(kinds), "layer_types": kinds}
    if "sparse" in ffns:
        out["mlp_layer_types"] = ffns
    if windows:
        out["sliding_window"] = windows.pop()
    return out


def _pattern(layers: list[LayerNode]) -> str:
    chars = []
    for i, layer in enumerate(layers):
        if layer.type not in PATTERN:
            raise _Unexpressible(
                f"sub-layer {i + 1}{_where(layer)} is {layer.type}; the pattern has M (ssm), * (attn), - (mlp), E (moe)"
            )
        if layer.type == "attn" and layer.params.window:
            raise _Unexpressible(
                f"sub-layer {i + 1}{_where(layer)} is attn with a window; Nemotron-H's * is full attention"
            )
        chars.append(PATTERN[layer.type])
    return "".join(chars)


def _where(node: Any) -> str:
    span = getattr(node, "span", None)
    if span is None:
        return ""
    return f" (at {span.file or '<string>'}:{span.line}:{span.column})"
