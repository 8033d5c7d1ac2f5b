"""The cost of a whole model: each layer's own formula, summed over the graph.

    >>> import archdsl
    >>> c = archdsl.cost("model d_model=512 vocab=32000\\n 4x(attn mlp)", seq_len=2048)
    >>> c.params, c.train_flops, c.by_type()["attn"].params        # doctest: +SKIP

Layer types write their own ``cost`` formula, in their torch-free contract (see
:mod:`archdsl.layers.base`); this module only adds what belongs to no layer: the embedding, the
RMSNorm in front of each residual sub-layer and at the end, the residual additions and the LM
head. It reads the graph that :func:`archdsl.to_graph` lowers, never builds a module and never
allocates a tensor, so a 1T-parameter or 1,000-layer model costs in milliseconds.

What is counted, per token at ``seq_len`` (a multiply-add is two FLOPs):

- matmul FLOPs: the layers' dense products plus the LM head, ``2 * d_model * vocab``; the
  embedding is a lookup (zero FLOPs).
- norms and residual additions are counted, as ``scan_flops`` (element-wise work that a
  ``torch.utils.flop_counter`` does not see): an RMSNorm is ``4 * d`` (square, sum, scale,
  weight), a residual or branch addition ``d``.
- activation memory (training, per sequence): each norm keeps its input, its normalised output
  ``(T, d)`` each and its 1/rms ``(T, 1)``; the head keeps its input ``(T, d)`` and the logits
  ``(T, vocab)`` for the loss; the embedding keeps the token ids (``T`` int64).
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

from archdsl.costing.value import Cost, CostContext
from archdsl.errors import ArchDSLError, GraphError, did_you_mean

# AdamW training memory per parameter, in bytes, on top of the weights themselves: a gradient
# in the weight dtype, an fp32 master copy when the weights are narrower than fp32, and two
# fp32 moments. Mixed precision (bf16 weights) gives 2 + 2 + 4 + 8 = 16 bytes per parameter,
# pure fp32 gives 4 + 4 + 0 + 8 = 16 as well (the ZeRO paper's "16 bytes per parameter").
MASTER_BYTES = 4
MOMENT_BYTES = 2 * 4


_COST_FIELDS = tuple(f.name for f in fields(Cost))


class CostError(ArchDSLError):
    """A cost was asked for an impossible situation (zero or negative length, batch or bytes)."""


@dataclass(frozen=True)
class ModelCost(Cost):
    """The cost of a whole model: a :class:`Cost` (its fields are the model totals, so
    ``archdsl.cost(spec).params`` is the parameter count) plus the per-node breakdown and the
    model-level figures derived from it.

    ``params`` counts a shared group once (the node of its first use carries the weights, later
    uses carry zero); FLOPs, activations and state count every use.
    """

    ctx: CostContext = CostContext()
    kv_bytes: float = 0.0  # of ``state_bytes``: the part that grows with the context (KV caches)
    n_layers: int = 0  # layer calls (graph nodes of kind "layer"), branches included
    d_model: int = 0
    vocab: int = 0
    nodes: Mapping[str, Cost] = field(default_factory=dict, compare=False, repr=False)
    node_types: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    kv_nodes: frozenset[str] = field(default_factory=frozenset, compare=False, repr=False)
    graph: Any = field(default=None, compare=False, repr=False)

    # ---- figures derived from the totals -------------------------------------------------

    @property
    def total(self) -> Cost:
        """The totals as a plain :class:`Cost`."""
        return Cost(**{f.name: getattr(self, f.name) for f in fields(Cost)})

    @property
    def non_embedding_params(self) -> int:
        return self.params - self.embedding_params

    @property
    def recurrent_state_bytes(self) -> float:
        """Inference state that does not grow with the context (SSM / RNN states, conv tails)."""
        return self.state_bytes - self.kv_bytes

    @property
    def activation_memory(self) -> float:
        """Activations kept for backward by one training step of ``ctx.batch`` sequences."""
        return self.activation_bytes * self.ctx.batch

    @property
    def inference_state(self) -> float:
        """Inference state (KV caches + recurrent states) of ``ctx.batch`` sequences at the context."""
        return self.state_bytes * self.ctx.batch

    @property
    def attention_share(self) -> float:
        """Fraction of the forward FLOPs spent in attention scores and weighted values."""
        return self.attn_flops / self.forward_flops if self.forward_flops else 0.0

    def weight_memory(self, param_bytes: int = 2) -> int:
        return self.params * param_bytes

    def training_memory(self, param_bytes: int = 2) -> int:
        """Weights + gradients + AdamW state in bytes: weights and gradients in ``param_bytes``,
        an fp32 master copy if ``param_bytes < 4``, two fp32 moments. Activations excluded
        (see :attr:`activation_memory`)."""
        master = MASTER_BYTES if param_bytes < 4 else 0
        return self.params * (2 * param_bytes + master + MOMENT_BYTES)

    # ---- breakdowns ------------------------------------------------------------------------

    def by_type(self) -> dict[str, Cost]:
        """Costs summed per layer type (``attn``, ``mlp``, ...) and per model part (``embed``,
        ``norm`` for the final norm, ``parallel`` for the pre-norm and sum of parallel blocks,
        ``head``), in order of first appearance. Each layer type includes its pre-norm."""
        out: dict[str, Cost] = {}
        for node, c in self.nodes.items():
            kind = self.node_types[node]
            out[kind] = out[kind] + c if kind in out else c
        return out

    def count_by_type(self) -> dict[str, int]:
        """How many nodes of each type (merge nodes of parallel blocks are not counted)."""
        out: dict[str, int] = {}
        for node, kind in self.node_types.items():
            if not node.endswith(".sum"):
                out[kind] = out.get(kind, 0) + 1
        return out

    def kv_by_type(self) -> dict[str, float]:
        """KV-cache bytes per type (zero for types whose state does not grow with the context)."""
        out: dict[str, float] = {}
        for node, kind in self.node_types.items():
            out[kind] = out.get(kind, 0.0) + (self.nodes[node].state_bytes if node in self.kv_nodes else 0.0)
        return out

    def at(self, seq_len: int | None = None, *, context: int | None = None, batch: int | None = None) -> ModelCost:
        """The same model costed at another sequence length, context or batch."""
        if self.graph is None:
            raise CostError("this cost has no graph to recompute from")
        ctx = self.ctx
        new_seq = ctx.seq_len if seq_len is None else seq_len
        # an explicit context sticks; an implicit one (None) follows the new sequence length
        return cost(
            self.graph,
            seq_len=new_seq,
            batch=ctx.batch if batch is None else batch,
            context=ctx.context if context is None else context,
            act_bytes=ctx.act_bytes,
            state_bytes=ctx.state_bytes,
        )


# ---- the parts that belong to no layer -------------------------------------------------------


def _norm_cost(width: int, ctx: CostContext, adds: int) -> Cost:
    """One RMSNorm of ``width`` weights plus ``adds`` element-wise additions of the stream."""
    flops = 4.0 * width + adds * width
    return Cost(
        params=width,
        scan_flops=flops,
        # the input (for the squares), the normalised output (for the weight) and 1/rms per token
        activation_bytes=float(ctx.seq_len * (2 * width + 1) * ctx.act_bytes),
        decode_flops=flops,
    )


def _embed_cost(d: int, vocab: int, ctx: CostContext) -> Cost:
    # the lookup keeps the token ids (int64) for the gradient of its table
    return Cost(params=vocab * d, embedding_params=vocab * d, activation_bytes=float(8 * ctx.seq_len))


def _head_cost(d: int, vocab: int, tied: bool, ctx: CostContext) -> Cost:
    weights = 0 if tied else vocab * d
    flops = 2.0 * d * vocab
    return Cost(
        params=weights,
        embedding_params=weights,
        matmul_flops=flops,
        activation_bytes=float(ctx.seq_len * (d + vocab) * ctx.act_bytes),
        decode_flops=flops,
    )


# ---- the aggregator ------------------------------------------------------------------------


# Larger lengths, batches or element sizes are surely mistakes; they would also overflow floats.
MAX_ARGUMENT = 2**32


def _positive(name: str, value: Any, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    try:  # ints, numpy ints and Optuna's draws alike; not floats, not booleans
        number = operator.index(value) if not isinstance(value, bool) else None
    except TypeError:
        number = None
    if number is None or number < 1:
        kind = "a positive integer or None" if optional else "a positive integer"
        raise CostError(f"{name} must be {kind}, got {value!r}")
    if number > MAX_ARGUMENT:
        digits = str(number) if number < 10**30 else f"a number of {len(str(number)):,} digits"
        raise CostError(f"{name}={digits} is more than the limit of {MAX_ARGUMENT:,} (2^32)")
    return number


def _check_context(seq_len: Any, batch: Any, context: Any, act_bytes: Any, state_bytes: Any) -> CostContext:
    return CostContext(
        seq_len=_positive("seq_len", seq_len),
        batch=_positive("batch", batch),
        context=_positive("context", context, optional=True),
        act_bytes=_positive("act_bytes", act_bytes),
        state_bytes=_positive("state_bytes", state_bytes),
    )


def _to_graph(target: Any) -> Any:
    import networkx as nx

    if isinstance(target, nx.DiGraph):
        return target
    from archdsl.api import _as_spec  # spec or text, parsed as to_graph and build do
    from archdsl.graph.lower import lower
    from archdsl.spec.model import Spec

    if not isinstance(target, (Spec, str, bytes)):
        raise CostError(
            f"cost() takes a Spec, a graph from archdsl.to_graph or program text, not {type(target).__name__}"
        )
    return lower(_as_spec(target, "cost"))


class _LayerCosts:
    """Per-call cache of layer costs keyed by (type, params): a 1,000-layer stack of two
    distinct layers calls the layers' formulas twice (plus the KV probe below)."""

    def __init__(self, model: Any, ctx: CostContext):
        self.model = model
        self.ctx = ctx
        # The KV probe: the same layer at a context of one token (two if asked for one). A
        # state that changes with the context is a cache of past tokens (KV, bounded by a
        # window or not); a state that does not is recurrent (SSM, RG-LRU, conv tail).
        probe = 2 if ctx.context_len == 1 else 1
        self.probe_ctx = replace(ctx, context=probe)
        self.by_id: dict[tuple[int, str], tuple[Cost, bool]] = {}
        self.by_value: dict[tuple[str, Any], tuple[Cost, bool]] = {}

    def get(self, type_name: str, params: Any) -> tuple[Cost, bool]:
        # within one call every params object stays alive, so its id is a safe, cheap key
        key = (id(params), type_name)
        hit = self.by_id.get(key)
        if hit is None:
            hit = self.by_value.get((type_name, params))
            if hit is None:
                hit = self._compute(type_name, params)
                self.by_value[(type_name, params)] = hit
            self.by_id[key] = hit
        return hit

    def _compute(self, type_name: str, params: Any) -> tuple[Cost, bool]:
        from archdsl.layers.registry import get_layer, list_layers

        try:
            layer = get_layer(type_name)
        except KeyError:
            raise GraphError(
                f"graph node of unknown layer type '{type_name}'{did_you_mean(type_name, list_layers())}"
            ) from None
        key = (layer, params, self.model, self.ctx)
        hit = _FORMULAS.get(key)
        if hit is not None:
            return hit
        c = layer.cost(params, self.model, self.ctx)
        if not isinstance(c, Cost):
            raise GraphError(f"layer '{type_name}': cost() returned {type(c).__name__}, expected a Cost")
        grows = c.state_bytes != layer.cost(params, self.model, self.probe_ctx).state_bytes
        if len(_FORMULAS) >= _FORMULAS_KEPT:
            _FORMULAS.clear()
        _FORMULAS[key] = (c, grows)
        return c, grows


