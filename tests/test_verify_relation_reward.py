"""The path reward reads each hop's relation too: a misstated hop earns no credit (issue 14)."""

from __future__ import annotations

import polars as pl
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
    "relations": ["has_phenotype", "is_a"],
    "forward": [True, True],
}
RIGHT = "Marfan syndrome presents with Arachnodactyly. Arachnodactyly is a kind of Long fingers."


def test_a_misstated_hop_earns_nothing_and_says_why():
    assert path_reward(RIGHT, ITEM) == 1.0
    for wrong in (
        "Marfan syndrome is a kind of Arachnodactyly. Arachnodactyly is a kind of Long fingers.",  # another relation
        "Arachnodactyly presents with Marfan syndrome. Arachnodactyly is a kind of Long fingers.",  # backwards
        "Marfan syndrome does not present with Arachnodactyly. Arachnodactyly is a kind of Long fingers.",  # negated
    ):
        detail = path_reward_detail(wrong, ITEM)
        assert detail.entities == [True, True, True]
        assert detail.misstated == [True, False] and detail.edges == [False, True]
        assert detail.reward == pytest.approx(4 / 5)
    # saying it right and wrong earns nothing for the hop either
    both = "Marfan syndrome presents with Arachnodactyly. Marfan syndrome is a kind of Arachnodactyly. Arachnodactyly is a kind of Long fingers."
    assert path_reward_detail(both, ITEM).edges == [False, True]
    # wording the lexicon cannot read keeps the credit
    assert path_reward("Marfan syndrome, and with it Arachnodactyly. Arachnodactyly, a kind of Long fingers.", ITEM) == 1.0


def test_without_relations_hops_are_credited_on_names_alone():
    names_only = {"nodes": ITEM["nodes"], "node_names": ITEM["node_names"]}
    assert path_reward("Marfan syndrome is a kind of Arachnodactyly. Arachnodactyly is a kind of Long fingers.", names_only) == 1.0
    with pytest.raises(InputFormatError, match="3 nodes but 1 relations"):
        path_reward(RIGHT, {**ITEM, "relations": ["is_a"], "forward": [True]})


def test_the_trl_function_reads_the_exported_path_edges():
    path_nodes = [{"id": i, "name": n, "type": "t"} for i, n in zip(ITEM["nodes"], ITEM["node_names"], strict=True)]
    path_edges = [
        {"source": "d", "relation": "has_phenotype", "target": "p1", "direction": "forward"},
        {"source": "p1", "relation": "is_a", "target": "p2", "direction": "forward"},
    ]
    wrong = "Marfan syndrome is caused by Arachnodactyly. Arachnodactyly is a kind of Long fingers."
    assert path_rewards([RIGHT, wrong], [path_nodes, path_nodes], path_edges=[path_edges, path_edges]) == [1.0, pytest.approx(4 / 5)]
    assert path_rewards([wrong], [path_nodes]) == [1.0]  # a dataset without path_edges: names only
    inverse = [{**path_edges[0]}, {"source": "p1", "relation": "is_a", "target": "p2", "direction": "inverse"}]
    # p1 -[is_a]-> p2 walked against the stored edge: "Arachnodactyly has as a subtype Long fingers" is the right way round
    said = "Marfan syndrome presents with Arachnodactyly. Arachnodactyly has as a subtype Long fingers."
    assert path_rewards([said, RIGHT], [path_nodes, path_nodes], path_edges=[inverse, inverse]) == [1.0, pytest.approx(4 / 5)]


def test_real_items_lose_exactly_the_misstated_hop(hpo_snapshot_dir, tmp_path):
    full = read_snapshot(hpo_snapshot_dir)
    out = tmp_path / "items.parquet"
    generate_items(make_paths(full, 12, seed=4), full, writer=WRITERS.get("template")(None), out=out, kinds=["open"])
    items = frame_to_items(pl.read_parquet(out))
    assert all(path_reward(i.thinking, i) == 1.0 == path_reward(i.thinking, i, snapshot=full) for i in items)
    for item in items:
        first = item.thinking.split(". ")[0]
        told = first.replace(f"{item.node_names[0]} ", f"It is not true that {item.node_names[0]} ", 1)
        detail = path_reward_detail(item.thinking.replace(first, told, 1), item, snapshot=full)
        assert detail.misstated[0] and not any(detail.misstated[1:]), (item.thinking, told)
        assert detail.reward == pytest.approx(1 - 1 / (2 * item.hops + 1))
