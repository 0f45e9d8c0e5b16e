"""Sampling yield: hard negatives and unique answers on a PrimeKG-like graph, cross-checked by verification.

    python bench/bench_sample_yield.py [--snapshot /work/bench_data/primekg_snapshot] [--paths 20000]
        [--verify 3000]

Samples 3-hop walks from diseases, times `hard_negatives` (3 per path) and
`unique_answers`, then makes template items for the first `--verify` paths and
runs verification's pattern check on them: how many MCQ items it rejects
DISTRACTOR_VALID (a negative the sampler failed to rule out) and whether every
open item's ANSWER_NOT_UNIQUE verdict agrees with the path's `unique_answer`.
Prints figures and the machine's load, which skews them on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshot", type=Path, default=Path("/work/bench_data/primekg_snapshot"))
    parser.add_argument("--paths", type=int, default=20_000)
    parser.add_argument("--verify", type=int, default=3_000)
    parser.add_argument("--start-type", default="disease")
    args = parser.parse_args()

    from kgsynth.generate import WRITERS, generate_items
    from kgsynth.graph.engine import open_engine
    from kgsynth.graph.snapshot import read_snapshot
    from kgsynth.sample import sample_with_stats
    from kgsynth.sample.batch import PathBatch
    from kgsynth.sample.negatives import hard_negatives
    from kgsynth.sample.unique import UNIQUE, UNKNOWN, unique_answers
    from kgsynth.sample.walk import sample_walks
    from kgsynth.verify import verify_items

    print(f"snapshot {args.snapshot}  cores {os.cpu_count()}  load {os.getloadavg()[0]:.1f}")
    snapshot = read_snapshot(args.snapshot)
    engine = open_engine(snapshot)
    made = sample_walks(engine, args.paths, np.random.default_rng(8), hops=3, start_types=[args.start_type])
    batch = PathBatch.concat(made.batches)
    started, cpu = time.perf_counter(), time.process_time()
    proven = hard_negatives(engine, engine, batch, 3, np.random.default_rng(8))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"hard negatives: {batch.rows:,} paths in {wall:.2f} s ({batch.rows / wall:,.0f} paths/s, {batch.rows / cpu:,.0f}/cpu-s); "
          f"{(proven.counts == 0).mean():.1%} without any, {proven.counts.mean():.2f} per path")
    spread = np.bincount(proven.counts, minlength=4)
    print("paths with 0/1/2/3 negatives: " + " / ".join(f"{count:,}" for count in spread[:4]))
    started = time.perf_counter()
    verdict = unique_answers(engine, engine, batch)
    wall = time.perf_counter() - started
    print(f"unique answers: {wall:.2f} s ({batch.rows / wall:,.0f} paths/s); unique {(verdict == UNIQUE).mean():.1%}, "
          f"unknown {(verdict == UNKNOWN).mean():.1%}")

    paths, _ = sample_with_stats(engine, "walk", args.verify, 3, hops=3, start_types=[args.start_type])
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "items.parquet"
        # open items of every path, also those marked not unique, so verification judges them all
        generate_items(paths.with_columns(pl.lit(None, dtype=pl.Boolean).alias("unique_answer")), snapshot,
                       writer=WRITERS.get("template")(None), out=out)
        items = pl.read_parquet(out)
    started = time.perf_counter()
    result = verify_items(items, snapshot, checks=["edges", "answer", "pattern"])
    print(f"verified {items.height:,} items in {time.perf_counter() - started:.1f} s")
    judged = pl.concat([
        result.accepted.select("path_id", "kind", pl.lit([], dtype=pl.List(pl.String)).alias("reasons")),
        result.rejected.select("path_id", "kind", "reasons"),
    ]).join(paths.select("path_id", "unique_answer"), on="path_id")
    mcq = judged.filter(pl.col("kind") == "mcq")
    print(f"MCQ: {mcq.height:,} items, DISTRACTOR_VALID {mcq['reasons'].list.contains('DISTRACTOR_VALID').sum():,}")
    open_items = judged.filter(pl.col("kind") == "open").with_columns(
        pl.col("reasons").list.contains("ANSWER_NOT_UNIQUE").alias("not_unique")
    )
    table = open_items.group_by("unique_answer", "not_unique").len().sort("unique_answer", "not_unique")
    print("open items by the path's unique_answer and verification's ANSWER_NOT_UNIQUE:")
    for flag, rejected, count in table.iter_rows():
        print(f"  unique_answer {flag!s:<5}  rejected ANSWER_NOT_UNIQUE {rejected!s:<5}  {count:,}")
    print(f"load after {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
