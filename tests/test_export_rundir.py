"""A run directory for the export tests, built from real HPO edges, and tests of reading it.

The run has every part `kgsynth export` reads: the full snapshot, a pruning
report (`pruned/hubs.json`), paths, generated items with failures and
`generate.json`, and verified items (accepted with verdicts, rejected with
reasons, `summary.json`). Items are walks over the real graph, verbalized with
the relation vocabulary, so every triple they cite exists in HPO.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from kgsynth.errors import InputFormatError, SourceNotFoundError
from kgsynth.generate.item import VERDICT_STRUCT, Item, Option, Provenance, Usage, items_to_frame
from kgsynth.graph.engine import open_engine
from kgsynth.graph.snapshot import read_snapshot
from kgsynth.rundir import RunDir
from kgsynth.sample.paths import write_paths

N_WALKS = 70
PRUNING_HASH = "5f0c2a9d41be7e13"


def _walk(engine, rng: random.Random, hops: int) -> tuple[list[int], list[int], list[bool]] | None:
    start = rng.randrange(engine.n_nodes)
    nodes, relations, forward = [start], [], []
    for _ in range(hops):
        span = engine.neighbors(nodes[-1])
        if span.stop == span.start:
            return None
        entry = rng.randrange(span.start, span.stop)
        nxt = int(engine.indices[entry])
        if nxt in nodes:
            return None
        nodes.append(nxt)
        relations.append(int(engine.rel[entry]))
        forward.append(bool(engine.forward[entry]))
    return nodes, relations, forward


def _items_from_walks(snapshot, engine, seed: int = 7) -> tuple[list[Item], pl.DataFrame]:
    rng = random.Random(seed)
    names = dict(zip(*snapshot.nodes.select("id", "name").to_dict(as_series=False).values(), strict=True))
    vocab = snapshot.vocabulary
    by_type: dict[str, np.ndarray] = {
        t: np.flatnonzero(engine.node_type == i) for i, t in enumerate(engine.type_names)
    }
    items: list[Item] = []
    paths = []
    while len(paths) < N_WALKS:
        hops = [1, 2, 2, 3, 3, 4, 5][len(paths) % 7]
        walk = _walk(engine, rng, hops)
        if walk is None:
            continue
        idx, rels, fwd = walk
        ids = [engine.node_ids[i] for i in idx]
        types = [engine.type_names[engine.node_type[i]] for i in idx]
        relations = [engine.relation_names[r] for r in rels]
        path_id = hashlib.sha256("|".join(ids + relations).encode()).hexdigest()[:16]
        pool = by_type[types[-1]]
        negatives = []
        while len(negatives) < 3:
            candidate = engine.node_ids[int(pool[rng.randrange(len(pool))])]
            if candidate not in ids and candidate not in negatives:
                negatives.append(candidate)
        paths.append(
            {
                "path_id": path_id,
                "nodes": ids,
                "relations": relations,
                "forward": fwd,
                "strategy": "walk",
                "seed": seed,
                "negatives": negatives,
                "snapshot": snapshot.hash,
            }
        )
        steps = [
            f"{names[ids[i]]} {vocab.relation(r).phrase(f)} {names[ids[i + 1]]}."
            for i, (r, f) in enumerate(zip(relations, fwd, strict=True))
        ]
        thinking = " ".join(steps)
        kinds = ["mcq", "open"] if len(paths) % 5 == 0 else ["mcq" if len(paths) % 3 else "open"]
        for kind in kinds:
            options: list[Option] = []
            label = None
            if kind == "mcq":
                shown = [ids[-1], *negatives]
                rng.shuffle(shown)
                options = [Option(label="ABCD"[k], text=names[n], node_id=n) for k, n in enumerate(shown)]
                label = "ABCD"[shown.index(ids[-1])]
            openai = len(paths) % 4 == 0
            items.append(
                Item(
                    id=hashlib.sha256(f"{path_id}|{kind}".encode()).hexdigest()[:16],
                    kind=kind,
                    question=f"Starting from {names[ids[0]]}, which {types[-1]} is reached "
                    f"through {hops} relation(s) ({', '.join(relations)})?",
                    options=options,
                    answer=names[ids[-1]],
                    answer_id=ids[-1],
                    answer_label=label,
                    answer_type=types[-1],
                    thinking=thinking,
                    path_id=path_id,
                    anchor_id=ids[0],
                    nodes=ids,
                    node_names=[names[i] for i in ids],
                    node_types=types,
                    relations=relations,
                    forward=fwd,
                    hops=hops,
                    bridges=ids[1:-1],
                    negatives=negatives,
                    provenance=Provenance(
                        snapshot_name=snapshot.name,
                        snapshot_hash=snapshot.hash,
                        sampled_snapshot_hash=snapshot.hash,
                        pruning_hash=PRUNING_HASH,
                        strategy="walk",
                        seed=seed,
                        writer="openai" if openai else "template",
                        model="gpt-4o-mini" if openai else None,
                        prompt_name="thinking_path",
                        prompt_hash="9a3f1c0b2d4e5f60",
                        usage=Usage(prompt_tokens=420, completion_tokens=180, cost_usd=0.00017)
                        if openai
                        else Usage(),
                    ),
                )
            )
    return items, pl.DataFrame(paths)


def _verdicts(passed: bool, code: str | None = None) -> list[dict]:
    graph = {"check": "graph", "passed": True, "code": None, "detail": "every edge of the path is in the graph"}
    if passed:
        return [graph, {"check": "dedup", "passed": True, "code": None, "detail": ""}]
    check = "dedup" if code == "NEAR_DUPLICATE" else "graph"
    failed = {"check": check, "passed": False, "code": code, "detail": f"rejected: {code}"}
    return [failed] if check == "graph" else [graph, failed]


def build_run_dir(root: Path, snapshot_dir: Path) -> Path:
    """Write a complete run directory under `root` from the HPO snapshot at `snapshot_dir`."""
    run = RunDir(root)
    root.mkdir(parents=True)
    run.snapshot.symlink_to(snapshot_dir, target_is_directory=True)
    snapshot = read_snapshot(run.snapshot)
    engine = open_engine(snapshot)
    items, paths = _items_from_walks(snapshot, engine)
    write_paths(paths, run.paths)
    frame = items_to_frame(items)
    frame.write_parquet(run.items)
    pl.DataFrame(
        {"path_id": ["p-fail-1", "p-fail-2", "p-fail-3"], "reason": ["LLM_ERROR", "LLM_ERROR", "BAD_JSON"],
         "detail": ["timeout after 3 retries", "HTTP 500", "no 'question' key"]}
    ).write_parquet(run.failures)
    (root / "generate.json").write_text(
        json.dumps(
            {
                "writer": "openai",
                "model": "gpt-4o-mini",
                "prompts": {"thinking_path": "9a3f1c0b2d4e5f60"},
                "params": {"temperature": 0.2, "concurrency": 8, "base_url": "http://localhost:8000/v1"},
                "items": frame.height,
                "failures": 3,
            }
        )
    )

    # Every 9th item is rejected, with a reason code.
    codes = ["EDGE_MISSING", "ANSWER_IN_QUESTION", "NEAR_DUPLICATE"]
    rejected_mask = [i % 9 == 4 for i in range(frame.height)]
    reasons = [[codes[(i // 9) % 3]] if r else [] for i, r in enumerate(rejected_mask)]
    verdicts = [_verdicts(not r, codes[(i // 9) % 3]) for i, r in enumerate(rejected_mask)]
    frame = frame.with_columns(
        pl.Series("verdicts", verdicts, dtype=pl.List(VERDICT_STRUCT)),
        pl.Series("reasons", reasons, dtype=pl.List(pl.String)),
        pl.Series("_rejected", rejected_mask),
    )
    run.verified.mkdir()
    frame.filter(~pl.col("_rejected")).drop("_rejected", "reasons").write_parquet(run.verified / "accepted.parquet")
    rejected = frame.filter(pl.col("_rejected")).drop("_rejected")
    rejected.write_parquet(run.verified / "rejected.parquet")
    (run.verified / "summary.json").write_text(
        json.dumps({"accepted": frame.height - rejected.height, "rejected": rejected.height})
    )

    degree = engine.degree
    top = np.argsort(-degree, kind="stable")[:12]
    run.pruned.mkdir()
    hubs = [
        {
            "id": engine.node_ids[i],
            "name": snapshot.nodes["name"][int(i)],
            "type": engine.type_names[engine.node_type[i]],
            "degree": int(degree[i]),
            "shortcut_load": round(0.9 - 0.05 * k, 3),
            "round": 1 + k // 5,
        }
        for k, i in enumerate(top)
    ]
    (run.pruned / "hubs.json").write_text(
        json.dumps({"removed": hubs, "params": {"k": 2, "max_rounds": 3}, "params_hash": PRUNING_HASH})
    )
    (run.pruned / "report.md").write_text("# Hubs removed\n")
    return root


@pytest.fixture(scope="session")
def export_run(hpo_snapshot_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared run directory (built once per session, whichever module asks first)."""
    root = tmp_path_factory.getbasetemp() / "export-run"
    if not root.exists():
        build_run_dir(root, hpo_snapshot_dir)
    return root


