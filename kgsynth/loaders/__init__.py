"""Loaders: one module per source format, each a function `sources → Snapshot`.

Every loader is registered by its format name in `LOADERS` and has the signature
`load(sources: list[Path], **options) -> Snapshot`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kgsynth.graph.snapshot import Snapshot
from kgsynth.registry import Registry

Loader = Callable[..., Snapshot]
LOADERS: Registry[Loader] = Registry("loader")


def load(format: str, sources: list[Path], **options) -> Snapshot:
    """Load `sources` with the loader registered as `format`."""
    _import_all()
    return LOADERS.get(format)(sources, **options)


def _import_all() -> None:
    from kgsynth.loaders import hpo  # noqa: F401
    for optional in ("primekg", "umls", "rdf", "edges"):
        try:
            __import__(f"kgsynth.loaders.{optional}")
        except ModuleNotFoundError as exc:
            if exc.name != f"kgsynth.loaders.{optional}":
                raise
