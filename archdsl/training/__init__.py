"""Training: one loop for the command, the search and Python users.

``archdsl.train`` is the function :func:`train` of this package, imported (with torch) the
first time it is called::

    >>> import archdsl
    >>> result = archdsl.train("2x(attn)", "mqar", steps=20, batch=8, d_model=32)   # doctest: +SKIP
    >>> result.status, result.metrics                                                  # doctest: +SKIP
    ('finished', {'loss': ..., 'accuracy': ...})
"""

from archdsl.training._loop import train
from archdsl.training._result import TrainEvent, TrainResult
from archdsl.training._save import save_run
from archdsl.training._settings import TrainError, TrainSettings

__all__ = ["TrainError", "TrainEvent", "TrainResult", "TrainSettings", "save_run", "train"]