# --- reading the run directory -----------------------------------------------------------


def test_read_run_reads_every_part(export_run: Path) -> None:
    from kgsynth.export.inputs import read_run

    inputs = read_run(export_run)
    assert inputs.accepted.height > 40
    assert inputs.rejected is not None and inputs.rejected.height > 0
    assert inputs.failures is not None and inputs.failures.height == 3
    assert inputs.generated == inputs.accepted.height + inputs.rejected.height
    assert inputs.paths == N_WALKS
    assert inputs.snapshot is not None and inputs.snapshot.manifest.source_info is not None
    assert inputs.hubs is not None and len(inputs.hubs["removed"]) == 12
    assert inputs.notes == []


def test_missing_accepted_items_is_a_clear_error(tmp_path: Path) -> None:
    from kgsynth.export.inputs import read_run

    (tmp_path / "verified").mkdir()
    with pytest.raises(SourceNotFoundError, match=r"verified/accepted\.parquet.*kgsynth verify"):
        read_run(tmp_path)


def test_accepted_items_with_wrong_columns_name_the_file(tmp_path: Path) -> None:
    from kgsynth.export.inputs import read_run

    (tmp_path / "verified").mkdir()
    pl.DataFrame({"id": ["a"], "question": ["q"]}).write_parquet(tmp_path / "verified" / "accepted.parquet")
    with pytest.raises(InputFormatError, match=r"accepted\.parquet.*missing item column"):
        read_run(tmp_path)


def test_optional_parts_missing_become_statements(export_run: Path, tmp_path: Path) -> None:
    from kgsynth.export.inputs import read_run

    bare = tmp_path / "bare"
    (bare / "verified").mkdir(parents=True)
    shutil.copy(export_run / "verified" / "accepted.parquet", bare / "verified")
    inputs = read_run(bare)
    assert inputs.rejected is None and inputs.snapshot is None and inputs.hubs is None
    text = " ".join(inputs.notes)
    for part in ("rejected.parquet", "items.parquet", "paths.parquet", "generate.json", "snapshot/", "pruned/"):
        assert part in text
