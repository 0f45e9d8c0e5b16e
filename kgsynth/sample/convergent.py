"""`convergent`: two or three paths from different anchors that meet at one answer.

The shape of a differential diagnosis: several findings, each a chain of
reasoning, point at the same disease. Each group walks `branches` simple walks
outwards from one answer node, keeps the group only if the branches share no
node but the answer, and turns each walk around so it reads anchor → answer.
The rows of a group share a `group_id`; n counts paths, so n // branches groups.
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
from kgsynth.sample.walk import relation_keys, start_pool, to_batch
from kgsynth.sample.walks import build_view, pick_starts, type_mask, walk


@SAMPLERS.register("convergent")
def sample_convergent(
    engine: Engine,
    n: int,
    rng: np.random.Generator,
    *,
    branches: int = 2,
    hops: HopSpec = "1-3",
    hop_weights: list[float] | None = None,
    answer_types: Iterable[str] | None = None,
    anchor_types: Iterable[str] | None = None,
    relations: Iterable[str] | None = None,
    deny_relations: Iterable[str] | None = None,
    exclude: Exclude = None,
    tries: int = 6,
    max_per_pattern: float | None = None,
    advance: Callable[[int], None] | None = None,
) -> Collected:
    """n // branches groups of `branches` paths (each hops long) ending at a shared answer."""
    if branches not in (2, 3):
        raise ConfigError(f"convergent: branches must be 2 or 3, got {branches}")
    hop_list = parse_hops(hops)
    excluded = excluded_mask(engine, exclude)
    keys = relation_keys(engine, relations, deny_relations)
    view = build_view(engine, keys=keys, excluded=excluded)
    last = view
    if anchor_types is not None:
        last = build_view(engine, keys=keys, excluded=excluded, neighbour_types=type_mask(engine, anchor_types, what="anchor type"))
    pool = start_pool(engine, view, answer_types, excluded, "answer type")
    pool = pool[view.degree[pool] >= branches]  # an answer needs a distinct first step per branch
    if not len(pool):
        raise ConfigError(f"convergent: no answer node has {branches} neighbours to branch into")
    uses = np.zeros(engine.n_nodes, dtype=np.float64)

    def draw(h: int, size: int) -> tuple[list[PathBatch], Counter]:
        answers = pick_starts(pool, uses, size, rng)
        views = [view] * (h - 1) + [last]
        walked = walk(views, np.repeat(answers, branches), rng, tries=tries, keep_partial=True)
        outward = to_batch(walked, views)
        complete = (walked.length == h).reshape(-1, branches).all(axis=1)
        nodes = outward.nodes.reshape(-1, branches, h + 1)
        disjoint = np.ones(len(nodes), dtype=bool)
        for a in range(branches):
            for b in range(a + 1, branches):
                for i in range(1, h + 1):
                    for j in range(1, h + 1):
                        disjoint &= nodes[:, a, i] != nodes[:, b, j]
        rejected = Counter(dead_end=walked.dead_end, stuck=walked.stuck)
        rejected["incomplete_group"] = int((~complete).sum())
        rejected["overlapping_branches"] = int((complete & ~disjoint).sum())
        units = np.flatnonzero(complete & disjoint)
        outward = PathBatch(outward.nodes, outward.entries, branches).take_units(units)
        return [_inward(engine, outward)], rejected

    def accepted(batch: PathBatch) -> None:
        uses[:] += np.bincount(batch.nodes[:: batch.per_unit, -1], minlength=engine.n_nodes)

    quotas = Quotas(split_hops(max(n // branches, 1), hop_list, hop_weights), max_per_pattern=share_cap(max_per_pattern, n))
    return collect(engine, quotas, draw, accepted=accepted, advance=advance)


def _inward(engine: Engine, outward: PathBatch) -> PathBatch:
    """Branches walked from the answer, turned to read anchor → answer, ordered by anchor in each group."""
    nodes = outward.nodes[:, ::-1]
    entries = engine.twins(outward.entries[:, ::-1].ravel()).reshape(outward.entries.shape) if outward.hops else outward.entries
    order = np.argsort(nodes[:, 0].reshape(-1, outward.per_unit), axis=1, kind="stable")
    rows = (order + np.arange(outward.units)[:, None] * outward.per_unit).ravel()
    return PathBatch(np.ascontiguousarray(nodes[rows]), np.ascontiguousarray(entries[rows]), outward.per_unit)
