"""Progress bars and the end-of-command summary, on stderr so stdout stays data."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

T = TypeVar("T")

console = Console(stderr=True)


class RateColumn(ProgressColumn):
    """Items per second, e.g. '412,305 paths/s' (rich's own speed column counts bytes)."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} {self.unit}/s", style="progress.data.speed")


def new_progress(*, transient: bool = True, rate: str | None = None) -> Progress:
    """Bars with done/total, elapsed and remaining time; with `rate`, also items per second."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *([RateColumn(rate)] if rate else []),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
        disable=not console.is_terminal,
    )


def track(iterable: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    with new_progress() as progress:
        yield from progress.track(iterable, total=total, description=description)


@contextmanager
def step(description: str) -> Iterator[None]:
    """A spinner for one long call whose progress cannot be counted."""
    with console.status(description) if console.is_terminal else _nothing():
        yield


@contextmanager
def _nothing() -> Iterator[None]:
    yield
