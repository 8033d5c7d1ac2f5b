"""archdsl: hybrid language-model architectures as one line of text.

>>> import archdsl
>>> spec = archdsl.parse("4x(ssm) 1x(attn window=512)", d_model=256, vocab=1000)
>>> graph = archdsl.to_graph(spec)      # networkx.DiGraph
>>> model = archdsl.build(spec)         # torch.nn.Module, model(ids) -> logits
"""

# Nothing imported here imports torch: build, train and from_hf import it when called, and
# ``archdsl.tasks`` when first used (tests/test_light_core.py checks it).
from archdsl.api import build, load, parse, to_graph, train
from archdsl.costing import Budget, cost
from archdsl.errors import ArchDSLError
from archdsl.space import Space, load_space, parse_space


def from_hf(model_or_config):
    """An archdsl model equal to a Hugging Face Llama, Mamba2 or Mamba model (see archdsl.nn.hf)."""
    from archdsl.nn.hf import from_hf as _from_hf

    return _from_hf(model_or_config)


def from_hf_config(config, *, approximate=False):
    """The DSL text of a Hugging Face config (object, dict or config.json path); see archdsl.interop."""
    from archdsl.interop.hf_config import from_hf_config as _from_hf_config

    return _from_hf_config(config, approximate=approximate)


def __getattr__(name: str):
    # ``archdsl.tasks`` generates data with torch, so it is imported on first use (PEP 562)
    if name == "tasks":
        import importlib

        return importlib.import_module("archdsl.tasks")
    raise AttributeError(f"module 'archdsl' has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "ArchDSLError",
    "Budget",
    "Space",
    "build",
    "cost",
    "from_hf",
    "from_hf_config",
    "load",
    "load_space",
    "parse",
    "parse_space",
    "tasks",
    "to_graph",
    "train",
    "__version__",
]
