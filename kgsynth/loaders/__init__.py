"""Loaders: one module per source format, each a function `sources → Snapshot`.

Every loader is registered by its format name in `LOADERS` and has the signature
`load(sources: list[Path], *, name, vocabulary=None, allow_unknown_relations=False,
**options) -> Snapshot`; it validates its own options and ends with `build_snapshot`.
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
    """Register every loader (imported here, not at package import, to keep start-up light)."""
    from kgsynth.loaders import edges, hpo, primekg, rdf, umls  # noqa: F401
