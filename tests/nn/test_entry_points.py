"""A layer registered from outside the package, through the ``archdsl.layers`` entry point."""

from __future__ import annotations

import sys
import textwrap
from dataclasses import replace

import pytest
import torch

import archdsl
from archdsl.errors import RegistryError
from archdsl.layers import LayerParams, registry

PLUGIN = textwrap.dedent(
    """
    import torch
    from pydantic import Field
    from torch import nn

    from archdsl.costing.value import Cost
    from archdsl.layers.base import LayerParams


    class ScaleParams(LayerParams):
        factor: float = Field(2.0, description="multiplies the input")


    class Scale(nn.Module):
        name = "scale"
        description = "multiplies its input by a learned scalar (a plug-in test layer)"
        Params = ScaleParams

        def __init__(self, params, model):
            super().__init__()
            self.factor = nn.Parameter(torch.tensor(params.factor))

        def forward(self, x, *, reference=False):
            return x * self.factor

        def init_state(self, batch, *, max_len, device, dtype):
            return None

        def step(self, x, state):
            return x * self.factor, state

        @classmethod
        def cost(cls, params, model, ctx):
            return Cost(params=1, scan_flops=1.0)
    """
)


@pytest.fixture
def plugin_on_path(tmp_path, monkeypatch):
    (tmp_path / "archdsl_scale_plugin.py").write_text(PLUGIN)
    dist = tmp_path / "archdsl_scale_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: archdsl-scale-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[archdsl.layers]\nscale = archdsl_scale_plugin:Scale\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    yield
    registry.unregister_layer("scale")
    sys.modules.pop("archdsl_scale_plugin", None)


def test_entry_point_layer_is_usable_in_a_spec(plugin_on_path):
    assert "scale" in registry.list_layers()
    spec = archdsl.parse("ssm scale factor=3.0 mlp", d_model=32, vocab=40)
    model = archdsl.build(spec)
    assert model.layers[1].mixer.factor.item() == 3.0
    assert model(torch.randint(0, 40, (1, 4))).shape == (1, 4, 40)


def test_a_layer_without_a_cost_is_refused_at_registration():
    class NoCost(torch.nn.Module):
        name = "nocost"
        description = "missing its cost"
        Params = LayerParams

        def forward(self, x, *, reference=False):
            return x

        def init_state(self, batch, *, max_len, device, dtype):
            return None

        def step(self, x, state):
            return x, state

    with pytest.raises(RegistryError, match="missing cost of the layer contract"):
        registry.register_layer(NoCost)


def test_duplicate_names_are_refused():
    class Impostor(registry.module_class("attn")):  # an old-style class with both halves
        name = "attn"
        description = "another attention"
        Params = registry.get_layer("attn").Params
        cost = classmethod(lambda cls, params, model, ctx: registry.get_layer("attn").cost(params, model, ctx))

    with pytest.raises(RegistryError, match="'attn' is already registered by the contract of module archdsl"):
        registry.register_layer(Impostor)
    with pytest.raises(RegistryError, match="'mlp' is already registered"):
        registry.register_layer(replace(registry.get_layer("attn"), name="mlp"))


# The new form: the contract in one module (no torch), the nn.Module in another, imported by build.
CONTRACT = textwrap.dedent(
    """
    from pydantic import Field

    from archdsl.costing.value import Cost
    from archdsl.layers import LayerContract, LayerParams


    class ShiftParams(LayerParams):
        by: float = Field(1.0, description="added to the input")


    SHIFT = LayerContract(
        name="shift",
        description="adds a learned offset to its input (a plug-in test layer)",
        Params=ShiftParams,
        cost=lambda params, model, ctx: Cost(params=model.d_model, scan_flops=float(model.d_model)),
        module="archdsl_shift_plugin_nn:Shift",
    )
    BROKEN = LayerContract(
        name="broken",
        description="its module class has no step",
        Params=ShiftParams,
        cost=SHIFT.cost,
        module="archdsl_shift_plugin_nn:NoStep",
    )
    """
)
MODULE = textwrap.dedent(
    """
    import torch
    from torch import nn


    class Shift(nn.Module):
        def __init__(self, params, model):
            super().__init__()
            self.offset = nn.Parameter(torch.full((model.d_model,), params.by))

        def forward(self, x, *, reference=False):
            return x + self.offset

        def init_state(self, batch, *, max_len, device, dtype):
            return None

        def step(self, x, state):
            return x + self.offset, state


    class NoStep(Shift):
        step = None
    """
)


@pytest.fixture
def contract_plugin_on_path(tmp_path, monkeypatch):
    (tmp_path / "archdsl_shift_plugin.py").write_text(CONTRACT)
    (tmp_path / "archdsl_shift_plugin_nn.py").write_text(MODULE)
    dist = tmp_path / "archdsl_shift_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: archdsl-shift-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[archdsl.layers]\nshift = archdsl_shift_plugin:SHIFT\nbroken = archdsl_shift_plugin:BROKEN\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    yield
    for name in ("shift", "broken"):
        registry.unregister_layer(name)
    for module in ("archdsl_shift_plugin", "archdsl_shift_plugin_nn"):
        sys.modules.pop(module, None)


def test_a_contract_plugin_is_listed_checked_and_costed_without_its_module(contract_plugin_on_path):
    assert {"shift", "broken"} <= set(registry.list_layers())
    spec = archdsl.parse("ssm shift by=0.5 mlp", d_model=32, vocab=40)
    assert archdsl.cost(spec).by_type()["shift"].params == 2 * 32  # the offset and the pre-norm
    assert "archdsl_shift_plugin_nn" not in sys.modules  # the torch half waits for build
    model = archdsl.build(spec)
    assert "archdsl_shift_plugin_nn" in sys.modules
    assert torch.all(model.layers[1].mixer.offset == 0.5)
    assert sum(p.numel() for p in model.parameters()) == archdsl.cost(spec).params


def test_a_contract_whose_module_misses_a_method_is_refused_when_built(contract_plugin_on_path):
    spec = archdsl.parse("broken", d_model=32, vocab=40)  # the contract half is complete
    with pytest.raises(RegistryError, match="layer 'broken'.*missing step of the layer contract"):
        archdsl.build(spec)


def test_a_contract_needs_a_module_path():
    bad = replace(registry.get_layer("mlp"), name="nowhere", module="archdsl.nn.layers.mlp.MLP")
    with pytest.raises(RegistryError, match="'module' must read 'package.module:Class'"):
        registry.register_layer(bad)
