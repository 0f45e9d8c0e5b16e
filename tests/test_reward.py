"""The path reward: entity- and edge-level credit for reasoning that states an item's path."""

from __future__ import annotations

import pytest
from hpo_paths import make_paths

from kgsynth.errors import InputFormatError
from kgsynth.generate import WRITERS, generate_items
from kgsynth.generate.item import frame_to_items
from kgsynth.graph.snapshot import read_snapshot
from kgsynth.reward import path_reward, path_reward_detail, path_rewards

ITEM = {
    "nodes": ["d", "p1", "p2"],
    "node_names": ["Marfan syndrome", "Arachnodactyly", "Long fingers"],
}


def test_full_reasoning_earns_one_and_each_missing_part_costs_its_share():
    full = "Marfan syndrome presents with Arachnodactyly. Arachnodactyly is a kind of long fingers."
    assert path_reward(full, ITEM) == 1.0
    skipped = "Marfan syndrome presents with long fingers."  # bridge never named, no hop stated
    detail = path_reward_detail(skipped, ITEM)
    assert detail.entities == [True, False, True] and detail.edges == [False, False]
    assert detail.reward == pytest.approx(2 / 5)
    apart = "Marfan syndrome is common. Arachnodactyly. Long fingers."  # named, never related
    assert path_reward_detail(apart, ITEM).edges == [False, False]
    assert path_reward("", ITEM) == 0.0


def test_order_within_a_sentence_is_free_but_longer_names_do_not_count_as_shorter():
    reversed_hop = "Long fingers are what Arachnodactyly is a kind of; Marfan syndrome presents with Arachnodactyly."
    assert path_reward(reversed_hop, ITEM) == 1.0
    item = {"nodes": ["a", "b"], "node_names": ["Epilepsy", "Seizure"]}
    assert path_reward_detail("Focal seizure follows epilepsy.", {"nodes": ["a", "b", "c"], "node_names": ["Epilepsy", "Seizure", "Focal seizure"]}).entities == [True, False, True]
    assert path_reward("Epilepsy causes a seizure.", item) == 1.0


def test_trl_reward_function_reads_the_exported_path_column():
    path_nodes = [[{"id": i, "name": n, "type": "t"} for i, n in zip(ITEM["nodes"], ITEM["node_names"], strict=True)]]
    chat = [[{"role": "assistant", "content": "Marfan syndrome presents with Arachnodactyly."}]]
    assert path_rewards(chat, path_nodes) == [pytest.approx(3 / 5)]
    assert path_rewards(["nothing"], path_nodes, prompts=["q"]) == [0.0]
    with pytest.raises(InputFormatError, match="path"):
        path_reward("x", {"question": "no path here"})


def test_real_items_with_synonyms_from_the_snapshot(hpo_snapshot_dir, tmp_path):
    full = read_snapshot(hpo_snapshot_dir)
    out = tmp_path / "items.parquet"
    generate_items(make_paths(full, 10, seed=2), full, writer=WRITERS.get("template")(None), out=out, kinds=["open"])
    import polars as pl

    items = frame_to_items(pl.read_parquet(out))
    assert all(path_reward(item.thinking, item) == 1.0 for item in items)
    assert all(path_reward(item.question, item) < 0.5 for item in items)  # the question names the anchor only
    synonyms = dict(zip(full.nodes["id"].to_list(), full.nodes["synonyms"].to_list(), strict=True))
    item = next(i for i in items if synonyms[i.answer_id])
    said = item.thinking.replace(item.answer, synonyms[item.answer_id][0])
    assert path_reward(said, item, snapshot=full) == 1.0  # the snapshot knows the synonym …
    assert path_reward(said, item) < 1.0  # … the item alone does not
