"""Reviews in sqlite (history, two writers at once, validation, export), the review
figures of the card (Wilson interval, Cohen's kappa), and the stratified sample."""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from review_run import review_run, verified_items  # noqa: F401  (session fixture)

from kgsynth.errors import ConfigError, InputFormatError, SourceNotFoundError
from kgsynth.review.data import load_review_data, stratified_sample
from kgsynth.review.figures import cohen_kappa, review_figures, wilson_interval
from kgsynth.review.store import (
    REVIEWS_SCHEMA,
    ReviewStore,
    export_reviews,
    read_reviews,
    reviews_outdated,
)


@pytest.fixture()
def store(tmp_path: Path) -> ReviewStore:
    s = ReviewStore.of_run(tmp_path)
    yield s
    s.close()


# --- the store ---------------------------------------------------------------------------


def test_an_edit_keeps_the_earlier_decision_in_the_history(store: ReviewStore) -> None:
    first = store.save("dr.lee", "item-1", "accept")
    second = store.save("dr.lee", "item-1", "reject", "wrong_answer", "  the answer is a parent term  ")
    current = store.get("dr.lee", "item-1")
    assert (current.decision, current.reason, current.note, current.revision) == (
        "reject", "wrong_answer", "the answer is a parent term", 2,
    )
    assert current.first_reviewed_at == first.first_reviewed_at <= second.reviewed_at
    assert [(h.decision, h.revision) for h in store.history("dr.lee", "item-1")] == [("accept", 1), ("reject", 2)]
    assert store.get("someone else", "item-1") is None
    assert store.table().height == 1


def test_the_database_is_in_wal_mode(store: ReviewStore, tmp_path: Path) -> None:
    store.save("a", "x", "skip")
    with sqlite3.connect(tmp_path / "review" / "reviews.sqlite") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize(
    ("decision", "reason", "note", "message"),
    [
        ("maybe", None, "", "decision must be one of accept, reject, skip"),
        ("reject", None, "", "a rejection needs a reason"),
        ("reject", "because", "", "a rejection needs a reason"),
        ("reject", "other", "  ", "reason 'other' needs a note"),
        ("accept", "wrong_answer", "", "a reason goes with 'reject' only"),
        ("accept", None, "x" * 4001, "at most 4,000"),
    ],
)
def test_a_malformed_review_is_refused_and_nothing_is_written(
    store: ReviewStore, decision: str, reason: str | None, note: str, message: str
) -> None:
    store.save("a", "item", "accept")
    with pytest.raises(ValueError, match=message):
        store.save("a", "item", decision, reason, note)
    assert store.get("a", "item").decision == "accept"
    assert len(store.history("a", "item")) == 1


@pytest.mark.parametrize("name", ["", " ", "x" * 65, "a;drop table", "<b>"])
def test_reviewer_names_are_checked(store: ReviewStore, name: str) -> None:
    with pytest.raises(ConfigError, match="reviewer name"):
        store.save(name, "item", "accept")
    assert store.table().height == 0


def test_two_processes_write_at_once_and_nothing_is_lost(tmp_path: Path) -> None:
    """Two reviewers (two server processes) saving into one database at the same time."""
    script = textwrap.dedent(
        """
        import sys
        from kgsynth.review.store import ReviewStore
        store = ReviewStore.of_run(sys.argv[1])
        for i in range(150):
            store.save(sys.argv[2], f"item-{i}", "accept" if i % 3 else "reject", None if i % 3 else "fact_wrong")
            if i % 10 == 0:
                store.save(sys.argv[2], f"item-{i}", "skip")  # an edit
        """
    )
    writers = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), name]) for name in ("ann", "ben")]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    store = ReviewStore.of_run(tmp_path)
    table = store.table()
    assert table.height == 300
    assert Counter(table["reviewer"].to_list()) == {"ann": 150, "ben": 150}
    assert table.filter(pl.col("item_id") == "item-10")["decision"].to_list() == ["skip", "skip"]
    assert [h.decision for h in store.history("ben", "item-30")] == ["reject", "skip"]
    store.close()


