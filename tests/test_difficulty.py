"""Difficulty on the real HPO graph: graph features against an independent reading of the graph, the
multi-model stage against two local endpoints that answer differently (deterministic, cached), and
export's difficulty column, curriculum order and difficulty-stratified splits, card and report."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from hpo_paths import make_paths
from llm_server import LLMServer

from kgsynth.config import load_config
from kgsynth.difficulty import read_difficulty
from kgsynth.difficulty.empirical import chosen_label
from kgsynth.difficulty.features import item_features
from kgsynth.errors import ConfigError
from kgsynth.export import export_dataset, write_report
from kgsynth.export.splits import SplitKey, plan_splits
from kgsynth.generate import WRITERS, generate_items
from kgsynth.graph.engine import open_engine
from kgsynth.graph.snapshot import read_snapshot
from kgsynth.pipeline import run_stage
from kgsynth.rundir import RunDir
from kgsynth.verify import verify_items, write_verified

KGSYNTH = [sys.executable, "-c", "from kgsynth.cli import main; main()"]


@pytest.fixture(scope="module")
def snapshot(hpo_snapshot_dir):
    return read_snapshot(hpo_snapshot_dir)


@pytest.fixture(scope="module")
def verified_run(tmp_path_factory, snapshot, hpo_snapshot_dir) -> Path:
    """A run directory with the full snapshot and verified template items of 2- and 3-hop paths."""
    root = tmp_path_factory.mktemp("run")
    (root / "snapshot").symlink_to(hpo_snapshot_dir)
    paths = make_paths(snapshot, 90, seed=11)
    generate_items(paths, snapshot, writer=WRITERS.get("template")(None), out=root / "items.parquet", min_options=2)
    write_verified(verify_items(pl.read_parquet(root / "items.parquet"), snapshot), root / "verified")
    return root


@pytest.fixture()
def run(tmp_path, verified_run) -> Path:
    """A private copy of the verified run (tests write difficulty/ and dataset/ into it)."""
    root = tmp_path / "run"
    root.mkdir()
    for name in ("snapshot", "verified", "items.parquet"):
        (root / name).symlink_to(verified_run / name)
    return root


def accepted(run: Path) -> pl.DataFrame:
    return pl.read_parquet(run / "verified" / "accepted.parquet")


# --- features --------------------------------------------------------------------------------


def _ball(engine, start: int, depth: int) -> dict[int, int]:
    """Plain breadth-first distances from `start`, up to `depth` (the oracle)."""
    seen, frontier = {start: 0}, [start]
    for d in range(1, depth + 1):
        nxt = []
        for u in frontier:
            for v in engine.indices[engine.indptr[u] : engine.indptr[u + 1]].tolist():
                if v not in seen:
                    seen[v] = d
                    nxt.append(v)
        frontier = nxt
    return seen


def test_difficulty_features_match_plain_breadth_first_search(verified_run, snapshot):
    items = accepted(verified_run)
    engine = open_engine(snapshot)
    features = {r["id"]: r for r in item_features(items, engine).iter_rows(named=True)}
    checked = Counter()
    for item in items.head(40).iter_rows(named=True):
        got = features[item["id"]]
        answer, anchor = engine.index_of(item["answer_id"]), engine.index_of(item["anchor_id"])
        assert got["answer_degree"] == int(engine.indptr[answer + 1] - engine.indptr[answer])
        assert got["hops"] == got["steps"] == item["hops"] and got["branches"] == 1
        around_answer = _ball(engine, answer, 3)
        distance = around_answer.get(anchor, item["hops"])
        assert got["anchor_distance"] == min(distance, item["hops"])
        assert got["shortcut"] is (distance < item["hops"])
        checked["shortcut"] += got["shortcut"]
        if item["negatives"]:
            near = {v for v, d in around_answer.items() if d == 1}
            distances, overlaps = [], []
            for n in item["negatives"]:
                v = engine.index_of(n)
                theirs = set(engine.indices[engine.indptr[v] : engine.indptr[v + 1]].tolist())
                distances.append(min(around_answer.get(v, 3), 3))
                overlaps.append(len(near & theirs) / len(near | theirs))
            assert got["distractor_distance"] == min(distances)
            assert got["distractor_overlap"] == pytest.approx(max(overlaps))
            checked["distractors"] += 1
        else:
            assert got["distractor_distance"] is None and item["kind"] == "open"
        assert 0 < got["rarity"] < 1
    assert checked["distractors"] >= 20 and checked["shortcut"] >= 1


def test_chosen_label_reads_letters_and_option_texts_only():
    options = [{"label": "A", "text": "Asthma"}, {"label": "B", "text": "Bronchitis"}]
    assert [chosen_label(r, options) for r in ("B", "b)", "(A)", "Option b", "bronchitis", "B. Bronchitis")] == list("BBABBB")
    assert [chosen_label(r, options) for r in ("C", "Both", "", "Brain")] == [None] * 4


# --- the multi-model stage ----------------------------------------------------------------------


def gold_answers(items: pl.DataFrame) -> dict[tuple[str, str], tuple[str, int, list[str]]]:
    """(question, options text) → (answer label, hops, labels): what a fake model may know."""
    gold = {}
    for r in items.filter(pl.col("options").list.len() > 0).iter_rows(named=True):
        shown = "\n".join(f"{o['label']}. {o['text']}" for o in r["options"])
        gold[(r["question"], shown)] = (r["answer_label"], r["hops"], [o["label"] for o in r["options"]])
    return gold


def responder(gold, *, wrong_on_hops: int | None = None, junk_on_hops: int | None = None):
    def respond(body):
        text = body["messages"][-1]["content"]
        found = re.search(r"Question: (.*?)\n\nOptions:\n(.*?)\n\nReply", text, re.S)
        label, hops, labels = gold[(found[1], found[2])]
        if hops == junk_on_hops:
            return "I would rather not say."
        if hops == wrong_on_hops:
            label = next(x for x in labels if x != label)
        return json.dumps({"answer": label})

    return respond


def write_config(folder: Path, servers: list[tuple[str, LLMServer]], **export) -> Path:
    models = "".join(f'\n    - {{model: {name}, base_url: "{server.url}", max_retries: 1}}' for name, server in servers)
    text = f"""name: difficulty-test
