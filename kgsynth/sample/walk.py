"""`walk`: typed random walks with a hop range, no revisits, relation allow/deny lists.

Start nodes are drawn from the allowed start types with weight 1 / (1 + times
already used as an anchor), updated after every round, so anchors spread out
instead of piling onto the few nodes with many walks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

import numpy as np

from kgsynth.errors import ConfigError
from kgsynth.graph.engine import Engine
from kgsynth.sample import SAMPLERS
from kgsynth.sample.batch import PathBatch
from kgsynth.sample.collect import Collected, Quotas, collect, share_cap, split_hops
from kgsynth.sample.params import Exclude, HopSpec, excluded_mask, parse_hops
from kgsynth.sample.walks import View, Walked, build_view, pick_starts, relation_mask, type_mask, walk


def relation_keys(engine: Engine, relations: Iterable[str] | None, deny_relations: Iterable[str] | None) -> np.ndarray:
    """Hop keys (both directions) of the allowed relations minus the denied ones."""
    allowed = relation_mask(engine, relations)
    if deny_relations is not None:
        allowed &= ~relation_mask(engine, deny_relations, what="denied relation")
    return np.concatenate([allowed, allowed])


def to_batch(walked: Walked, views: list[View]) -> PathBatch:
    nodes = np.stack(walked.nodes, axis=1) if walked.nodes else np.zeros((0, 1), np.int32)
    entries = [view.engine_entry(position) for view, position in zip(views, walked.positions, strict=True)]
    rows = len(walked.nodes[0])
    return PathBatch(nodes, np.stack(entries, axis=1) if entries else np.zeros((rows, 0), np.int64))


def start_pool(engine: Engine, view: View, types: Iterable[str] | None, excluded: np.ndarray | None, what: str) -> np.ndarray:
    """Nodes of the given types that have an entry to walk and are not excluded."""
    ok = type_mask(engine, types, what=what)[engine.node_type] & (view.degree > 0)
    if excluded is not None:
        ok &= ~excluded
    pool = np.flatnonzero(ok)
    if not len(pool):
        raise ConfigError(f"no node can start a walk ({what}: {types or 'any'}, after exclusions)")
    return pool


@SAMPLERS.register("walk")
def sample_walks(
    engine: Engine,
    n: int,
    rng: np.random.Generator,
    *,
    hops: HopSpec = "2-4",
    hop_weights: list[float] | None = None,
    start_types: Iterable[str] | None = None,
    end_types: Iterable[str] | None = None,
    relations: Iterable[str] | None = None,
    deny_relations: Iterable[str] | None = None,
    exclude: Exclude = None,
    tries: int = 6,
    max_per_pattern: float | None = None,
    max_per_answer_type: float | None = None,
    advance: Callable[[int], None] | None = None,
) -> Collected:
    """n simple walks, split evenly over `hops` (or by `hop_weights`)."""
    hop_list = parse_hops(hops)
    excluded = excluded_mask(engine, exclude)
    keys = relation_keys(engine, relations, deny_relations)
    view = build_view(engine, keys=keys, excluded=excluded)
    last = view
    if end_types is not None:
        last = build_view(engine, keys=keys, excluded=excluded, neighbour_types=type_mask(engine, end_types, what="end type"))
    pool = start_pool(engine, view, start_types, excluded, "start type")
    uses = np.zeros(engine.n_nodes, dtype=np.float64)

    def draw(h: int, size: int) -> tuple[list[PathBatch], Counter]:
        views = [view] * (h - 1) + [last]
        walked = walk(views, pick_starts(pool, uses, size, rng), rng, tries=tries)
        return [to_batch(walked, views)], Counter(dead_end=walked.dead_end, stuck=walked.stuck)

    def accepted(batch: PathBatch) -> None:
        uses[:] += np.bincount(batch.nodes[:, 0], minlength=engine.n_nodes)

    quotas = Quotas(split_hops(n, hop_list, hop_weights), share_cap(max_per_pattern, n), share_cap(max_per_answer_type, n))
    return collect(engine, quotas, draw, accepted=accepted, advance=advance)
