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
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

console = Console(stderr=True)


def new_progress(*, transient: bool = True) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
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
