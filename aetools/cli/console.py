"""The console: the CLI's only way to speak (library code never prints)."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

from aetools.outputs import display_name

console = Console(stderr=True, highlight=False)
out = Console(highlight=False)  # results meant for stdout (tables, JSON)


def shown(text: object) -> str:
    """A path (or a message holding one) as one console line shows it: control characters and undecodable
    bytes escaped (`display_name`), and brackets escaped so a name like `[red]x.png` is not read as markup."""
    return escape(display_name(str(text)))


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a one-line error and return the Exit to raise: `raise fail("...")`."""
    console.print(f"[bold red]error:[/] {shown(message)}", markup=True, soft_wrap=True)
    return typer.Exit(code)


def parse_numbers(first: list[float] | None, extra: list[str], name: str, kind: type = float) -> list:
    """Options that take several values the way a person types them (`--sigma 15 25 50`): click keeps
    the first after the flag, the others arrive as extra arguments."""
    values = list(first or [])
    for item in extra:
        try:
            values.append(kind(item))
        except ValueError:
            raise fail(f"unexpected argument {item!r} (after {name} only numbers may follow)") from None
    return values


def progress_bar(title: str, detail: str, transient: bool = False, disable: bool = False):
    """The one progress-bar layout: title, bar, n/total, a detail column (task fields), elapsed, ETA."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn(f"[bold]{title}"), BarColumn(), MofNCompleteColumn(), TextColumn(detail))
    return Progress(
        *columns, TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=transient, disable=disable
    )


def prepare(device: str, seed: int | None = None):
    """Resolve --device and --seed once per command; a bad value is a one-line usage error."""
    import torch

    from aetools.inference import DeviceError, resolve_device

    if seed is not None:
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        return resolve_device(device)
    except DeviceError as e:
        raise fail(str(e)) from None


def load_task_model(model: str | None, task: str, device):
    """--model resolved to a network for `task`; a bad name or file is a one-line error."""
    from aetools.weights import WeightsError, load_model

    try:
        return load_model(model, task, device)
    except WeightsError as e:
        raise fail(str(e)) from None
