"""Training: one loop for the command, the search and Python users.

``archdsl.train`` is both this package and the function (as ``archdsl.cost`` is)::

    >>> import archdsl
    >>> result = archdsl.train("2x(attn)", "mqar", steps=20, batch=8, d_model=32)   # doctest: +SKIP
    >>> result.status, result.metrics                                                  # doctest: +SKIP
    ('finished', {'loss': ..., 'accuracy': ...})
"""

import sys

from archdsl.train._loop import train
from archdsl.train._result import TrainEvent, TrainResult
from archdsl.train._save import save_run
from archdsl.train._settings import TrainError, TrainSettings

__all__ = ["TrainError", "TrainEvent", "TrainResult", "TrainSettings", "save_run", "train"]


class _CallablePackage(type(sys.modules[__name__])):
    """Calling ``archdsl.train(...)`` calls :func:`train`; ``archdsl.train.TrainResult`` and
    ``import archdsl.train._loop`` keep working."""

    def __call__(self, *args, **kwargs) -> TrainResult:
        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
