"""The one error family.

Every error a user can cause is a `KgsynthError`. Each subclass also inherits the
builtin it refines, so callers that catch `ValueError` or `OSError` keep working.
Messages quote the bad input, say what was expected and how to fix it; the CLI
prints them as one line and exits with code 2.
"""

from __future__ import annotations

from pathlib import Path


class KgsynthError(Exception):
    """Base of every error kgsynth raises on purpose."""

    exit_code = 2


class InputFormatError(KgsynthError, ValueError):
    """A source file or table does not have the expected shape or content."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        where = []
        if self.file:
            where.append(self.file)
        if line is not None:
            where.append(f"line {line}")
        if field:
            where.append(f"field '{field}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class UnknownRelationError(KgsynthError, KeyError):
    """A relation (or node type) that the vocabulary does not define."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class ConfigError(KgsynthError, ValueError):
    """A configuration value or command-line option is invalid."""


class SourceNotFoundError(KgsynthError, FileNotFoundError):
    """An input path does not exist or cannot be read."""


class SnapshotError(KgsynthError, ValueError):
    """A snapshot directory is missing, incomplete or inconsistent."""


class OutputError(KgsynthError, OSError):
    """An output folder cannot be written: it holds files kgsynth did not write, or cannot be replaced."""


class StoreError(KgsynthError, ConnectionError):
    """A graph store (Neo4j) cannot be reached or refused an operation."""


class LLMError(KgsynthError, RuntimeError):
    """A model endpoint failed in a way retries could not fix."""


class BudgetExceeded(KgsynthError, RuntimeError):
    """The next model calls would pass the configured cost ceiling."""


class PublishError(KgsynthError, RuntimeError):
    """Publishing a dataset to the Hub failed."""
