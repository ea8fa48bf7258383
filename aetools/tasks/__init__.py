"""The tasks: each file is a training recipe (`register_task(Task(...))`) and, for an image task, the
pipeline that runs it (`@register_pipeline`). Adding one: a new file here, imported below."""

from aetools.pipeline import get_pipeline, list_pipelines
from aetools.tasks import colorize, denoise, generative, hash, inpaint, superres  # noqa: F401
from aetools.tasks.base import Batch, Task, get_task, list_tasks, register_task

__all__ = ["Batch", "Task", "get_pipeline", "get_task", "list_pipelines", "list_tasks", "register_task"]