def test_decisions_see_another_connections_writes(tmp_path: Path) -> None:
    one, two = ReviewStore.of_run(tmp_path), ReviewStore.of_run(tmp_path)
    one.save("a", "x", "accept")
    assert one.decisions("a") == {"x": "accept"}
    two.save("a", "y", "reject", "other", "unclear wording")
    two.save("a", "x", "skip")
    assert one.decisions("a") == {"x": "skip", "y": "reject"}
    one.close()
    two.close()


def test_a_corrupt_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "review" / "reviews.sqlite"
    path.parent.mkdir()
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(InputFormatError, match="reviews.sqlite: cannot open the review database"):
        ReviewStore(path)


# --- export ------------------------------------------------------------------------------


def test_export_writes_the_current_reviews_and_read_checks_them(store: ReviewStore, tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError, match="no reviews yet"):
        export_reviews(tmp_path / "elsewhere")
    store.save("a", "x", "accept")
    store.save("a", "x", "reject", "thinking_flawed")
    store.save("b", "x", "accept")
    assert reviews_outdated(tmp_path)
    path, frame = export_reviews(tmp_path)
    assert path == tmp_path / "review" / "reviews.parquet"
    assert not reviews_outdated(tmp_path)
    read = read_reviews(tmp_path)
    assert read.schema == pl.Schema(REVIEWS_SCHEMA)
    assert read.select("reviewer", "decision", "reason", "revision").rows() == [
        ("a", "reject", "thinking_flawed", 2), ("b", "accept", None, 1),
    ]
    store.save("b", "y", "skip")
    assert reviews_outdated(tmp_path)

    frame.drop("decision").write_parquet(path)
    with pytest.raises(InputFormatError, match=r"reviews.parquet: missing column\(s\) \['decision'\]"):
        read_reviews(tmp_path)
    frame.with_columns(pl.lit("yes").alias("decision")).write_parquet(path)
    with pytest.raises(InputFormatError, match="field 'decision': decision 'yes'"):
        read_reviews(tmp_path)
    path.write_bytes(b"PAR1 broken")
    with pytest.raises(InputFormatError, match="cannot read as parquet"):
        read_reviews(tmp_path)


# --- figures -----------------------------------------------------------------------------


def test_wilson_interval_matches_scipy_and_its_known_edges() -> None:
    from scipy.stats import binomtest

    for successes, trials in [(81, 263), (1, 3), (29, 30), (500, 1000)]:
        expected = binomtest(successes, trials).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson_interval(successes, trials) == (pytest.approx(expected.low), pytest.approx(expected.high))
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(1.96**2 / (10 + 1.96**2), abs=1e-4)
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_cohen_kappa_matches_the_textbook_and_scikit_learn() -> None:
    # the classic table: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no → kappa 0.4
    first = ["accept"] * 25 + ["reject"] * 25
    second = ["accept"] * 20 + ["reject"] * 5 + ["accept"] * 10 + ["reject"] * 15
    assert cohen_kappa(first, second) == pytest.approx(0.4)
    assert cohen_kappa(["accept"] * 5, ["accept"] * 5) is None  # chance agreement is 1
    metrics = pytest.importorskip("sklearn.metrics")
    second_shuffled = second[7:] + second[:7]
    assert cohen_kappa(first, second_shuffled) == pytest.approx(metrics.cohen_kappa_score(first, second_shuffled))


