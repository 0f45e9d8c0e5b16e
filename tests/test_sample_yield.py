"""Sampling yield: hard negatives and `unique_answer` read the pattern exactly as verification does.

Cross-checked against `verify_items` on template items built from the sampled
paths, on the HPO graph and on a small PrimeKG-like graph whose symmetric
relations (protein_protein, drug_drug, …) are where the two used to disagree.
`tests/data/primekg/kg_scale0.001.csv.gz` is the output of
`python ../shared/tools/make_primekg_like.py --scale 0.001 --seed 7`, gzipped.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from kgsynth.generate import WRITERS, generate_items
from kgsynth.graph.engine import open_engine
from kgsynth.graph.snapshot import read_snapshot, write_snapshot
from kgsynth.sample import sample_with_stats
from kgsynth.sample.paths import read_paths, write_paths
from kgsynth.verify import verify_items

PRIMEKG_LIKE = Path(__file__).parent / "data" / "primekg" / "kg_scale0.001.csv.gz"


@pytest.fixture(scope="module")
def primekg_like(tmp_path_factory):
    from kgsynth.loaders import load

    where = tmp_path_factory.mktemp("primekg_like")
    csv = where / "kg.csv"
    csv.write_bytes(gzip.decompress(PRIMEKG_LIKE.read_bytes()))
    write_snapshot(load("primekg", [csv]), where / "snapshot")
    return read_snapshot(where / "snapshot")


@pytest.fixture(scope="module")
def hpo(hpo_snapshot_dir):
    return read_snapshot(hpo_snapshot_dir)


def verdicts(tmp: Path, paths: pl.DataFrame, snapshot, kinds=("mcq", "open")) -> pl.DataFrame:
    """Template items for every path (open ones too, whatever unique_answer says), judged by the pattern check:
    path_id, kind, unique_answer, and the reasons verification gave."""
    unmarked = paths.with_columns(pl.lit(None, dtype=pl.Boolean).alias("unique_answer"))
    out = generate_items(unmarked, snapshot, writer=WRITERS.get("template")(None), out=tmp / "items.parquet", kinds=kinds).out
    result = verify_items(pl.read_parquet(out), snapshot, checks=["edges", "answer", "pattern"])
    judged = pl.concat([
        result.accepted.select("path_id", "kind", pl.lit([], dtype=pl.List(pl.String)).alias("reasons")),
        result.rejected.select("path_id", "kind", "reasons"),
    ])
    return judged.join(paths.select("path_id", "unique_answer"), on="path_id")


def test_proven_negatives_never_satisfy_the_pattern_with_symmetric_hops_either_way(tmp_path, primekg_like):
    engine = open_engine(primekg_like)
    symmetric = {name for name, flag in zip(engine.relation_names, engine.symmetric.tolist(), strict=True) if flag}
    paths = sample_with_stats(engine, "walk", 1000, 0, hops="2-3")[0]
    through_symmetric = paths.filter(pl.col("relations").list.eval(pl.element().is_in(list(symmetric))).list.any())
    assert through_symmetric.height > 200  # the case that used to slip through is well represented
    judged = verdicts(tmp_path, paths, primekg_like, kinds=["mcq"])
    assert judged.height > 300
    valid = judged.filter(pl.col("reasons").list.contains("DISTRACTOR_VALID"))
    assert valid.height == 0, valid.head(3).to_dicts()


@pytest.mark.parametrize("graph", ["hpo", "primekg_like"])
def test_unique_answer_agrees_with_verification_of_open_items(tmp_path, graph, request):
    snapshot = request.getfixturevalue(graph)
    paths = sample_with_stats(open_engine(snapshot), "walk", 600, 1, hops="1-3")[0]
    assert paths["unique_answer"].null_count() == 0
    open_items = verdicts(tmp_path, paths, snapshot, kinds=["open"]).with_columns(
        pl.col("reasons").list.contains("ANSWER_NOT_UNIQUE").alias("not_unique")
    )
    flagged = open_items.filter(pl.col("unique_answer"))
    refused = open_items.filter(~pl.col("unique_answer"))
    assert flagged.height >= 10 and refused.height >= 10
    assert not flagged["not_unique"].any()  # a path marked unique never makes an ANSWER_NOT_UNIQUE item
    assert refused["not_unique"].all()  # and one marked not unique always would


def test_unique_answer_option_keeps_only_open_question_ready_paths(tmp_path, hpo):
    engine = open_engine(hpo)
    frame, stats = sample_with_stats(engine, "walk", 80, 2, hops="2-3", unique_answer=True)
    assert frame.height == 80 and frame["unique_answer"].all()
    assert stats.rejections["answer_not_unique"] > 80  # most HPO walks reach several ends
    assert stats.unique_answers == 80 and not stats.shortfall
    assert stats.by_hops == {2: 40, 3: 40}  # each hop count keeps its quota, though 3-hop answers are rarer
    assert frame.select(pl.struct("nodes", "relations", "forward").is_unique().all()).item()
    again, _ = sample_with_stats(engine, "walk", 80, 2, hops="2-3", unique_answer=True)
    assert again.equals(frame)  # deterministic for a seed
    judged = verdicts(tmp_path, frame, hpo, kinds=["open"])
    assert judged.height > 40 and not judged["reasons"].list.contains("ANSWER_NOT_UNIQUE").any()


def test_unique_answer_stays_null_without_negatives_and_old_paths_files_read(tmp_path, hpo):
    frame, stats = sample_with_stats(open_engine(hpo), "walk", 50, 0, hops=2, negatives=0)
    assert frame["unique_answer"].null_count() == 50 and stats.unique_answers == 0
    old = tmp_path / "old.parquet"
    write_paths(frame, tmp_path / "new.parquet")
    pl.read_parquet(tmp_path / "new.parquet").drop("unique_answer").write_parquet(old)
    read = read_paths(old)
    assert read.schema["unique_answer"] == pl.Boolean and read["unique_answer"].null_count() == 50


def test_unique_answer_on_a_pruned_graph_is_judged_on_the_full_one(hpo):
    full = open_engine(hpo)
    from kgsynth.prune import shatter

    pruned = open_engine(shatter(hpo, k=32, pairs=300, seed=0, budget=5).snapshot)
    on_full, _ = sample_with_stats(pruned, "walk", 200, 4, hops=2, full=full)
    on_pruned, _ = sample_with_stats(pruned, "walk", 200, 4, hops=2)
    assert on_full["path_id"].equals(on_pruned["path_id"])
    # the full graph has every edge of the pruned one: a unique answer there is unique here too, not the reverse
    both = np.asarray(on_full["unique_answer"].to_numpy(), dtype=bool)
    assert not (both & ~np.asarray(on_pruned["unique_answer"].to_numpy(), dtype=bool)).any()


def test_prove_paths_gives_a_paths_table_from_elsewhere_the_same_proofs(tmp_path, primekg_like):
    from kgsynth.errors import ConfigError
    from kgsynth.sample.prove import prove_paths

    engine = open_engine(primekg_like)
    sampled = sample_with_stats(engine, "walk", 400, 5, hops="1-3")[0]
    bare = sampled.with_columns(pl.lit([], dtype=pl.List(pl.String)).alias("negatives"), pl.lit(None, dtype=pl.Boolean).alias("unique_answer"))
    proven = prove_paths(bare, engine, negatives=3, seed=5)
    assert proven.drop("negatives", "unique_answer").equals(bare.drop("negatives", "unique_answer"))  # order kept
    assert proven["unique_answer"].equals(sampled["unique_answer"])
    with_negatives = (proven["negatives"].list.len() > 0).mean()
    assert with_negatives > 0.4 and abs(with_negatives - (sampled["negatives"].list.len() > 0).mean()) < 0.1
    judged = verdicts(tmp_path, proven, primekg_like, kinds=["mcq"])
    assert judged.height > 150 and not judged["reasons"].list.contains("DISTRACTOR_VALID").any()

    # hops of non-symmetric relations walked the wrong way round
    broken = bare.filter(~pl.col("pattern").str.contains(" -[a-z_]+- ")).head(3)
    assert broken.height == 3
    with pytest.raises(ConfigError, match="is not an edge of snapshot"):
        prove_paths(broken.with_columns(pl.col("forward").list.eval(~pl.element())), engine)
    with pytest.raises(ConfigError, match="lacks"):
        prove_paths(bare.head(1).with_columns(pl.lit(["primekg:drug:nope", "x"]).alias("nodes"), pl.lit(1).alias("hops")).with_columns(pl.col("relations").list.head(1), pl.col("forward").list.head(1)), engine)


def test_most_hpo_paths_get_a_full_set_of_proven_negatives_deterministically(tmp_path, hpo):
    engine = open_engine(hpo)
    paths = sample_with_stats(engine, "walk", 400, 3, hops=3)[0]
    counts = paths["negatives"].list.len()
    # phenotype patterns reach most nodes near the answer; hierarchy cousins and more rounds
    # for short paths lift this share from ~35% to ~80%
    assert (counts == 3).mean() > 0.65
    again = sample_with_stats(engine, "walk", 400, 3, hops=3)[0]
    assert again["negatives"].equals(paths["negatives"])
    judged = verdicts(tmp_path, paths, hpo, kinds=["mcq"])
    assert judged.height > 250 and not judged["reasons"].list.contains("DISTRACTOR_VALID").any()


def test_cousins_share_an_ancestor_in_a_hierarchy_of_their_own_type(hpo):
    from kgsynth.sample.frontier import expand, hop_ranges
    from kgsynth.sample.negatives import _cousin

    engine = open_engine(hpo)
    phenotype = engine.type_index["phenotype"]
    start = np.flatnonzero(np.asarray(engine.node_type) == phenotype)[:3000].astype(np.int64)
    cousin = _cousin(engine, start, np.random.default_rng(0), {})
    found = cousin >= 0
    assert found.mean() > 0.5
    assert (np.asarray(engine.node_type)[cousin[found]] == phenotype).all()
    start, cousin = start[found], cousin[found]
    is_a = engine.relation_index["is_a"]
    shares = np.zeros(len(start), dtype=bool)
    for key in (is_a, is_a + len(engine.relation_names)):  # up the hierarchy, or down it
        keys = (np.full(len(start), key), np.full(len(start), -1))
        group = np.arange(len(start))
        a_group, a_node, x_group, x_node = group, start.astype(np.int32), group, cousin.astype(np.int32)
        for _ in range(3):
            a_group, a_node = expand(engine, a_group, hop_ranges(engine, a_node, (keys[0][a_group], keys[1][a_group])), np.ones(len(a_group), bool))
            x_group, x_node = expand(engine, x_group, hop_ranges(engine, x_node, (keys[0][x_group], keys[1][x_group])), np.ones(len(x_group), bool))
            met = np.intersect1d(a_group.astype(np.int64) * engine.n_nodes + a_node, x_group.astype(np.int64) * engine.n_nodes + x_node)
            shares[met // engine.n_nodes] = True
    assert shares.all()
