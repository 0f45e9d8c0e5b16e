"""Expert reviews, durably: `RUN_DIR/review/reviews.sqlite`.

One current row per (reviewer, item) in `reviews`, and every decision ever saved in
`review_events`, so an edit never loses what was there before. The database is in
WAL mode with a busy timeout, so two reviewers (one server or two) can save at the
same time. Each save is one transaction that writes both tables.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl

from kgsynth.atomic import write_parquet_atomic
from kgsynth.errors import ConfigError, InputFormatError, SourceNotFoundError
from kgsynth.rundir import RunDir

Decision = Literal["accept", "reject", "skip"]
DECISIONS: tuple[str, ...] = ("accept", "reject", "skip")

# The fixed list a reviewer picks a rejection reason from (code, what the page shows).
REJECT_REASONS: dict[str, str] = {
    "wrong_answer": "the answer is wrong",
    "fact_wrong": "a fact on the path is wrong (the graph is wrong)",
    "distractor_correct": "a distractor is also a correct answer",
    "question_unclear": "the question is ambiguous or unclear",
    "thinking_flawed": "the thinking path does not support the answer",
    "answer_leaked": "the question gives the answer away",
    "not_reasoning": "trivial, or not a meaningful question",
    "other": "other (say what in the note)",
}
NOTE_MAX = 4000
REVIEWER_PATTERN = re.compile(r"^[\w.@ -]{1,64}$")

REVIEW_DIR = "review"
DATABASE = "reviews.sqlite"
EXPORT = "reviews.parquet"

REVIEWS_SCHEMA: dict[str, pl.DataType] = {
    "reviewer": pl.String(),
    "item_id": pl.String(),
    "decision": pl.String(),
    "reason": pl.String(),
    "note": pl.String(),
    "revision": pl.Int64(),  # 1 for the first decision, +1 per edit
    "sample": pl.String(),  # the stratified sample the reviewer worked through, e.g. "n=200 seed=0"
    "first_reviewed_at": pl.Float64(),  # unix seconds
    "reviewed_at": pl.Float64(),
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reviews (
    reviewer TEXT NOT NULL,
    item_id TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('accept', 'reject', 'skip')),
    reason TEXT,
    note TEXT NOT NULL DEFAULT '',
    revision INTEGER NOT NULL,
    sample TEXT,
    first_reviewed_at REAL NOT NULL,
    reviewed_at REAL NOT NULL,
    PRIMARY KEY (reviewer, item_id)
);
CREATE TABLE IF NOT EXISTS review_events (
    event INTEGER PRIMARY KEY AUTOINCREMENT,
    reviewer TEXT NOT NULL,
    item_id TEXT NOT NULL,
    decision TEXT NOT NULL,
    reason TEXT,
    note TEXT NOT NULL DEFAULT '',
    revision INTEGER NOT NULL,
    sample TEXT,
    recorded_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS review_events_item ON review_events (reviewer, item_id);
"""


@dataclass(frozen=True)
class Review:
    reviewer: str
    item_id: str
    decision: str
    reason: str | None
    note: str
    revision: int
    sample: str | None
    first_reviewed_at: float
    reviewed_at: float


def check_reviewer(name: str) -> str:
    name = name.strip()
    if not REVIEWER_PATTERN.match(name):
        raise ConfigError(
            f"reviewer name {name!r}: use 1 to 64 letters, digits, spaces or . _ - @ (e.g. 'dr.lee')"
        )
    return name


def check_decision(decision: str, reason: str | None, note: str) -> tuple[str | None, str]:
    """The (reason, note) to store, or a ValueError saying what is wrong with the review."""
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
    note = note.strip()
    if len(note) > NOTE_MAX:
        raise ValueError(f"note is {len(note):,} characters; at most {NOTE_MAX:,}")
    if decision != "reject":
        if reason:
            raise ValueError(f"a reason goes with 'reject' only, got reason {reason!r} for {decision!r}")
        return None, note
    if reason not in REJECT_REASONS:
        raise ValueError(f"a rejection needs a reason from {', '.join(REJECT_REASONS)}, got {reason!r}")
    if reason == "other" and not note:
        raise ValueError("reason 'other' needs a note saying what is wrong")
    return reason, note


