"""Benchmark: export and report time for a run of N items on the HPO graph (no model).

Paths come from the `walk` sampler with random distractors of the answer's type,
items from the template writer; every item is taken as accepted (sampling,
distractor quality and verification are not what is measured here). Timed: reading the
run and planning the splits, building the three configurations (explicit
Features), writing the export folder (parquet, save_to_disk, JSONL, card), and the
quality report with its plots.

    python bench/bench_export.py --paths 20000

Prints figures only, with the load average, because the numbers are only as quiet
as the machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from kgsynth.export.build import prepare
from kgsynth.export.report import write_report
from kgsynth.export.writer import export_dataset, quiet_datasets
from kgsynth.generate import WRITERS, generate_items
from kgsynth.generate.item import VERDICT_STRUCT
from kgsynth.graph.engine import open_engine
from kgsynth.graph.snapshot import read_snapshot, write_snapshot
from kgsynth.rundir import RunDir
from kgsynth.sample import sample_paths


def random_negatives(engine, paths: pl.DataFrame, k: int = 3, seed: int = 1) -> pl.DataFrame:
    """Distractors drawn at random from the answer's type: cheap, and enough to exercise export."""
    rng = np.random.default_rng(seed)
    by_type = [np.flatnonzero(engine.node_type == t) for t in range(len(engine.type_names))]
    negatives = []
    for nodes in paths["nodes"].to_list():
        answer = engine.index_of(nodes[-1])
        pool = by_type[engine.node_type[answer]]
        picks = [int(i) for i in rng.choice(pool, size=k + len(nodes), replace=False) if engine.node_ids[i] not in nodes]
        negatives.append([engine.node_ids[i] for i in picks[:k]])
    return paths.with_columns(pl.Series("negatives", negatives, dtype=pl.List(pl.String)))


def make_run(root: Path, snapshot_dir: Path | None, n_paths: int) -> RunDir:
    run = RunDir(root)
    root.mkdir(parents=True, exist_ok=True)
    if snapshot_dir is None:
        from kgsynth.loaders import load

        write_snapshot(load("hpo", []), run.snapshot)
    else:
        run.snapshot.symlink_to(snapshot_dir.resolve(), target_is_directory=True)
    full = read_snapshot(run.snapshot)
    engine = open_engine(full)
    paths = random_negatives(engine, sample_paths(engine, "walk", n=n_paths, seed=1, hops="1-4", negatives=0))
    paths.write_parquet(run.paths)
    generate_items(paths, full, writer=WRITERS.get("template")(None), out=run.items)
    items = pl.read_parquet(run.items)
    run.verified.mkdir(exist_ok=True)
    items.with_columns(pl.lit([], dtype=pl.List(VERDICT_STRUCT)).alias("verdicts")).write_parquet(
        run.verified / "accepted.parquet"
    )
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=20000)
    parser.add_argument("--snapshot", type=Path, help="an HPO snapshot directory (default: load one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        run = make_run(Path(tmp) / "run", args.snapshot, args.paths)
        items = pl.scan_parquet(run.verified / "accepted.parquet").select(pl.len()).collect().item()
        print(f"run of {items:,} items from {args.paths:,} paths made in {time.perf_counter() - started:.1f}s")

        clock = time.perf_counter()
        prepared = prepare(run.root)
        planned = time.perf_counter() - clock
        clock = time.perf_counter()
        with quiet_datasets():
            configs = prepared.configs()
        built = time.perf_counter() - clock
        rows = sum(d.num_rows for dd in configs.values() for d in dd.values())
        print(f"read + split plan: {planned:.2f}s ({items / planned:,.0f} items/s), {prepared.plan.groups:,} groups")
        print(f"three configurations: {built:.2f}s ({rows:,} rows, {rows / built:,.0f} rows/s)")

        clock = time.perf_counter()
        export_dataset(run.root, Path(tmp) / "dataset")
        exported = time.perf_counter() - clock
        size = sum(p.stat().st_size for p in (Path(tmp) / "dataset").rglob("*") if p.is_file())
        print(f"export (parquet + save_to_disk + jsonl + card): {exported:.2f}s, {size / 1e6:,.1f} MB written")

        clock = time.perf_counter()
        write_report(run.root)
        print(f"report (6 plots): {time.perf_counter() - clock:.2f}s")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