def test_review_figures_count_an_item_rejected_when_any_reviewer_rejects_it() -> None:
    rows = [
        ("ann", "i1", "accept"), ("ben", "i1", "accept"),
        ("ann", "i2", "accept"), ("ben", "i2", "reject"),
        ("ann", "i3", "reject"), ("ben", "i3", "reject"),
        ("ann", "i4", "skip"),
        ("ben", "i5", "accept"),
        ("ann", "r1", "accept"), ("ann", "r2", "reject"),  # items verification rejected
    ]
    frame = pl.DataFrame(
        [{"reviewer": r, "item_id": i, "decision": d, "reason": None, "note": "", "revision": 1,
          "sample": "n=5 seed=0" if r == "ann" else None, "first_reviewed_at": 0.0, "reviewed_at": 0.0}
         for r, i, d in rows],
        schema=REVIEWS_SCHEMA,
    )
    figures = review_figures(frame, ["i1", "i2", "i3", "i4", "i5", "i6"], ["r1", "r2"])
    assert (figures.items_reviewed, figures.items_rejected, figures.decisions) == (4, 2, 7)
    assert figures.accepted_share == 0.5
    assert figures.interval == wilson_interval(2, 4)
    assert figures.per_reviewer == [("ann", 3, 2), ("ben", 4, 2)]
    (pair,) = figures.agreement
    assert pair.reviewers == ("ann", "ben") and pair.items == 3
    assert pair.observed == pytest.approx(2 / 3)
    assert pair.kappa == pytest.approx(cohen_kappa(["accept", "accept", "reject"], ["accept", "reject", "reject"]))
    assert figures.verifier_rejected == (2, 1)
    assert figures.samples == ["n=5 seed=0"] and figures.skipped == 1


# --- the stratified sample ---------------------------------------------------------------


def test_the_sample_is_proportional_over_hops_and_patterns_and_seeded(review_run: Path) -> None:  # noqa: F811
    data = load_review_data(review_run)
    items = data.items
    accepted = items.filter(pl.col("status") == "accepted")
    sample = stratified_sample(items, 60, seed=3)
    assert len(sample.positions) == 60 == len(set(sample.positions.tolist()))
    picked = items[sample.positions.tolist()]
    assert set(picked["status"].to_list()) == {"accepted"}
    sizes = Counter(zip(accepted["hops"].to_list(), accepted["pattern"].to_list(), strict=True))
    got = Counter(zip(picked["hops"].to_list(), picked["pattern"].to_list(), strict=True))
    for stratum, size in sizes.items():
        quota = 60 * size / accepted.height
        assert math.floor(quota) <= got.get(stratum, 0) <= math.ceil(quota), stratum
    assert stratified_sample(items, 60, seed=3).positions.tolist() == sample.positions.tolist()
    assert stratified_sample(items, 60, seed=4).positions.tolist() != sample.positions.tolist()
    everything = stratified_sample(items, 10 * items.height, seed=0)
    assert sorted(everything.positions.tolist()) == sorted(items.with_row_index().filter(pl.col("status") == "accepted")["index"].to_list())
    with pytest.raises(ConfigError, match="at least 1"):
        stratified_sample(items, 0, seed=0)


def test_review_data_lists_accepted_then_rejected_items_with_their_splits(review_run: Path) -> None:  # noqa: F811
    data = load_review_data(review_run)
    expected = verified_items(review_run)
    assert data.items["id"].to_list() == expected["id"].to_list()
    assert data.items["status"].to_list() == expected["status"].to_list()
    # splits are the ones `kgsynth export` wrote (the demo pipeline ran its export stage)
    exported = {}
    for split in ("train", "validation", "test"):
        for f in (review_run / "dataset" / "data" / "default").glob(f"{split}-*.parquet"):
            exported.update(dict.fromkeys(pl.read_parquet(f, columns=["id"])["id"].to_list(), split))
    shown = dict(zip(data.items["id"].to_list(), data.items["split"].to_list(), strict=True))
    assert exported and all(shown[i] == s for i, s in exported.items())
    assert {shown[i] for i in data.items.filter(pl.col("status") == "rejected")["id"].to_list()} <= {"none"}
    # patterns are written as the sampler writes them in paths.parquet
    paths = dict(pl.read_parquet(review_run / "paths.parquet", columns=["path_id", "pattern"]).iter_rows())
    assert all(paths[p] == pattern for p, pattern in data.items.select("path_id", "pattern").iter_rows())


def test_a_run_without_verified_items_is_a_clear_error(review_run: Path, tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "run").mkdir()
    with pytest.raises(SourceNotFoundError, match=r"verified/accepted.parquet: missing; the review app shows verified items"):
        load_review_data(tmp_path / "run")
    with pytest.raises(SourceNotFoundError, match="no such run directory"):
        load_review_data(tmp_path / "nowhere")
