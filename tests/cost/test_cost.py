"""The aggregator: parameters against the built modules, sharing, the KV / recurrent split,
inference state against what generation allocates, and that costing allocates nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from typer.testing import CliRunner

import archdsl
from archdsl.cli import app
from archdsl.costing import Cost, CostError, ModelCost, cost
from archdsl.costing.value import CostContext
from archdsl.errors import ArchDSLError
from archdsl.layers import LayerParams, get_layer, list_layers, register_layer, unregister_layer
from archdsl.nn.layers.state import state_nbytes
from tests.cost import build_meta, layer_calls


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---- a toy layer whose state may or may not grow with the context --------------------------


class ToyParams(LayerParams):
    cache: bool = False  # True: keep every past input (a cache); False: one running sum


@dataclass
class ToyState:
    buf: torch.Tensor


class Toy(nn.Module):
    """``x @ W`` with a state of one vector, or of one vector per past position."""

    name = "toy_cost_layer"
    description = "test layer of tests/cost"
    Params = ToyParams

    def __init__(self, params: ToyParams, model):
        super().__init__()
        self.cache = params.cache
        self.proj = nn.Linear(model.d_model, model.d_model, bias=False)

    def forward(self, x, *, reference=False):
        return self.proj(x)

    def init_state(self, batch, *, max_len, device, dtype):
        return ToyState(
            torch.zeros(batch, max_len if self.cache else 1, self.proj.in_features, device=device, dtype=dtype)
        )

    def step(self, x, state):
        return self.proj(x), state

    @classmethod
    def cost(cls, params, model, ctx: CostContext) -> Cost:
        d = model.d_model
        positions = ctx.context_len if params.cache else 1
        return Cost(params=d * d, matmul_flops=2.0 * d * d, state_bytes=float(positions * d * ctx.state_bytes))


@pytest.fixture(scope="module", autouse=True)
def _toy_layer():
    # registered for this module's tests only: registering at import would show it to the
    # tests of every other module that iterate over the registry
    register_layer(Toy)
    yield
    unregister_layer(Toy.name)


TOY = Toy.name


# ---- parameters equal the built module's -----------------------------------------------------


@pytest.mark.parametrize("tied", [False, True])
def test_toy_stack_with_parallel_and_shared_has_the_built_parameter_count(tied):
    text = f"let g = shared({TOY} ({TOY} | {TOY} cache=true {TOY}))\ng {TOY} g 2x(g)"
    spec = archdsl.parse(text, d_model=16, vocab=37, tie_embeddings=tied)
    c = cost(spec)
    assert c.params == n_params(archdsl.build(spec))
    # one group: 4 toy projections + 2 pre-norms; one plain toy sub-layer; embedding, head, final norm
    assert c.params == 4 * 16 * 16 + 2 * 16 + (16 * 16 + 16) + 37 * 16 * (1 if tied else 2) + 16


def test_shared_weights_count_once_but_compute_every_use():
    once = cost(archdsl.parse(f"let g = shared({TOY})\ng", d_model=16, vocab=10))
    four = cost(archdsl.parse(f"let g = shared({TOY})\n4x(g)", d_model=16, vocab=10))
    assert four.params == once.params
    assert four.matmul_flops - once.matmul_flops == 3 * 2 * 16 * 16
    assert four.count_by_type()[TOY] == 4


def test_example_parameters_equal_the_built_model(example_path):
    spec = archdsl.load(example_path)
    c = cost(spec)
    assert c.params == n_params(build_meta(spec))


CALLS = layer_calls()


@st.composite
def programs(draw) -> str:
    call = st.sampled_from(CALLS)
    seq = st.lists(call, min_size=1, max_size=2).map(" ".join)
    item = st.one_of(
        call,
        st.builds(lambda n, s: f"{n}x({s})", st.integers(1, 3), seq),
        st.builds(lambda a, b: f"({a} | {b})", seq, seq),
        st.just("g"),
    )
    shared = draw(seq)
    body = " ".join(draw(st.lists(item, min_size=1, max_size=4)))
    return f"let g = shared({shared})\n{body}"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=programs(), d_model=st.sampled_from([32, 64]), vocab=st.integers(2, 300), tied=st.booleans())
def test_random_specs_have_the_built_parameter_count(program, d_model, vocab, tied):
    try:
        spec = archdsl.parse(program, d_model=d_model, vocab=vocab, tie_embeddings=tied)
    except ArchDSLError:  # a layer call valid at d_model 64 may not be at 32
        return
    c = cost(spec)
    assert c.params == n_params(build_meta(spec))
    assert c.n_layers == len(spec.layers())
    assert c.non_embedding_params == c.params - vocab * d_model * (1 if tied else 2)


def test_thousand_layer_spec_costs_correctly():
    small = cost(archdsl.parse("2x(attn mlp)", d_model=64, vocab=100))
    big = cost(archdsl.parse("500x(attn mlp)", d_model=64, vocab=100))
    fixed = 2 * 100 * 64 + 64  # embedding, head, final norm
    assert (big.params - fixed) == 250 * (small.params - fixed)
    assert big.n_layers == 1000
    assert big.params == n_params(build_meta(archdsl.parse("500x(attn mlp)", d_model=64, vocab=100)))


# ---- the value: a Cost of the whole model, with its parts --------------------------------


def test_model_cost_is_the_sum_of_its_nodes_and_of_its_types():
    spec = archdsl.parse("2x(attn mlp) (attn window=8 | ssm) mlp", d_model=64, vocab=100)
    c = cost(spec, seq_len=512)
    assert isinstance(c, Cost) and isinstance(c, ModelCost)
    assert sum(c.nodes.values(), Cost()) == c.total
    assert sum(c.by_type().values(), Cost()) == c.total
    assert c.count_by_type() == {"embed": 1, "attn": 3, "mlp": 3, "parallel": 1, "ssm": 1, "norm": 1, "head": 1}
    assert c.train_flops == 3 * c.forward_flops
    # adding model costs gives a plain Cost of the fields
    assert (c + c).params == 2 * c.params and type(c + c) is Cost


def test_head_and_embedding():
    untied = cost(archdsl.parse("mlp", d_model=64, vocab=1000))
    tied = cost(archdsl.parse("mlp", d_model=64, vocab=1000, tie_embeddings=True))
    assert untied.params - tied.params == 64 * 1000
    assert untied.embedding_params == 2 * 64 * 1000 and tied.embedding_params == 64 * 1000
    head = untied.nodes["head"]
    assert head.matmul_flops == head.decode_flops == 2 * 64 * 1000
    assert untied.nodes["embed"].forward_flops == 0
    assert tied.matmul_flops == untied.matmul_flops  # a tied head still multiplies


def test_kv_cache_and_recurrent_state_are_told_apart():
    spec = archdsl.parse(f"{TOY} {TOY} cache=true", d_model=16, vocab=10)
    c = cost(spec, seq_len=128, state_bytes=4)
    assert c.kv_bytes == 128 * 16 * 4
    assert c.recurrent_state_bytes == 16 * 4
    assert c.kv_by_type()[TOY] == c.kv_bytes


def test_at_recomputes_on_the_same_graph():
    c = cost(archdsl.parse("attn mlp", d_model=64, vocab=100), seq_len=1024)
    longer = c.at(4096)
    assert longer.ctx.seq_len == longer.ctx.context_len == 4096
    assert longer.attn_flops > c.attn_flops and longer.params == c.params
    assert longer.state_bytes == 4 * c.state_bytes
    same = c.at(context=8192)
    assert same.ctx.seq_len == 1024 and same.state_bytes == 8 * c.state_bytes


def test_training_memory_is_sixteen_bytes_a_parameter():
    c = cost(archdsl.parse("mlp", d_model=64, vocab=100))
    assert c.training_memory(2) == 16 * c.params  # bf16 w + bf16 g + fp32 master + 2 fp32 moments
    assert c.training_memory(4) == 16 * c.params  # fp32 w + fp32 g + 2 fp32 moments
    assert c.weight_memory(2) == 2 * c.params


def test_batch_scales_memory_not_per_token_figures():
    spec = archdsl.parse("attn mlp", d_model=64, vocab=100)
    one, four = cost(spec, batch=1), cost(spec, batch=4)
    assert four.activation_memory == 4 * one.activation_memory
    assert four.inference_state == 4 * one.inference_state
    assert four.train_flops == one.train_flops


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"seq_len": 0}, "seq_len must be a positive integer, got 0"),
        ({"seq_len": -5}, "seq_len must be a positive integer, got -5"),
        ({"batch": 0}, "batch must be a positive integer"),
        ({"context": 0}, "context must be a positive integer or None"),
        ({"seq_len": 2.5}, "seq_len must be a positive integer, got 2.5"),
    ],
    ids=["zero-seq", "negative-seq", "zero-batch", "zero-context", "float-seq"],
)
def test_bad_lengths_are_cost_errors(kwargs, match):
    with pytest.raises(CostError, match=match):
        cost("mlp", **kwargs)


# ---- inference state against what generation allocates ---------------------------------------


@pytest.mark.parametrize("context", [8, 100])
def test_state_bytes_equal_the_allocated_state_of_every_layer(context):
    for call in CALLS:
        spec = archdsl.parse(call, d_model=64, vocab=50)
        model = build_meta(spec)
        allocated = state_nbytes(model.init_state(batch=3, max_len=context))
        c = cost(spec, seq_len=16, context=context, state_bytes=4, batch=3)
        assert c.inference_state == allocated, call


def test_state_bytes_of_examples_equal_the_allocated_state(example_path):
    spec = archdsl.load(example_path)
    model = build_meta(spec, torch.bfloat16)
    for context in (100, 4096):
        allocated = state_nbytes(model.init_state(batch=1, max_len=context))
        assert cost(spec, context=context, state_bytes=2).state_bytes == allocated


@pytest.mark.parametrize("window", [None, 256])
def test_llama_kv_cache_by_hand(window):
    w = "" if window is None else f" window={window}"
    spec = archdsl.parse(f"4x(attn heads=8 kv_heads=2{w} mlp)", d_model=512, vocab=1000)
    c = cost(spec, context=1024, state_bytes=2)
    positions = 1024 if window is None else window
    # layers x (K and V) x kv_heads x head_dim x positions x bf16
    assert c.kv_bytes == c.state_bytes == 4 * 2 * 2 * 64 * positions * 2
    assert set(c.kv_by_type().items()) >= {("attn", c.kv_bytes), ("mlp", 0.0)}


# ---- costing allocates nothing --------------------------------------------------------------


def test_cost_builds_no_module_and_allocates_no_tensor(monkeypatch):
    spec = archdsl.parse("let g = shared(attn mlp)\n2x(ssm g) (attn window=64 | ssm) " + " ".join(CALLS))
    list_layers()

    def refuse(*args, **kwargs):
        raise AssertionError("cost allocated a tensor or built a module")

    monkeypatch.setattr(nn.Module, "__init__", refuse)
    for name in ("empty", "zeros", "ones", "randn", "rand", "tensor", "arange", "full"):
        monkeypatch.setattr(torch, name, refuse)
    c = cost(spec, seq_len=4096)
    assert c.params > 0


TRILLION = "200x(attn heads=128 kv_heads=8 mlp hidden=98304)"


def test_trillion_parameter_spec_costs_without_building():
    # how quickly: tests/test_timing_bounds.py (pytest -m timing) and benchmarks/bench_cost.py
    spec = archdsl.parse(TRILLION, d_model=16384, vocab=128000)
    assert cost(spec, seq_len=131072).params > 1e12


# ---- the command ----------------------------------------------------------------------------


def test_cli_table_and_json(example_path, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["cost", str(example_path), "--seq", "2k,8k"])
    assert result.exit_code == 0, result.output
    spec = archdsl.load(example_path)
    for kind in ("embed", "head", "total", *{layer.type for layer in spec.layers()}):
        assert kind in result.output
    result = runner.invoke(app, ["cost", str(example_path), "--seq", "1k,4k", "--json", "--batch", "2"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["schema"] == "archdsl.cost/1" and data["seq"] == [1024, 4096] and data["batch"] == 2
    (model,) = data["models"]
    assert model["params"] == cost(spec).params
    assert [a["seq_len"] for a in model["at"]] == [1024, 4096]
    assert model["at"][1]["activation_bytes"] == cost(spec, seq_len=4096, batch=2).activation_memory


def test_cli_plot_and_budget(tmp_path):
    path = tmp_path / "cost.png"
    runner = CliRunner()
    args = ["cost", "-e", "4x(attn mlp)", "--seq", "1k,64k", "--plot", str(path), "--budget", "params<=1M"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output  # over budget: exit 1, after the report
    assert "OVER" in result.output and path.stat().st_size > 10_000


@pytest.mark.parametrize(
    "seq, bad",
    [("2k,0,8k", "'0'"), ("2k,-4k", "'-4k'"), ("2k,lots", "'lots'"), ("2k,,8k", "empty length"), ("1.5", "'1.5'")],
    ids=["zero", "negative", "garbage", "empty", "fraction"],
)
def test_cli_bad_seq_names_the_bad_part(seq, bad):
    result = CliRunner().invoke(app, ["cost", "-e", "mlp", "--seq", seq])
    assert result.exit_code == 1
    assert bad in result.stderr and "^" in result.stderr


def test_measure_times_a_tiny_model_beside_the_analytic_flops():
    from archdsl.costing.measure import measure

    spec = archdsl.parse("attn mlp", d_model=32, vocab=50)
    m = measure(spec, seq_len=16, batch=2, repeats=1, device="cpu")
    c = cost(spec, seq_len=16)
    assert m.forward_flops == c.forward_flops * 32 and m.train_flops == 3 * m.forward_flops
    assert m.forward_s > 0 and m.train_s > 0 and m.as_dict()["train_gflops_per_s"] > 0
    assert "GFLOP/s" in str(m)


def test_cost_of_something_else_is_a_clear_error():
    with pytest.raises(
        CostError, match="cost\\(\\) takes a Spec, a graph from archdsl.to_graph or program text, not int"
    ):
        cost(12)


# ---- the parts of a model that belong to no layer, against what runs ---------------------------


def _saved_bytes_with_loss(model, ids) -> int:
    """Bytes autograd keeps for a forward and the cross-entropy loss (parameters left out)."""
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights:
            kept[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logits = model(ids)
        nn.functional.cross_entropy(logits.flatten(0, 1), ids.flatten())
    return sum(kept.values())


# Sequential programs: in a parallel group each branch's formula counts the input the branches
# share, so a group of b branches is over-estimated by (b - 1) * d per token.
@pytest.mark.parametrize(
    "text", ["attn heads=2 mlp", "2x(conv mlp)", "model tie_embeddings=true\nssm state=8 head_dim=16 chunk=8 gdn"]
)
def test_model_activation_bytes_are_what_autograd_keeps(text):
    """Layers, the norms, the embedding and the head with the loss's logits, within 2%."""
    spec = archdsl.parse(text, d_model=32, vocab=50)
    model = archdsl.build(spec)
    ids = torch.randint(0, 50, (1, 24))
    estimate = cost(spec, seq_len=24, act_bytes=4).activation_bytes
    assert estimate == pytest.approx(_saved_bytes_with_loss(model, ids), rel=0.02)