# Layer formulas are pure functions of (layer, params, model, context), all frozen values: the
# costs of the layouts of a search space (thousands of costs of the same few layers) reuse them.
_FORMULAS: dict[tuple[Any, Any, Any, CostContext], tuple[Cost, bool]] = {}
_FORMULAS_KEPT = 4096


def cost(
    target: Any,
    seq_len: int = 2048,
    batch: int = 1,
    context: int | None = None,
    act_bytes: int = 2,
    state_bytes: int = 2,
) -> ModelCost:
    """Analytic cost of a model (a Spec, a graph from :func:`archdsl.to_graph`, or DSL text).

    ``seq_len`` is the training / prefill length per sequence, ``batch`` the sequences per
    step (it scales :attr:`ModelCost.activation_memory` and :attr:`ModelCost.inference_state`;
    per-sequence fields do not depend on it), ``context`` the inference length for the state and
    the decode FLOPs (default: ``seq_len``), ``act_bytes`` / ``state_bytes`` the element sizes.

        >>> archdsl.cost("4x(ssm) attn mlp", seq_len=8192).train_flops   # doctest: +SKIP
    """
    ctx = _check_context(seq_len, batch, context, act_bytes, state_bytes)
    g = _to_graph(target)
    model = g.graph["model"]
    d, vocab = model.d_model, model.vocab
    layers = _LayerCosts(model, ctx)
    # the parts that do not depend on the node are computed once per call
    embed = _embed_cost(d, vocab, ctx)
    head = _head_cost(d, vocab, model.tie_embeddings, ctx)
    norms: dict[tuple[int, int], Cost] = {}
    zeroed: dict[int, Cost] = {}  # id(cost) -> the same cost without parameters (shared reuse)

    def norm(width: int, adds: int) -> Cost:
        c = norms.get((width, adds))
        if c is None:
            c = norms[(width, adds)] = _norm_cost(width, ctx, adds)
        return c

    nodes: dict[str, Cost] = {}
    node_types: dict[str, str] = {}
    kv_nodes: set[str] = set()
    seen_slots: set[tuple[str, str]] = set()
    combined: dict[tuple[int, int], Cost] = {}  # (id(layer cost), id(norm)) -> sum, reused
    n_layers = 0
    for nid, a in g.nodes(data=True):
        kind = a.get("kind")
        if kind == "layer":
            n_layers += 1
            c, grows = layers.get(a["type"], a["params"])
            if grows:
                kv_nodes.add(nid)
            if a.get("residual", True):
                n = norm(a.get("width_in", d), 1)
                key = (id(c), id(n))
                both = combined.get(key)
                if both is None:
                    both = combined[key] = c + n
                c = both
            label = a["type"]
        elif kind == "fork":
            c, label = norm(a.get("width_in", d), 0), "parallel"
        elif kind == "merge":
            # branch ends are the "layer" predecessors (an edge from the fork, if any, is the residual)
            branches = max(sum(1 for p in g.predecessors(nid) if g.nodes[p].get("kind") == "layer"), 1)
            # the branch outputs are summed and the residual added: ``branches`` additions
            c = Cost(scan_flops=float(branches * d), decode_flops=float(branches * d))
            label = "parallel"
        elif kind == "embed":
            c, label = embed, "embed"
        elif kind == "norm":
            c, label = norm(a.get("width_in", d), 0), "norm"
        elif kind == "head":
            c, label = head, "head"
        else:
            raise GraphError(f"graph node '{nid}' has unknown kind {kind!r}")
        group = a.get("group")
        if group is not None and kind in ("layer", "fork"):
            slot = (group, str(a.get("slot")))
            if slot in seen_slots:
                # a later use of shared weights: compute and memory count again, weights do not
                z = zeroed.get(id(c))
                if z is None:
                    z = zeroed[id(c)] = replace(c, params=0, embedding_params=0)
                c = z
            else:
                seen_slots.add(slot)
        nodes[nid] = c
        node_types[nid] = label

    # sum each distinct cost object once, times its uses: repeated layers share one object
    uses: dict[int, list[Any]] = {}
    for c in nodes.values():
        entry = uses.get(id(c))
        if entry is None:
            uses[id(c)] = [c, 1]
        else:
            entry[1] += 1
    totals = {f: sum(getattr(c, f) * n for c, n in uses.values()) for f in _COST_FIELDS}
    kv = sum(nodes[n].state_bytes for n in kv_nodes)
    return ModelCost(
        **totals,
        ctx=ctx,
        kv_bytes=float(kv),
        n_layers=n_layers,
        d_model=d,
        vocab=vocab,
        nodes=MappingProxyType(nodes),
        node_types=MappingProxyType(node_types),
        kv_nodes=frozenset(kv_nodes),
        graph=g,
    )
