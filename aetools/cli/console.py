"""The console: the CLI's only way to speak (library code never prints)."""

from __future__ import annotations

import typer
from rich.console import Console

console = Console(stderr=True, highlight=False)
out = Console(highlight=False)  # results meant for stdout (tables, JSON)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a one-line error and return the Exit to raise: `raise fail("...")`."""
    console.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
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