def test_norm_and_residual_flops_are_counted_per_block():
    """Each residual block adds an RMSNorm (square, sum, scale, weight: 4 d) and a residual add (d);
    the final norm 4 d more; the head 2 d vocab."""
    spec = archdsl.parse("attn heads=2 mlp 2x(conv)", d_model=32, vocab=50)
    ctx = CostContext(seq_len=16)
    c = cost(spec, seq_len=16)
    layers = [get_layer(n.type).cost(n.params, spec.model, ctx) for n in spec.layers()]
    blocks = len(layers)
    assert c.scan_flops == sum(x.scan_flops for x in layers) + blocks * 5 * 32 + 4 * 32
    assert c.decode_flops == sum(x.decode_flops for x in layers) + blocks * 5 * 32 + 4 * 32 + 2 * 32 * 50
    assert c.matmul_flops == sum(x.matmul_flops for x in layers) + 2 * 32 * 50


def test_defaults_are_the_documented_ones():
    spec = archdsl.parse("attn heads=2 mlp", d_model=32, vocab=50)
    assert CostContext() == CostContext(seq_len=2048, batch=1, context=None, act_bytes=2, state_bytes=2)
    assert cost(spec) == cost(spec, seq_len=2048, batch=1, context=None, act_bytes=2, state_bytes=2)


def test_budget_table_shows_bytes_and_counts_in_their_units():
    from rich.console import Console

    from archdsl.costing.budget import Budget
    from archdsl.costing.report import budget_table

    c = cost(archdsl.parse("attn mlp", d_model=64, vocab=100), seq_len=256)
    console = Console(record=True, width=120)
    console.print(budget_table(Budget.parse("params<=1M,state@2k<=1GiB").check(c)))
    rows = {line.split()[1]: line for line in console.export_text().splitlines() if "<=" in line}
    assert "66.2K" in rows["params<=1M"] and "512KiB" in rows["state@2k<=1GiB"]
