"""The analytic cost model: per-node costs summed over the graph, budgets, reports.

``archdsl.cost`` is this package's :func:`cost`. No torch here: a layer's cost formula is read
from its torch-free contract (archdsl/layers/builtin/).

>>> import archdsl
>>> c = archdsl.cost("4x(ssm) attn mlp", seq_len=8192)     # doctest: +SKIP
>>> c.params, c.train_flops, c.kv_bytes, c.by_type()        # doctest: +SKIP
"""

from archdsl.costing.budget import Budget, BudgetCheck, Limit, Violation, parse_size, parse_sizes
from archdsl.costing.model import CostError, ModelCost, cost
from archdsl.costing.value import Cost, CostContext

__all__ = [
    "Budget",
    "BudgetCheck",
    "Cost",
    "CostContext",
    "CostError",
    "Limit",
    "ModelCost",
    "Violation",
    "cost",
    "parse_size",
    "parse_sizes",
]
