"""Tasks that judge an architecture, generated from a seed (no downloads).

>>> from archdsl.tasks import get_task, list_tasks
>>> task = get_task("mqar", pairs=4, seq_len=32)
>>> task.vocab_size, task.seq_len, task.metrics
(256, 32, {'loss': 'minimize', 'accuracy': 'maximize'})
>>> "mad/in_context_recall" in list_tasks()
True
"""

# each module registers its tasks
from archdsl.tasks import _compression, _copying, _memorization, _mqar, _recall, _text  # noqa: F401
from archdsl.tasks._base import (
    Batch,
    SyntheticSettings,
    Task,
    TaskError,
    TaskSettings,
    get_task,
    list_tasks,
    register_task,
)

__all__ = ["Batch", "SyntheticSettings", "Task", "TaskError", "TaskSettings", "get_task", "list_tasks", "register_task"]
