"""A layer registered from outside the package, through the ``archdsl.layers`` entry point."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch

import archdsl
from archdsl.errors import RegistryError
from archdsl.layers import LayerParams
from archdsl.layers import registry

PLUGIN = textwrap.dedent(
    """
    import torch
    from pydantic import Field
    from torch import nn

    from archdsl.cost.value import Cost
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
    from archdsl.layers.registry import get_layer

    attn = get_layer("attn")

    class Impostor(attn):
        pass

    with pytest.raises(RegistryError, match="'attn' is already registered"):
        registry.register_layer(Impostor)