source: {{format: hpo}}
difficulty:
  seed: 3
  models:{models}
export: {json.dumps({"formats": ["parquet"], **export})}
"""
    path = folder / "run.yaml"
    path.write_text(text)
    return path


def test_difficulty_stage_with_two_endpoints_is_deterministic_and_cached(tmp_path, run):
    items = accepted(run)
    gold = gold_answers(items)
    with (LLMServer(responder=responder(gold)) as right, LLMServer(responder=responder(gold, wrong_on_hops=3)) as short):
        config = load_config(write_config(tmp_path, [("always-right", right), ("two-hops-only", short)]))
        first = run_stage("difficulty", config, RunDir(run))
        asked = right.chat_requests, short.chat_requests
        scores = read_difficulty(run).scores
        again = run_stage("difficulty", config, RunDir(run), force=True)  # a re-run: every reply from the cache
        assert (right.chat_requests, short.chat_requests) == asked
        (run / "llm_cache.sqlite").unlink()  # without the cache the models are asked again, and agree
        third = run_stage("difficulty", config, RunDir(run), force=True)
        assert right.chat_requests == 2 * asked[0] and short.chat_requests == 2 * asked[1]
    options_items = items.filter(pl.col("options").list.len() > 0)
    assert asked == (options_items.height, options_items.height) and asked[0] >= 40
    assert all(b["temperature"] == 0 and b["seed"] == 3 for b in right.requests)  # what makes them repeatable
    assert not any("thinking" in m["content"].lower() or "<think>" in m["content"] for b in right.requests for m in b["messages"])
    for result in (again, third):
        assert result.summary == first.summary
        assert read_difficulty(run).scores.equals(scores)
    summary = read_difficulty(run).summary
    by_model = {m["model"]: m for m in summary["models"]}
    three = options_items.filter(pl.col("hops") == 3).height
    assert by_model["always-right"]["accuracy"] == 1.0
    assert by_model["two-hops-only"]["correct"] == options_items.height - three and 0 < three < options_items.height
    assert summary["usage"]["always-right"]["total"]["cache_hits"] == 0
    # scores: models where they answered (1 − accuracy), the feature score for open items
    by_id = {r["id"]: r for r in scores.iter_rows(named=True)}
    for item in items.iter_rows(named=True):
        row = by_id[item["id"]]
        if item["options"]:
            assert row["source"] == "models" and row["models"] == 2
            assert row["score"] == (0.5 if item["hops"] == 3 else 0.0)
        else:
            assert row["source"] == "features" and row["score"] == row["feature_score"] and row["accuracy"] is None
    # the ranking is the curriculum order: score, then feature score, then id; levels are its thirds
    ordered = scores.sort("rank")
    keys = list(zip(ordered["score"], ordered["feature_score"], ordered["id"], strict=True))
    assert keys == sorted(keys)
    levels = ordered["level"].to_list()
    assert levels == sorted(levels, key=["easy", "medium", "hard"].index) and Counter(levels)["easy"] >= len(levels) // 3


def test_difficulty_counts_a_reply_that_is_no_option_as_wrong_with_its_reason(tmp_path, run):
    items = accepted(run)
    gold = gold_answers(items)
    with LLMServer(responder=responder(gold, junk_on_hops=3)) as server:
        config = load_config(write_config(tmp_path, [("mumbler", server)]))
        run_stage("difficulty", config, RunDir(run))
    result = read_difficulty(run)
    answers = result.answers.join(items.select("id", "hops"), on="id")
    junk = answers.filter(pl.col("hops") == 3)
    assert junk.height >= 5 and not junk["correct"].any() and junk["answer"].is_null().all()
    assert set(junk["error"]) <= {"not_json", "schema_mismatch"}
    assert answers.filter(pl.col("hops") == 2)["correct"].all()
    assert result.summary["models"][0]["no_option"] == dict(Counter(junk["error"].to_list()))


def test_cli_difficulty_with_a_dead_endpoint_fails_clearly_and_writes_nothing(run):
    done = subprocess.run([*KGSYNTH, "difficulty", str(run), "--model", "gone@http://127.0.0.1:9/v1", "--max-retries", "0"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 2
    assert "answering call(s) failed" in done.stderr and "gone: connection" in done.stderr
    assert "Traceback" not in done.stderr and not (run / "difficulty").exists()


def test_config_refuses_a_model_listed_twice_and_unknown_weights(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\nsource: {format: hpo}\ndifficulty:\n  models:\n    - {model: m}\n    - {model: m}\n")
    with pytest.raises(ConfigError, match=r"c.yaml, line 4: difficulty.models: model 'm' is listed twice"):
        load_config(path)
    path.write_text("name: x\nsource: {format: hpo}\ndifficulty:\n  weights: {hops: 1}\n")
    with pytest.raises(ConfigError, match=r"difficulty.weights: expected non-negative weights of steps, rarity"):
        load_config(path)


# --- export: the column, the curriculum, stratified splits, card and report ------------------------


@pytest.fixture()
def measured(tmp_path, run) -> Path:
    items = accepted(run)
    gold = gold_answers(items)
    with (LLMServer(responder=responder(gold)) as right, LLMServer(responder=responder(gold, wrong_on_hops=3)) as short):
        run_stage("difficulty", load_config(write_config(tmp_path, [("always-right", right), ("two-hops-only", short)])), RunDir(run))
    return run


def test_export_curriculum_orders_train_easy_to_hard_in_every_config(tmp_path, measured):
    import datasets

    out = tmp_path / "dataset"
    result = export_dataset(measured, out, formats=["parquet"], curriculum=True)
    scores = {r["id"]: r for r in read_difficulty(measured).scores.iter_rows(named=True)}
    train = datasets.load_dataset(str(out), "default")["train"]
    keys = [(scores[i]["score"], scores[i]["feature_score"], i) for i in train["id"]]
    assert keys == sorted(keys) and keys != sorted(keys, key=lambda k: k[2])  # not just id order
    assert [d["level"] for d in train["difficulty"]] == [scores[i]["level"] for i in train["id"]]
    for config in ("sft", "mcq"):
        rows = datasets.load_dataset(str(out), config)["train"]
        ids = [i for i in train["id"] if i in set(rows["id"])]
        assert rows["id"] == ids and rows["difficulty"] == [scores[i]["level"] for i in ids]
    test = datasets.load_dataset(str(out), "default")["test"]
    assert test["id"] == sorted(test["id"])  # other splits keep id order
    assert result.difficulty_levels["train"] and json.loads((out / "export.json").read_text())["curriculum"] is True
    card = (out / "README.md").read_text()
    assert "## Difficulty" in card and "ordered **from easy to hard**" in card
    assert "| two-hops-only |" in card and "| always-right |" in card


def test_export_stratified_by_difficulty_balances_levels_without_leaks(tmp_path, measured):
    plain = export_dataset(measured, tmp_path / "plain", formats=["parquet"], ratios=(0.6, 0.2, 0.2))
    strat = export_dataset(measured, tmp_path / "strat", formats=["parquet"], ratios=(0.6, 0.2, 0.2), stratify="difficulty")

    def spread(levels: dict[str, dict[str, int]]) -> float:
        """How far the test split's level shares are from the whole's."""
        total = Counter()
        for counts in levels.values():
            total.update(counts)
        n, t = sum(total.values()), sum(levels["test"].values())
        return max(abs(levels["test"].get(k, 0) / t - total[k] / n) for k in total)

    assert spread(strat.difficulty_levels) <= spread(plain.difficulty_levels)
    assert spread(strat.difficulty_levels) < 0.08
    # still leak-free: no answer entity and no path signature in two splits
    import datasets

    seen: dict[str, str] = {}
    for split, rows in datasets.load_dataset(str(tmp_path / "strat"), "default").items():
        for row in rows:
            for key in (row["answer_id"], row["path_signature"]):
                assert seen.setdefault(key, split) == split
    assert "stratified by difficulty" in (tmp_path / "strat" / "README.md").read_text()


def test_plan_splits_stratified_keeps_groups_whole_and_each_stratum_in_ratio():
    keys = []
    for g in range(300):  # groups of 1-3 items sharing an answer, of mixed strata
        for k in range(g % 3 + 1):
            keys.append(SplitKey(f"i{g}-{k}", f"a{g}", f"p{g}-{k}", 2, ["easy", "medium", "hard"][(g + k) % 3 if g % 2 else g % 3]))
    plan = plan_splits(keys, ratios=(0.8, 0.1, 0.1), seed=4, stratify=True)
    by_group: dict[str, set[str]] = {}
    for key in keys:
        by_group.setdefault(key.answer_id, set()).add(plan.split_of[key.item_id])
    assert all(len(splits) == 1 for splits in by_group.values())
    for stratum in ("easy", "medium", "hard"):
        mine = [k for k in keys if k.stratum == stratum]
        test = sum(plan.split_of[k.item_id] == "test" for k in mine)
        assert abs(test / len(mine) - 0.1) < 0.03, stratum
    assert plan_splits(keys, ratios=(0.8, 0.1, 0.1), seed=4, stratify=True).split_of == plan.split_of


def test_export_needs_difficulty_for_curriculum_or_stratify(tmp_path, run):
    with pytest.raises(ConfigError, match="need the items' difficulty: run `kgsynth difficulty"):
        export_dataset(run, tmp_path / "d", formats=["parquet"], curriculum=True)
    done = subprocess.run([*KGSYNTH, "export", str(run), "-o", str(tmp_path / "e"), "--stratify", "difficulty"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 2 and "kgsynth difficulty" in done.stderr and not (tmp_path / "e").exists()


def test_report_plots_accuracy_against_hops_and_difficulty(tmp_path, measured):
    report = write_report(measured, tmp_path / "report")
    text = report.read_text()
    assert (tmp_path / "report" / "difficulty.png").stat().st_size > 10_000
    assert "![accuracy against hops and difficulty](difficulty.png)" in text
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines() if line.startswith("| two-hops-only |")]
    cells = next(r for r in rows if len(r) == 6)  # model, 2 hops, 3 hops, easy, medium, hard
    assert cells[1:3] == ["100.0%", "0.0%"]  # right on every 2-hop item, wrong on every 3-hop one


def test_cli_difficulty_features_only_then_export_with_the_curriculum(tmp_path, run):
    done = subprocess.run([*KGSYNTH, "difficulty", str(run), "--weight", "steps=1"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert re.search(r"difficulty of [\d,]+ items .*easy, [\d,]+ medium, [\d,]+ hard", done.stderr.replace("\n", " "))
    summary = read_difficulty(run).summary
    assert summary["models"] == [] and summary["weights"] == {"steps": 1.0, "rarity": 0.0, "distractors": 0.0, "shortcut": 0.0}
    scores = read_difficulty(run).scores
    assert (scores["feature_score"] == (scores["steps"] - 1) / 5).all()  # steps alone
    done = subprocess.run([*KGSYNTH, "export", str(run), "-o", str(tmp_path / "d"), "-f", "parquet", "--curriculum",
                           "--stratify", "difficulty"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "train ordered easy to hard" in done.stderr.replace("\n", " ")
    rows = pl.read_parquet(next((tmp_path / "d" / "data" / "default").glob("train-*.parquet")))
    hops = rows["hops"].to_list()
    assert hops == sorted(hops)  # with the steps weight alone, easy to hard is short to long
