"""The analytic cost model: per-node costs summed over the graph, budgets, reports.

>>> import archdsl
>>> c = archdsl.cost("4x(ssm) attn mlp", seq_len=8192)     # doctest: +SKIP
>>> c.params, c.train_flops, c.kv_bytes, c.by_type()        # doctest: +SKIP
"""

import sys

from archdsl.cost.budget import Budget, BudgetCheck, Limit, Violation, parse_size, parse_sizes
from archdsl.cost.model import CostError, ModelCost, cost
from archdsl.cost.value import Cost, CostContext

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


class _CallablePackage(type(sys.modules[__name__])):
    """``archdsl.cost`` is both this package and the function DESIGN.md names
    (``archdsl.cost(spec, seq_len=...)``): calling the package calls :func:`cost`, while
    ``import archdsl.cost.model`` and friends keep working."""

    def __call__(self, *args, **kwargs) -> ModelCost:
        return cost(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
