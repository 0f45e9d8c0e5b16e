"""Hard negatives and `unique_answer` for a paths table sampled elsewhere (e.g. with Cypher in Neo4j).

The paths carry node ids, relation names and directions; given the snapshot the
graph came from, each hop is found among the engine's entries, and the paths get
the same proofs as paths the in-memory samplers draw.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from kgsynth.errors import ConfigError
from kgsynth.graph.engine import Engine
from kgsynth.sample.batch import PathBatch
from kgsynth.sample.negatives import flip_key, hard_negatives, negatives_column
from kgsynth.sample.paths import conform_paths
from kgsynth.sample.unique import unique_answers, unique_column


def prove_paths(
    paths: pl.DataFrame, engine: Engine, *, full: Engine | None = None, negatives: int = 3, seed: int = 0
) -> pl.DataFrame:
    """The paths with `negatives` and `unique_answer` filled in: candidates drawn on `engine`
    (the graph the paths come from), proven on `full` (default: `engine`)."""
    paths = conform_paths(paths)
    full = full or engine
    rng = np.random.default_rng(seed)
    parts = []
    framed = paths.with_row_index("_row")
    for hops in sorted(framed["hops"].unique().to_list()):
        part = framed.filter(pl.col("hops") == hops)
        batch = path_batch(engine, part)
        proven = hard_negatives(engine, full, batch, negatives, rng)
        verdict = unique_answers(engine, full, batch)
        parts.append(part.with_columns(negatives_column(full, proven), unique_column(verdict, batch.rows)))
    if not parts:
        return paths
    return pl.concat(parts).sort("_row").drop("_row").select(paths.columns)


def path_batch(engine: Engine, paths: pl.DataFrame) -> PathBatch:
    """Engine indices and entries of paths that all have the same hop count; a path the
    engine does not hold (unknown node, or a hop that is not an edge) is an error naming it."""
    rows, hops = paths.height, int(paths["hops"][0]) if paths.height else 0
    ids = paths["nodes"].explode()
    nodes = engine.indices_of(ids).reshape(rows, hops + 1)
    if (nodes < 0).any():
        row, at = (int(x[0]) for x in np.nonzero(nodes < 0))
        raise ConfigError(
            f"path '{paths['path_id'][row]}' names node '{ids[row * (hops + 1) + at]}', which snapshot "
            f"{engine.snapshot_hash[:12]} lacks; give the snapshot the graph was loaded from"
        )
    n_rel = len(engine.relation_names)
    rel = paths["relations"].explode().replace_strict(engine.relation_index, default=-1, return_dtype=pl.Int64).to_numpy()
    forward = paths["forward"].explode().to_numpy().astype(bool)
    u, v = nodes[:, :-1].ravel(), nodes[:, 1:].ravel()
    key = np.maximum(rel, 0) + np.where(forward, 0, n_rel)
    entry = engine.run_entries(engine.key_runs(u, key), v)
    symmetric = np.asarray(engine.symmetric)[np.maximum(rel, 0)] & (entry < 0)
    if symmetric.any():  # a symmetric edge may be stored either way round
        flipped = flip_key(key[symmetric], n_rel)
        entry[symmetric] = engine.run_entries(engine.key_runs(u[symmetric], flipped), v[symmetric])
    missing = (entry < 0) | (rel < 0)
    if missing.any():
        at = int(np.flatnonzero(missing)[0])
        row, hop = divmod(at, max(hops, 1))
        raise ConfigError(
            f"path '{paths['path_id'][row]}' hop {hop + 1} ({paths['relations'][row][hop]} between "
            f"'{paths['nodes'][row][hop]}' and '{paths['nodes'][row][hop + 1]}') is not an edge of snapshot "
            f"{engine.snapshot_hash[:12]}; give the snapshot the graph was loaded from"
        )
    return PathBatch(nodes.astype(np.int32), entry.reshape(rows, hops).astype(np.int64))
