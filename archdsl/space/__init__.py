"""Search spaces: programs with choices, sampled by Optuna into Specs (DESIGN.md section 2).

>>> import archdsl
>>> space = archdsl.parse_space("let mixer = {ssm, attn}\\n{2, 4}x(mixer mlp)")
>>> space.size, [site.name for site in space.sites]
(4, ['mixer', 'repeat'])
"""

from archdsl.space.sites import Site
from archdsl.space.space import InfeasibleError, OverBudgetError, Space, load_space, parse_space
from archdsl.space.validate import SpaceError

__all__ = ["InfeasibleError", "OverBudgetError", "Site", "Space", "SpaceError", "load_space", "parse_space"]
