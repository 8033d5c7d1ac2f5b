"""archdsl: hybrid language-model architectures as one line of text.

    >>> import archdsl
    >>> spec = archdsl.parse("4x(ssm) 1x(attn window=512)", d_model=256, vocab=1000)
    >>> graph = archdsl.to_graph(spec)      # networkx.DiGraph
    >>> model = archdsl.build(spec)         # torch.nn.Module, model(ids) -> logits
"""

from archdsl.api import build, load, parse, to_graph
from archdsl.errors import ArchDSLError

__version__ = "0.1.0"

__all__ = ["ArchDSLError", "build", "load", "parse", "to_graph", "__version__"]
