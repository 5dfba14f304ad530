"""What a build shows while it runs: a line per step with its time, bars for downloads."""

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

T = TypeVar("T")

console = Console(stderr=True)


@contextmanager
def step(label: str) -> Iterator[None]:
    start = time.monotonic()
    with console.status(label):
        yield
    console.print(f"[green]✓[/] {label} ({time.monotonic() - start:.1f} s)")


def counted(label: str, items: Sequence[T], batch: int) -> Iterator[Sequence[T]]:
    """``items`` in batches, with a bar that counts them."""
    start = time.monotonic()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(label, total=len(items))
        for first in range(0, len(items), batch):
            yield items[first:first + batch]
            progress.advance(task, len(items[first:first + batch]))
    console.print(f"[green]✓[/] {label}: {len(items)} ({time.monotonic() - start:.1f} s)")
