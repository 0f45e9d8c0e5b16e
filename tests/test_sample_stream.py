"""Sampling in shards, streamed to one file: the same bytes however the work is run, on the real HPO graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from test_cli_graph import _run
from test_engine import small_hpo

from kgsynth import pipeline
from kgsynth.config import RunConfig
from kgsynth.errors import ConfigError
from kgsynth.graph.engine import Engine, open_engine
from kgsynth.graph.snapshot import read_snapshot, write_snapshot
from kgsynth.rundir import RunDir
from kgsynth.sample import SampleProgress, sample_to_file, sample_with_stats
from kgsynth.sample.paths import ROW_GROUP_ROWS, read_paths, write_paths
from kgsynth.sample.shards import load_shard, save_shard


@pytest.fixture(scope="module")
def hpo(hpo_snapshot_dir: Path) -> Engine:
    return open_engine(read_snapshot(hpo_snapshot_dir))


@pytest.fixture(scope="module")
def small(hpo_snapshot_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    out = tmp_path_factory.mktemp("stream") / "small"
    write_snapshot(small_hpo(read_snapshot(hpo_snapshot_dir), diseases=60), out)
    return open_engine(read_snapshot(out))


def units(frame: pl.DataFrame) -> pl.Series:
    """One key per unit: the path's nodes and relations, or a convergent group's together."""
    key = pl.concat_str([pl.col("nodes").list.join(">"), pl.col("relations").list.join(">")], separator="|")
    if frame["group_id"].null_count() == frame.height:
        return frame.select(key.alias("unit"))["unit"]
    return frame.group_by("group_id", maintain_order=True).agg(key.sort().str.join("&").alias("unit"))["unit"]


@pytest.mark.parametrize(
    ("strategy", "params"),
    [("walk", {"hops": "2-3"}), ("convergent", {"hops": "1-2", "answer_types": ["disease"]})],
)
def test_streamed_file_is_the_table_in_memory_byte_for_byte(hpo: Engine, tmp_path: Path, strategy: str, params: dict) -> None:
    streamed = tmp_path / "streamed.parquet"
    stats = sample_to_file(hpo, streamed, strategy, 3000, 7, negatives=2, shard_size=800, **params)
    frame, again = sample_with_stats(hpo, strategy, 3000, 7, negatives=2, shard_size=800, **params)
    assert streamed.read_bytes() == write_paths(frame, tmp_path / "in_memory.parquet").read_bytes()
    assert stats.shards == again.shards >= 4 and stats.produced == frame.height == 3000
    read = read_paths(streamed)
    assert read.equals(frame)
    assert read["path_id"].to_list() == [f"{strategy}-7-{i}" for i in range(3000)]  # numbered in file order
    assert units(read).is_unique().all()  # no unit twice, across shards
    if strategy == "convergent":
        assert (read.group_by("group_id").len()["len"] == 2).all()
    assert stats.negatives_total == read["negatives"].list.len().sum() > 0


def test_shards_are_drawn_alone_and_other_shard_sizes_draw_other_paths(hpo: Engine, tmp_path: Path) -> None:
    one = sample_with_stats(hpo, "walk", 2000, 3, hops=2, negatives=0, shard_size=500)[0]
    two = sample_with_stats(hpo, "walk", 2000, 3, hops=2, negatives=0, shard_size=500)[0]
    assert one.equals(two)
    # the first 500 rows are shard 0 alone: a run of 500 draws exactly them
    alone = sample_with_stats(hpo, "walk", 500, 3, hops=2, negatives=0, shard_size=500)[0]
    assert alone["nodes"].equals(one["nodes"].head(500))
    other = sample_with_stats(hpo, "walk", 2000, 3, hops=2, negatives=0, shard_size=1000)[0]
    assert not other["nodes"].equals(one["nodes"])


def test_repeats_across_shards_are_drawn_again(small: Engine) -> None:
    # 1-hop walks on a small graph: independent shards draw many of the same edges
    frame, stats = sample_with_stats(small, "walk", 900, 2, hops=1, negatives=0, shard_size=150)
    assert stats.rejections["duplicate"] > 0 and stats.refill_shards >= 1
    assert stats.by_hops == {1: 900} and frame.height == 900 and not stats.shortfall
    assert units(frame).is_unique().all()


def test_row_groups_have_one_size_whatever_the_shards(hpo: Engine, tmp_path: Path) -> None:
    out = tmp_path / "big.parquet"
    n = ROW_GROUP_ROWS + 5_000
    sample_to_file(hpo, out, "walk", n, 1, hops=2, negatives=0, shard_size=40_000)
    meta = pq.ParquetFile(out).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [ROW_GROUP_ROWS, 5_000]


def test_a_run_that_fails_midway_leaves_the_old_file_and_no_temp(hpo: Engine, tmp_path: Path) -> None:
    out = tmp_path / "paths.parquet"
    sample_to_file(hpo, out, "walk", 300, 1, hops=2, negatives=0)
    before = out.read_bytes()
    calls = []

    def written(count: int) -> None:
        calls.append(count)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C after the first shard is written

    with pytest.raises(KeyboardInterrupt):
        sample_to_file(hpo, out, "walk", 3000, 2, hops=2, negatives=0, shard_size=1000, progress=SampleProgress(written=written))
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["paths.parquet"]
    with pytest.raises(ConfigError, match="seed must be 0 or more"):
        sample_to_file(hpo, tmp_path / "neg.parquet", "walk", 10, -1)
    assert not (tmp_path / "neg.parquet").exists()


def test_a_shard_survives_the_disk_as_it_was(hpo: Engine, tmp_path: Path) -> None:
    from kgsynth.sample import plan_sample

    run = plan_sample(hpo, "walk", 400, 5, hops="2-3", negatives=2, unique_answer=False)
    shard = run.shard(0)
    back = load_shard(save_shard(shard, tmp_path / "s.npz"))
    assert back.index == 0 and back.rejections == shard.rejections and back.shortfall == shard.shortfall
    for a, b in zip(shard.batches, back.batches, strict=True):
        assert np.array_equal(a.nodes, b.nodes) and np.array_equal(a.entries, b.entries) and a.per_unit == b.per_unit
    assert all(np.array_equal(a, b) for a, b in zip(shard.negative_nodes, back.negative_nodes, strict=True))
    (tmp_path / "bad.npz").write_bytes(b"not a shard")
    with pytest.raises(Exception, match="unreadable sampling shard"):
        load_shard(tmp_path / "bad.npz")


def test_the_stage_in_parts_in_any_order_writes_the_same_bytes(hpo_snapshot_dir: Path, tmp_path: Path) -> None:
    config = RunConfig.model_validate({
        "name": "parts", "source": {"format": "hpo"}, "shatter": {"enabled": False},
        "sample": {"n": 2500, "hops": "2-3", "seed": 4, "negatives": 1, "shard_size": 1000},
    })  # fmt: skip
    run = RunDir(tmp_path / "run")
    write_snapshot(read_snapshot(hpo_snapshot_dir), run.snapshot)  # what the load stage makes
    begun = pipeline.begin_stage("sample", config, run)
    assert begun.parts == 3
    for part in reversed(range(begun.parts)):  # as a cluster might finish them
        pipeline.run_part("sample", config, run, part)
    first = pipeline.shard_file(run, 0).stat().st_mtime_ns
    pipeline.shard_file(run, 2).unlink()  # a shard lost with a killed worker
    assert pipeline.run_part("sample", config, run, 0) == {"shard": 0, "kept": True}
    assert pipeline.shard_file(run, 0).stat().st_mtime_ns == first  # a finished shard is not made again
    with pytest.raises(Exception, match="a sampling shard has not run"):
        pipeline.finish_stage("sample", config, run, begun)
    pipeline.run_part("sample", config, run, 2)
    result = pipeline.finish_stage("sample", config, run, begun)
    assert result.summary["paths"] == 2500 and not (run.root / "sample.shards").exists()

    alone = tmp_path / "alone.parquet"
    sample_to_file(open_engine(read_snapshot(run.snapshot)), alone, "walk", 2500, 4, hops=[2, 3], negatives=1, shard_size=1000)
    assert run.paths.read_bytes() == alone.read_bytes()
    assert pipeline.is_current("sample", config, run)


def test_sample_command_streams_in_shards_and_says_so(hpo_snapshot_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "p.parquet"
    args = ["sample", str(hpo_snapshot_dir), "-n", "3000", "--hops", "2", "--negatives", "0", "--shard-size", "1000", "--seed", "3"]
    code, err = _run(capsys, *args, "-o", str(out))
    assert code == 0, err
    err = " ".join(err.split())  # the console wraps long lines
    assert "sampled 3,000 walk paths" in err and "3 shards" in err and "paths/s" in err
    assert read_paths(out).height == 3000
    code, err = _run(capsys, *args[:-2], "--seed", "-1", "-o", str(tmp_path / "neg.parquet"))
    assert code == 2 and not (tmp_path / "neg.parquet").exists()