class ReviewStore:
    """The reviews of one run directory. Thread-safe: one connection behind a lock."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # a saved review survives a power cut
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise InputFormatError(f"cannot open the review database: {exc}", file=self.path) from exc
        self._lock = threading.Lock()
        self._cache: dict[str, dict[str, str]] = {}
        self._version: int | None = None

    @classmethod
    def of_run(cls, run_dir: str | Path) -> ReviewStore:
        return cls(RunDir(Path(run_dir)).root / REVIEW_DIR / DATABASE)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def save(
        self,
        reviewer: str,
        item_id: str,
        decision: str,
        reason: str | None = None,
        note: str = "",
        *,
        sample: str | None = None,
    ) -> Review:
        """Record a decision (a new one, or an edit that keeps the old one in `review_events`)."""
        reviewer = check_reviewer(reviewer)
        reason, note = check_decision(decision, reason, note)
        now = time.time()
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    "SELECT revision, first_reviewed_at FROM reviews WHERE reviewer = ? AND item_id = ?",
                    (reviewer, item_id),
                ).fetchone()
                revision, first = (row[0] + 1, row[1]) if row else (1, now)
                db.execute(
                    "INSERT OR REPLACE INTO reviews VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (reviewer, item_id, decision, reason, note, revision, sample, first, now),
                )
                db.execute(
                    "INSERT INTO review_events (reviewer, item_id, decision, reason, note, revision, sample, recorded_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (reviewer, item_id, decision, reason, note, revision, sample, now),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            if reviewer in self._cache:
                self._cache[reviewer][item_id] = decision
        return Review(reviewer, item_id, decision, reason, note, revision, sample, first, now)

    def get(self, reviewer: str, item_id: str) -> Review | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM reviews WHERE reviewer = ? AND item_id = ?", (reviewer, item_id)
            ).fetchone()
        return Review(*row) if row else None

    def history(self, reviewer: str, item_id: str) -> list[Review]:
        """Every decision this reviewer saved for the item, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT reviewer, item_id, decision, reason, note, revision, sample, recorded_at, recorded_at"
                " FROM review_events WHERE reviewer = ? AND item_id = ? ORDER BY event",
                (reviewer, item_id),
            ).fetchall()
        return [Review(*row) for row in rows]

    def decisions(self, reviewer: str) -> dict[str, str]:
        """item id → this reviewer's current decision. Cached until any connection writes."""
        with self._lock:
            # data_version changes when another connection (another server) commits
            version = self._db.execute("PRAGMA data_version").fetchone()[0]
            if version != self._version:
                self._cache.clear()
                self._version = version
            cached = self._cache.get(reviewer)
            if cached is None:
                rows = self._db.execute("SELECT item_id, decision FROM reviews WHERE reviewer = ?", (reviewer,))
                cached = self._cache[reviewer] = dict(rows.fetchall())
            return cached

    def counts(self) -> dict[str, dict[str, int]]:
        """reviewer → decision → items."""
        with self._lock:
            rows = self._db.execute("SELECT reviewer, decision, COUNT(*) FROM reviews GROUP BY reviewer, decision").fetchall()
        out: dict[str, dict[str, int]] = {}
        for reviewer, decision, n in rows:
            out.setdefault(reviewer, {})[decision] = n
        return out

    def state(self) -> tuple[int, float | None]:
        """(current reviews, time of the latest save): changes whenever a review is saved."""
        with self._lock:
            count, latest = self._db.execute("SELECT COUNT(*), MAX(reviewed_at) FROM reviews").fetchone()
        return count, latest

    def table(self) -> pl.DataFrame:
        """The current reviews, one row per reviewer and item, sorted."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(REVIEWS_SCHEMA)} FROM reviews ORDER BY reviewer, item_id"
            ).fetchall()
        return pl.DataFrame(rows, schema=REVIEWS_SCHEMA, orient="row")


def export_reviews(run_dir: str | Path, out: str | Path | None = None) -> tuple[Path, pl.DataFrame]:
    """`RUN_DIR/review/reviews.sqlite` → `reviews.parquet` beside it (or `out`), written atomically."""
    run = RunDir(Path(run_dir))
    database = run.root / REVIEW_DIR / DATABASE
    if not database.exists():
        raise SourceNotFoundError(
            f"{database}: no reviews yet; start the review app with `kgsynth review {run.root}`"
        )
    store = ReviewStore(database)
    try:
        frame = store.table()
    finally:
        store.close()
    target = Path(out) if out is not None else database.parent / EXPORT
    return write_parquet_atomic(frame, target), frame


def read_reviews(run_dir: str | Path) -> pl.DataFrame | None:
    """The exported reviews of a run (`review/reviews.parquet`), or None when there are none."""
    path = RunDir(Path(run_dir)).root / REVIEW_DIR / EXPORT
    if not path.exists():
        return None
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:  # polars raises several unrelated types on corrupt files
        raise InputFormatError(f"cannot read as parquet: {exc}", file=path) from exc
    missing = [c for c in REVIEWS_SCHEMA if c not in frame.columns]
    if missing:
        raise InputFormatError(
            f"missing column(s) {missing}; write it with `kgsynth review export {path.parent.parent}`", file=path
        )
    bad = frame.filter(~pl.col("decision").is_in(list(DECISIONS)))
    if bad.height:
        raise InputFormatError(
            f"decision {bad['decision'][0]!r} (reviewer {bad['reviewer'][0]!r}, item {bad['item_id'][0]!r}); "
            f"expected one of {', '.join(DECISIONS)}",
            file=path,
            field="decision",
        )
    return frame.select([pl.col(c).cast(t) for c, t in REVIEWS_SCHEMA.items()])


def reviews_outdated(run_dir: str | Path) -> bool:
    """The review database holds decisions that `reviews.parquet` lacks (or it was never written)."""
    folder = RunDir(Path(run_dir)).root / REVIEW_DIR
    if not (folder / DATABASE).exists():
        return False
    exported = read_reviews(run_dir)
    if exported is None:
        return True
    store = ReviewStore(folder / DATABASE)
    try:
        state = store.state()
    finally:
        store.close()
    return state != (exported.height, exported["reviewed_at"].max())
