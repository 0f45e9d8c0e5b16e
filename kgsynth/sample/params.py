"""Sampler parameters shared by the strategies: hop ranges, excluded hubs, typed starts."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from kgsynth.errors import ConfigError, InputFormatError, SourceNotFoundError
from kgsynth.graph.engine import Engine

MAX_HOPS = 12

HopSpec = int | str | Iterable[int]
Exclude = str | Path | Iterable[str] | np.ndarray | None


def parse_hops(spec: HopSpec, *, what: str = "hops") -> list[int]:
    """'2-4' → [2, 3, 4]; '2,5' → [2, 5]; 3 → [3]; an iterable of ints is taken as is."""
    if isinstance(spec, bool):
        raise ConfigError(f"{what}: expected a hop count like 3 or a range like '2-4', got {spec!r}")
    if isinstance(spec, int):
        hops = [spec]
    elif isinstance(spec, str):
        try:
            if "-" in spec:
                low, high = (int(part) for part in spec.split("-", 1))
                hops = list(range(low, high + 1))
            else:
                hops = [int(part) for part in spec.split(",") if part.strip()]
        except ValueError:
            raise ConfigError(f"{what}: expected a hop count like 3 or a range like '2-4', got {spec!r}") from None
    else:
        hops = [int(h) for h in spec]
    hops = sorted(set(hops))
    if not hops or hops[0] < 1 or hops[-1] > MAX_HOPS:
        raise ConfigError(f"{what}: hop counts must be between 1 and {MAX_HOPS}, got {spec!r}")
    return hops


def excluded_mask(engine: Engine, exclude: Exclude) -> np.ndarray | None:
    """Nodes a sampler must not step onto: hubs.json from `kgsynth shatter`, ids, or a mask.

    Ids that are not in this graph are ignored: hubs of the full graph are simply
    absent from a pruned one.
    """
    if exclude is None:
        return None
    if isinstance(exclude, np.ndarray) and exclude.dtype == bool:
        if exclude.shape != (engine.n_nodes,):
            raise ConfigError(f"exclude mask has shape {exclude.shape}, expected ({engine.n_nodes},)")
        return exclude
    ids = hub_ids(exclude) if isinstance(exclude, str | Path) else list(exclude)
    index = engine.indices_of(ids)
    mask = np.zeros(engine.n_nodes, dtype=bool)
    mask[index[index >= 0]] = True
    return mask


def hub_ids(path: str | Path) -> list[str]:
    """The removed node ids listed in a hubs.json written by `kgsynth shatter`."""
    path = Path(path)
    if path.is_dir():
        path = path / "hubs.json"
    if not path.exists():
        raise SourceNotFoundError(f"{path}: no such hubs file (write one with `kgsynth shatter`)")
    try:
        removed = json.loads(path.read_text(encoding="utf-8"))["removed"]
        return [str(record["id"]) for record in removed]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputFormatError(f"not a hubs.json from `kgsynth shatter` ({exc})", file=path, field="removed") from None


def node_set(engine: Engine, ids: Iterable[str] | None, *, what: str) -> np.ndarray | None:
    """Engine indices of explicitly named nodes; unknown ids are an error naming them."""
    if ids is None:
        return None
    ids = list(ids)
    index = engine.indices_of(ids)
    missing = [i for i, at in zip(ids, index.tolist(), strict=True) if at < 0]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5])
        raise ConfigError(f"{what}: {len(missing)} id(s) not in the graph, e.g. {shown}")
    return index
