"""`rare-chain`: the longest simple chains (up to a bound) from rare, specific entities.

Anchors are drawn with weight 1 / (degree · (1 + times used)) among nodes of
degree at most `max_start_degree` (default: the median degree of the candidate
start nodes); every step prefers low-degree neighbours (weight 1 / degree), so
chains run through specific entities instead of hubs. Each anchor gets `attempts`
walks of up to `max_hops`; the longest one is kept if it has at least `min_hops`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

import numpy as np

from kgsynth.errors import ConfigError
from kgsynth.graph.engine import Engine
from kgsynth.sample import SAMPLERS
from kgsynth.sample.batch import PathBatch
from kgsynth.sample.collect import Collected, Quotas, collect, share_cap
from kgsynth.sample.params import MAX_HOPS, Exclude, excluded_mask
from kgsynth.sample.walk import relation_keys, start_pool, to_batch
from kgsynth.sample.walks import Walked, build_view, pick_starts, walk


@SAMPLERS.register("rare-chain")
def sample_rare_chains(
    engine: Engine,
    n: int,
    rng: np.random.Generator,
    *,
    min_hops: int = 3,
    max_hops: int = 6,
    attempts: int = 8,
    start_types: Iterable[str] | None = None,
    max_start_degree: int | None = None,
    relations: Iterable[str] | None = None,
    deny_relations: Iterable[str] | None = None,
    exclude: Exclude = None,
    tries: int = 4,
    max_per_pattern: float | None = None,
    advance: Callable[[int], None] | None = None,
) -> Collected:
    """n chains of min_hops..max_hops hops, each the longest of `attempts` walks from its anchor."""
    if not 1 <= min_hops <= max_hops <= MAX_HOPS:
        raise ConfigError(f"rare-chain: need 1 ≤ min_hops ≤ max_hops ≤ {MAX_HOPS}, got {min_hops} and {max_hops}")
    excluded = excluded_mask(engine, exclude)
    degree = engine.degree.astype(np.float64)
    view = build_view(
        engine, keys=relation_keys(engine, relations, deny_relations), excluded=excluded, weight=1.0 / np.maximum(degree, 1.0)
    )
    pool = start_pool(engine, view, start_types, excluded, "start type")
    limit = max_start_degree if max_start_degree is not None else int(np.median(view.degree[pool]))
    pool = pool[view.degree[pool] <= limit]
    if not len(pool):
        raise ConfigError(f"rare-chain: no start node has degree ≤ {limit}; raise max_start_degree")
    rarity = 1.0 / np.maximum(view.degree.astype(np.float64), 1.0)
    uses = np.zeros(engine.n_nodes, dtype=np.float64)

    def draw(_: int | None, size: int) -> tuple[list[PathBatch], Counter]:
        starts = np.repeat(pick_starts(pool, uses, size, rng, prior=rarity), attempts)
        walked = walk([view] * max_hops, starts, rng, tries=tries, keep_partial=True)
        best = _longest_per_anchor(walked, attempts)
        rejected = Counter(too_short=int((walked.length[best] < min_hops).sum()))
        best = best[walked.length[best] >= min_hops]
        batches = []
        for hops in range(min_hops, max_hops + 1):
            rows = best[walked.length[best] == hops]
            if len(rows):
                cut = Walked(
                    nodes=[column[rows] for column in walked.nodes[: hops + 1]],
                    positions=[column[rows] for column in walked.positions[:hops]],
                    length=walked.length[rows],
                    rows=rows,
                )
                batches.append(to_batch(cut, [view] * hops))
        return batches, rejected

    def accepted(batch: PathBatch) -> None:
        uses[:] += np.bincount(batch.nodes[:, 0], minlength=engine.n_nodes)

    quotas = Quotas({None: n}, max_per_pattern=share_cap(max_per_pattern, n))
    return collect(engine, quotas, draw, accepted=accepted, advance=advance)


def _longest_per_anchor(walked: Walked, attempts: int) -> np.ndarray:
    """Row of the longest walk in each block of `attempts` walks from one anchor (first on ties)."""
    lengths = walked.length.reshape(-1, attempts)
    return np.arange(lengths.shape[0]) * attempts + np.argmax(lengths, axis=1)
