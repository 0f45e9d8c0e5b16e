"""RELATION_MISSTATED reaches the quality report's rejection table and plot like every reason code."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import polars as pl
from test_export_rundir import export_run  # noqa: F401  (session fixture)

from kgsynth.export import write_report
from kgsynth.export.inputs import read_run
from kgsynth.export.stats import run_stats
from kgsynth.graph.snapshot import read_snapshot
from kgsynth.rundir import RunDir
from kgsynth.verify import verify_items, write_verified
from kgsynth.verify.defects import negated_relation
from kgsynth.verify.index import graph_index


def test_misstated_relations_are_counted_and_plotted(export_run: Path, tmp_path: Path) -> None:  # noqa: F811
    root = tmp_path / "run"
    shutil.copytree(export_run, root, symlinks=True)
    run = RunDir(root)
    full = read_snapshot(run.snapshot)
    index = graph_index(full)
    accepted = set(pl.read_parquet(run.verified / "accepted.parquet")["id"].to_list())
    items = pl.read_parquet(run.items)
    rng = random.Random(0)
    told = {}
    rows = []
    for item in items.to_dicts():
        if item["id"] in accepted and len(told) < 3:
            item = negated_relation(item, index, rng) or item
            told[item["id"]] = item["thinking"]
        rows.append(item)
    pl.DataFrame(rows, schema=items.schema).write_parquet(run.items)
    write_verified(verify_items(pl.read_parquet(run.items), full, hubs=run.pruned / "hubs.json"), run.verified)

    stats = run_stats(read_run(root))
    assert stats.rejections["verify: graph"]["RELATION_MISSTATED"] == 3
    report = write_report(root, tmp_path / "report").read_text(encoding="utf-8")
    assert "| verify: graph | RELATION_MISSTATED | 3 |" in report
    assert (tmp_path / "report" / "rejections.png").stat().st_size > 10_000
