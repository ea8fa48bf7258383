"""The tasks. Adding one: a new file here with a `register_task(Task(...))` line, imported below."""

from aetools.tasks import colorize, denoise, generative, hash, inpaint, superres  # noqa: F401
from aetools.tasks.base import Batch, Task, get_task, list_tasks, register_task

__all__ = ["Batch", "Task", "get_task", "list_tasks", "register_task"]
