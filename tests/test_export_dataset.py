"""Configurations, Features, leak-free splits, and the export folder's round trip."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import datasets
import polars as pl
import pytest
from test_export_rundir import export_run  # noqa: F401  (session fixture)

from kgsynth.errors import ConfigError, OutputError
from kgsynth.export import build_configs, build_dataset, export_dataset
from kgsynth.export.rows import DEFAULT_FEATURES, MCQ_FEATURES, SFT_FEATURES, path_signature
from kgsynth.export.splits import (
    LEFT_OUT_HOPS,
    LEFT_OUT_LEAK,
    SplitKey,
    parse_hop_split,
    plan_splits,
)
from kgsynth.graph.snapshot import read_snapshot


@pytest.fixture(scope="module")
def configs(export_run: Path) -> dict[str, datasets.DatasetDict]:  # noqa: F811
    return build_configs(export_run)


@pytest.fixture(scope="module")
def exported(export_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    out = tmp_path_factory.mktemp("export") / "dataset"
    export_dataset(export_run, out, repo_id="tester/hpo-demo")
    return out


def _disjoint(dataset_dict: datasets.DatasetDict, column) -> None:
    seen: dict[str, str] = {}
    for split, dataset in dataset_dict.items():
        for value in {column(row) for row in dataset}:
            assert seen.setdefault(value, split) == split, f"{value} is in {seen[value]} and {split}"


# --- configurations and Features -----------------------------------------------------------


def test_configs_have_explicit_features_and_every_accepted_item(configs, export_run: Path) -> None:  # noqa: F811
    accepted = pl.read_parquet(export_run / "verified" / "accepted.parquet")
    assert set(configs) == {"default", "sft", "mcq"}
    assert all(d.features == DEFAULT_FEATURES for d in configs["default"].values())
    assert all(d.features == SFT_FEATURES for d in configs["sft"].values())
    assert all(d.features == MCQ_FEATURES for d in configs["mcq"].values())
    ids = [i for d in configs["default"].values() for i in d["id"]]
    assert sorted(ids) == sorted(accepted["id"].to_list())
    assert sum(d.num_rows for d in configs["sft"].values()) == len(ids)
    assert sum(d.num_rows for d in configs["mcq"].values()) == accepted.filter(pl.col("kind") == "mcq").height


def test_rows_cite_triples_that_exist_in_the_graph(configs, export_run: Path) -> None:  # noqa: F811
    edges = read_snapshot(export_run / "snapshot").edges
    stored = set(zip(edges["src"].to_list(), edges["relation"].to_list(), edges["dst"].to_list(), strict=True))
    checked = 0
    for row in configs["default"]["train"]:
        assert [n["id"] for n in row["path_nodes"]][0] == row["anchor"]["id"]
        assert row["path_nodes"][-1]["id"] == row["answer_id"]
        assert len(row["path_edges"]) == row["hops"]
        for edge in row["path_edges"]:
            s, r, t = edge["source"], edge["relation"], edge["target"]
            triple = (s, r, t) if edge["direction"] == "forward" else (t, r, s)
            assert triple in stored, f"{triple} is not an edge of the graph"
            checked += 1
        assert {b["id"] for b in row["masked_bridges"]} <= {n["id"] for n in row["path_nodes"][1:-1]}
        assert row["provenance"]["snapshot_hash"] and row["provenance"]["strategy"] == "walk"
        assert row["verdicts"] and all(v["passed"] for v in row["verdicts"])
    assert checked > 50


def test_distractors_and_options_of_mcq_rows(configs) -> None:
    for row in configs["default"]["train"]:
        if row["kind"] != "mcq":
            continue
        labels = {o["label"]: o for o in row["options"]}
        assert labels[row["answer_label"]]["node_id"] == row["answer_id"]
        assert {d["id"] for d in row["distractors"]} == {o["node_id"] for o in row["options"]} - {row["answer_id"]}
        assert all(d["name"] and d["source"] == "graph_hard_negative" for d in row["distractors"])


def test_sft_rows_are_chat_messages_with_the_thinking_path(configs) -> None:
    default = {row["id"]: row for row in configs["default"]["train"]}
    for row in configs["sft"]["train"]:
        source = default[row["id"]]
        user, assistant = row["messages"]
        assert user["role"] == "user" and assistant["role"] == "assistant"
        assert user["content"].startswith(source["question"])
        thinking = assistant["content"].split("<think>\n", 1)[1].split("\n</think>", 1)[0]
        assert thinking == source["thinking"]
        assert assistant["content"].endswith(source["answer"])
        if source["kind"] == "mcq":
            for option in source["options"]:
                assert f"{option['label']}. {option['text']}" in user["content"]
            assert assistant["content"].endswith(f"{source['answer_label']}. {source['answer']}")


def test_mcq_rows_carry_the_answer_letter(configs) -> None:
    for row in configs["mcq"]["train"]:
        letters = [o["label"] for o in row["options"]]
        assert row["answer"] in letters
        assert row["options"][letters.index(row["answer"])]["text"] == row["answer_text"]


# --- splits -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_answer_or_path_signature_in_two_splits(export_run: Path, seed: int) -> None:  # noqa: F811
    default = build_dataset(export_run, seed=seed)
    assert set(default) == {"train", "validation", "test"}
    _disjoint(default, lambda row: row["answer_id"])
    _disjoint(default, lambda row: row["path_signature"])
    # the same path asked twice (mcq and open) shares a signature, so the guard is exercised
    signatures = Counter(s for d in default.values() for s in d["path_signature"])
    assert max(signatures.values()) >= 2


def test_hop_split_trains_short_and_tests_long(export_run: Path) -> None:  # noqa: F811
    configs = build_configs(export_run, hop_split=parse_hop_split("train=1-3,test=4-5"))
    default = configs["default"]
    assert set(default) == {"train", "test"}
    assert set(default["train"]["hops"]) <= {1, 2, 3}
    assert set(default["test"]["hops"]) == {4, 5}
    _disjoint(default, lambda row: row["answer_id"])
    _disjoint(default, lambda row: row["path_signature"])
    _disjoint(configs["sft"], lambda row: row["id"])


def test_plan_joins_items_linked_by_answer_or_signature() -> None:
    keys = [
        SplitKey("a", "ans1", "sig1", 2),
        SplitKey("b", "ans1", "sig2", 2),  # shares the answer with a
        SplitKey("c", "ans2", "sig2", 3),  # shares the path with b
        *(SplitKey(f"x{i}", f"other{i}", f"s{i}", 2) for i in range(200)),
    ]
    plan = plan_splits(keys, ratios=(0.8, 0.1, 0.1), seed=5)
    assert plan.split_of["a"] == plan.split_of["b"] == plan.split_of["c"]
    assert plan.groups == 201
    counts = plan.counts()
    assert abs(counts["train"] - 162) <= 2 and abs(counts["validation"] - 20) <= 2 and abs(counts["test"] - 20) <= 2
    again = plan_splits(keys, ratios=(0.8, 0.1, 0.1), seed=5)
    other = plan_splits(keys, ratios=(0.8, 0.1, 0.1), seed=6)
    assert again.split_of == plan.split_of and other.split_of != plan.split_of


def test_hop_split_leaves_out_items_that_would_leak_and_says_why() -> None:
    keys = [
        SplitKey("short1", "ans", "s1", 2),
        SplitKey("short2", "ans", "s2", 3),
        SplitKey("long", "ans", "s3", 5),  # same answer as two short items: the short pool wins
        SplitKey("long2", "ans2", "s4", 5),
        SplitKey("odd", "ans3", "s5", 9),  # in no pool
    ]
    plan = plan_splits(keys, hop_split={"train": [1, 2, 3], "test": [4, 5]})
    assert plan.split_of == {"short1": "train", "short2": "train", "long2": "test"}
    assert plan.left_out == {"long": LEFT_OUT_LEAK, "odd": LEFT_OUT_HOPS}


def test_shared_hop_lists_split_by_ratio() -> None:
    keys = [SplitKey(f"i{i}", f"a{i}", f"s{i}", 1 + i % 5) for i in range(500)]
    plan = plan_splits(keys, ratios=(0.8, 0.2, 0.1),
                       hop_split={"train": [1, 2, 3], "validation": [1, 2, 3], "test": [4, 5]})
    counts = plan.counts()
    assert counts == {"train": 240, "validation": 60, "test": 200}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ratios": (0.8, 0.2)}, "three non-negative numbers"),
        ({"ratios": (1, -1, 0)}, "three non-negative numbers"),
        ({"hop_split": {"train": [1, 2], "dev": [3]}}, "among train, validation, test"),
        ({"hop_split": {"train": [1, 2, 3], "test": [3, 4]}}, "overlap without being equal"),
        ({"hop_split": {"train": [0]}}, "at least 1"),
    ],
)
def test_bad_split_parameters_are_config_errors(kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        plan_splits([SplitKey("a", "b", "c", 1)], **kwargs)


def test_parse_hop_split() -> None:
    assert parse_hop_split("train=1-3,test=4-5") == {"train": [1, 2, 3], "test": [4, 5]}
    assert parse_hop_split("train=1,2;validation=1,2;test=3") == {"train": [1, 2], "validation": [1, 2], "test": [3]}
    with pytest.raises(ConfigError, match="not a hop count"):
        parse_hop_split("train=a-b")
    with pytest.raises(ConfigError, match="SPLIT=HOPS"):
        parse_hop_split("1-3")


def test_path_signature_ignores_walking_direction() -> None:
    forward = {"nodes": ["a", "b", "c"], "relations": ["r", "s"], "forward": [True, False]}
    backward = {"nodes": ["c", "b", "a"], "relations": ["s", "r"], "forward": [True, False]}
    other = {"nodes": ["a", "b", "c"], "relations": ["r", "s"], "forward": [True, True]}
    assert path_signature(forward) == path_signature(backward) != path_signature(other)


# --- the export folder ------------------------------------------------------------------------


def _rows(dataset_dict: datasets.DatasetDict) -> dict[str, list[dict]]:
    return {split: dataset.to_list() for split, dataset in dataset_dict.items()}


def test_parquet_and_disk_round_trip_same_rows_and_features(exported: Path, configs, tmp_path: Path) -> None:
    record = json.loads((exported / "export.json").read_text())
    for name, built in configs.items():
        from_disk = datasets.load_from_disk(str(exported / "disk" / name))
        files = {s: str(exported / "data" / name / f"{s}-00000-of-00001.parquet") for s in built}
        from_parquet = datasets.load_dataset("parquet", data_files=files, cache_dir=str(tmp_path))
        from_folder = datasets.load_dataset(str(exported), name, cache_dir=str(tmp_path))
        for loaded in (from_disk, from_parquet, from_folder):
            assert set(loaded) == set(built)
            for split in built:
                assert loaded[split].features == built[split].features
            assert _rows(loaded) == _rows(built)
        assert record["configs"][name] == {s: d.num_rows for s, d in built.items()}


def test_sft_config_loads_as_chat_messages(exported: Path, tmp_path: Path) -> None:
    sft = datasets.load_dataset(str(exported), "sft", split="train", cache_dir=str(tmp_path))
    assert sft.features["messages"] == datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")})
    first = sft[0]["messages"]
    assert [m["role"] for m in first] == ["user", "assistant"] and "<think>" in first[1]["content"]


def test_jsonl_holds_the_same_rows(exported: Path, configs) -> None:
    for split, dataset in configs["default"].items():
        lines = (exported / "jsonl" / "default" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        assert [json.loads(line) for line in lines] == dataset.to_list()


def test_export_refuses_a_foreign_folder_and_unknown_formats(export_run: Path, tmp_path: Path) -> None:  # noqa: F811
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep me")
    with pytest.raises(OutputError, match="not a kgsynth export"):
        export_dataset(export_run, foreign)
    assert (foreign / "mine.txt").read_text() == "keep me"
    with pytest.raises(ConfigError, match="unknown export format"):
        export_dataset(export_run, tmp_path / "out", formats=("csv",))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]


def test_export_replaces_a_previous_export_and_honours_formats(export_run: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "dataset"
    export_dataset(export_run, out)
    result = export_dataset(export_run, out, formats=("parquet",), seed=3)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "data", "export.json"]
    assert result.formats == ["parquet"] and json.loads((out / "export.json").read_text())["seed"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["dataset"]  # no temporary folders left
