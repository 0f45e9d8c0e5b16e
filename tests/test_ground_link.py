"""Entity linking of QA pairs on the real HPO graph: dictionary, embeddings, the model's help."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from kgsynth.errors import ConfigError
from kgsynth.graph.snapshot import Snapshot, build_snapshot, read_snapshot, write_snapshot
from kgsynth.ground.link import LinkConfig, QALinker, refine_with_model
from kgsynth.ground.qa import QAOption, QARecord, read_qa

DATA = Path(__file__).parent / "data" / "qa_hpo.jsonl"


def record(question: str, answer: str, options: list[str] | None = None, label: str | None = None) -> QARecord:
    opts = [QAOption(label=chr(65 + i), text=t) for i, t in enumerate(options or [])]
    return QARecord(dataset_name="t", id_in_dataset=question[:20], question=question, options=opts, answer=answer,
                    answer_label=label, row=1)


@pytest.fixture(scope="module")
def dictionary_linker(hpo_snapshot_dir: Path) -> QALinker:
    return QALinker(read_snapshot(hpo_snapshot_dir), LinkConfig(methods=["dictionary"]))


@pytest.fixture(scope="module")
def linked(dictionary_linker: QALinker):
    records = read_qa(DATA)
    return {r.id_in_dataset: lk for r, lk in zip(records, dictionary_linker.link(records), strict=True)}


def test_dictionary_links_phenotypes_diseases_and_genes(linked):
    q1 = linked["q1"]
    by_name = {link.name: link for link in q1.question}
    assert by_name["Arachnodactyly"].node_id == "hpo:HP:0001166"
    assert by_name["Aortic root aneurysm"].node_id == "hpo:HP:0002616"
    assert all(link.method == "dictionary" and link.score == 1.0 for link in q1.question)
    # the answer type comes from the options, all diseases; namesakes stay together
    assert q1.answer_types == ["disease"]
    assert q1.answer[0].node_ids == ["hpo:OMIM:154700", "hpo:ORPHA:558"]
    assert linked["q2"].answer[0].node_id == "hpo:NCBIGene:2200" and linked["q2"].answer[0].type == "gene"
    assert linked["q2"].question_nodes == ["hpo:OMIM:154700", "hpo:ORPHA:558"]
    # an open question: no options, so the answer may have any type
    assert linked["q7"].answer_types is None and linked["q7"].answer_nodes == ["hpo:HP:0001249"]
    assert linked["q7"].question_nodes[0] == "hpo:OMIM:261600"
    # nothing biomedical: no entity, no answer
    assert linked["q8"].question_nodes == [] and linked["q8"].answer == []
    assert linked["q9"].answer == []  # a drug: not in the HPO graph


def test_options_link_and_unlinked_options_stay_none(linked):
    assert [o.node_id if o else None for o in linked["q2"].options] == [
        "hpo:NCBIGene:1080", "hpo:NCBIGene:2200", "hpo:NCBIGene:3064", "hpo:NCBIGene:1756"
    ]
    assert all(o is None for o in linked["q8"].options)


def test_types_partial_answers_and_the_answer_is_never_a_question_entity(dictionary_linker: QALinker):
    phenotypes_only = QALinker(dictionary_linker.snapshot, LinkConfig(methods=["dictionary"], question_types=["phenotype"]))
    q = record("Ectopia lentis and arachnodactyly point to which disease?", "Marfan syndrome")
    ectopia = next(link for link in phenotypes_only.link([q])[0].question if link.mention == "ectopia lentis")
    assert ectopia.node_ids == ["hpo:HP:0001083"]  # the disease of that name is left out

    partial = dictionary_linker.link([record("Which disease presents with arachnodactyly?", "Marfan syndrome (autosomal dominant)")])[0]
    assert partial.answer[0].node_id == "hpo:OMIM:154700" and partial.answer[0].score == pytest.approx(0.5)

    named = dictionary_linker.link([record("Is Marfan syndrome the cause of arachnodactyly here?", "Marfan syndrome")])[0]
    assert "hpo:OMIM:154700" not in named.question_nodes and named.question_nodes == ["hpo:HP:0001166"]

    with pytest.raises(ConfigError, match="'drug', not a node type"):
        QALinker(dictionary_linker.snapshot, LinkConfig(methods=["dictionary"], answer_types=["drug"]))


@pytest.fixture(scope="module")
def cf_snapshot(hpo_snapshot_dir: Path, tmp_path_factory) -> Path:
    """The real HPO neighbourhood of cystic fibrosis (38 nodes): small enough to embed in a test."""
    full = read_snapshot(hpo_snapshot_dir)
    near = full.edges.filter((pl.col("src") == "hpo:OMIM:219700") | (pl.col("dst") == "hpo:OMIM:219700"))
    ids = pl.concat([near["src"], near["dst"]]).unique().implode()
    nodes = full.nodes.filter(pl.col("id").is_in(ids))
    edges = full.edges.filter(pl.col("src").is_in(ids) & pl.col("dst").is_in(ids))
    out = tmp_path_factory.mktemp("cf") / "snapshot"
    write_snapshot(build_snapshot(nodes, edges, vocabulary=full.vocabulary, name="hpo-cf", loader="test"), out)
    return out


def fresh_copy(snapshot: Path, to: Path) -> Path:
    """The snapshot without its caches (engine, name vectors): what `kgsynth load` leaves."""
    return Path(shutil.copytree(snapshot, to, ignore=shutil.ignore_patterns(".*")))


@pytest.fixture()
def counted(monkeypatch) -> list[str]:
    """Every text the model embeds, in order."""
    import kgsynth.ground.embed as embed

    seen: list[str] = []
    real = embed.encode

    def encode(texts: list[str]):
        seen.extend(texts)
        return real(texts)

    monkeypatch.setattr(embed, "encode", encode)
    return seen


def _links(linked) -> list[tuple]:
    return [(link.role, link.mention, link.node_id, link.method, round(link.score, 4), [c.node_id for c in link.candidates])
            for lk in linked for link in lk.all_links()]


def test_embeddings_on_the_full_graph_embed_only_the_names_mentions_reach(hpo_snapshot_dir: Path, tmp_path: Path, counted: list[str]):
    from kgsynth.ground.embed import POOL

    snapshot = read_snapshot(fresh_copy(hpo_snapshot_dir, tmp_path / "hpo"))
    records = read_qa(DATA)
    linker = QALinker(snapshot, LinkConfig())
    cold = linker.link(records)
    q3 = cold[2]
    pancreatic = next(link for link in q3.question if link.method == "embedding")
    assert pancreatic.mention == "pancreatic exocrine insufficiency"  # HPO: "Exocrine pancreatic insufficiency"
    assert pancreatic.node_id == "hpo:HP:0001738" and pancreatic.type == "phenotype"
    assert pancreatic.score >= LinkConfig().accept and pancreatic.candidates  # the runners-up are recorded
    assert "hpo:HP:0002110" in q3.question_nodes  # bronchiectasis: the dictionary's link is kept
    embedded = [link for lk in cold for link in lk.question if link.method == "embedding"]
    assert all((link.score >= LinkConfig().accept) == link.accepted for link in embedded)

    # the model saw the question spans and the pools of names they reach, never the whole graph
    names = linker.names()
    stats = linker.embedding_stats()
    spans = {t for t in counted if t not in {text.lower() for text in names.texts}}
    assert 0 < stats["embedded"] <= POOL * len(counted) and stats["embedded"] < len(names.texts) / 10
    assert stats["from_cache"] == 0 and len(counted) == stats["embedded"] + len(spans)
    assert len(counted) == len(set(counted))  # nothing embedded twice, namesakes ("Marfan syndrome" ×2) once
    assert list(tmp_path.glob("hpo/.name-vectors-*/part-*.parquet"))

    # a second run reads those names from the cache: the model sees only the spans, and every link is the same
    counted.clear()
    warm_linker = QALinker(read_snapshot(tmp_path / "hpo"), LinkConfig())
    warm = warm_linker.link(records)
    assert _links(warm) == _links(cold)
    assert sorted(counted) == sorted(spans)
    assert warm_linker.embedding_stats()["embedded"] == 0 and warm_linker.embedding_stats()["from_cache"] == stats["embedded"]


def test_only_the_allowed_types_are_embedded_and_a_damaged_cache_is_rebuilt(hpo_snapshot_dir: Path, tmp_path: Path, counted: list[str]):
    snapshot = read_snapshot(fresh_copy(hpo_snapshot_dir, tmp_path / "hpo"))
    q3 = read_qa(DATA)[2]
    config = LinkConfig(question_types=["phenotype"], answer_types=["gene"])
    linked = QALinker(snapshot, config).link([q3])[0]
    assert "hpo:HP:0001738" in linked.question_nodes
    types = dict(zip(snapshot.nodes["id"].to_list(), snapshot.nodes["type"].to_list(), strict=True))
    names = QALinker(snapshot, config).names()
    kind_of = {}
    for node_id, text in zip(names.node_ids, names.texts, strict=True):
        kind_of.setdefault(text.lower(), set()).add(types[node_id])
    embedded_names = [t for t in counted if t in kind_of]
    assert embedded_names and all("phenotype" in kind_of[t] for t in embedded_names)  # no disease or gene name

    [part] = tmp_path.glob("hpo/.name-vectors-*/part-*.parquet")
    part.write_bytes(b"not parquet")
    counted.clear()
    again = QALinker(read_snapshot(tmp_path / "hpo"), config)
    assert _links(again.link([q3])) == _links([linked])
    assert again.embedding_stats()["from_cache"] == 0 and sorted(t for t in counted if t in kind_of) == sorted(embedded_names)


def test_cli_says_how_many_names_it_embedded_and_read_from_the_cache(hpo_snapshot_dir: Path, tmp_path: Path, capsys):
    from kgsynth.cli import main

    snapshot = fresh_copy(hpo_snapshot_dir, tmp_path / "hpo")
    runs = []
    for out in (tmp_path / "cold", tmp_path / "warm"):
        main(["ground", str(DATA), "--snapshot", str(snapshot), "--out", str(out), "--limit", "3"])
        runs.append((json.loads((out / "ground.json").read_text())["name_embeddings"], capsys.readouterr().err))
    (cold, cold_said), (warm, warm_said) = runs
    assert cold["embedded"] > 0 and cold["from_cache"] == 0
    assert f"embedding linking: {cold['embedded']:,} node names embedded" in cold_said
    assert warm["embedded"] == 0 and warm["from_cache"] == cold["embedded"]
    assert f"0 node names embedded (0/s), {cold['embedded']:,} read from the cache" in " ".join(warm_said.split())
    assert pl.read_parquet(tmp_path / "cold" / "links.parquet").equals(pl.read_parquet(tmp_path / "warm" / "links.parquet"))


def test_the_numpy_model_gives_the_vectors_sentence_transformers_gives(hpo_snapshot: Snapshot):
    from kgsynth.ground.embed import encode
    from kgsynth.verify.dedup import DedupConfig, embed

    names = hpo_snapshot.nodes["name"].sample(200, seed=0).to_list()
    texts = [*names, "", "FBN1", "café-au-lait spots", " ".join(["abnormality of the hand"] * 80)]  # the last is truncated
    np.testing.assert_allclose(encode(texts), embed(texts, DedupConfig()), atol=1e-5)


def test_a_model_directory_that_is_not_a_bert_model_is_a_clear_error(tmp_path: Path):
    from kgsynth.ground.embed import NumpyBert

    with pytest.raises(ConfigError, match=r"not a sentence-transformers BERT model directory \(missing .*model.safetensors"):
        NumpyBert(tmp_path)


def test_length_sorted_batches_return_vectors_in_the_callers_order():
    from kgsynth.ground.embed import encode, encode_sorted

    texts = [("abnormality of the " * (i % 7)) + f"structure {i}" for i in range(300)]
    np.testing.assert_allclose(encode_sorted(texts, "test"), encode(texts), atol=1e-5)


def test_a_mention_sharing_no_trigram_with_any_name_reaches_no_node(hpo_snapshot: Snapshot):
    from kgsynth.ground.embed import name_index

    names = name_index(hpo_snapshot)
    pools = names.candidates(["qqqq", "exocrine pancreatic insufficiency"])
    assert len(pools[0]) == 0 and names.search(["qqqq"]) == [[]]
    reached = {names.node_ids[r] for r in pools[1]}
    assert "hpo:HP:0001738" in reached and len(pools[1]) == names.pool
    genes = names.candidates(["exocrine pancreatic insufficiency"], types={"gene"})[0]
    assert all(names.type_names[names.row_type[r]] == "gene" for r in genes)


def _responder(body: dict) -> str:
    system = body["messages"][0]["content"]
    user = body["messages"][-1]["content"]
    if "List the biomedical" in system:
        return json.dumps({"question_entities": ["Chorea", "no such thing"], "answer_entities": ["Huntington disease"]})
    if "link mentions" in system:
        # pick the candidate whose line names exocrine pancreatic insufficiency
        lines = user.splitlines()
        number = next(int(line.split(".")[0]) for line in lines if "Exocrine pancreatic insufficiency" in line)
        return json.dumps({"picks": [{"mention": 1, "candidate": number}]})
    raise AssertionError(system)


def test_model_extracts_and_disambiguates(cf_snapshot: Path, dictionary_linker: QALinker, tmp_path: Path):
    sys.path.insert(0, str(Path(__file__).parent))
    from llm_server import LLMServer

    from kgsynth.ground.llm import ModelSteps
    from kgsynth.llm.config import LLMConfig

    with LLMServer(responder=_responder) as server:
        steps = ModelSteps(LLMConfig(model="local", base_url=server.url, cache_path=tmp_path / "cache.sqlite"))
        q = record("An adult has involuntary dance-like movements. What is the diagnosis?", "HD")
        linked = dictionary_linker.link([q])
        assert linked[0].question_nodes == [] and linked[0].answer == []
        refine_with_model(dictionary_linker, [q], linked, steps)
        assert [(link.node_id, link.method) for link in linked[0].question] == [("hpo:HP:0002072", "llm")]
        assert linked[0].answer[0].node_ids == ["hpo:OMIM:143100", "hpo:ORPHA:399"]

        linker = QALinker(read_snapshot(cf_snapshot), LinkConfig(accept=0.999))
        q3 = read_qa(DATA)[2]
        linked = linker.link([q3])
        refine_with_model(linker, [q3], linked, steps)
        chosen = [link for link in linked[0].question if link.method == "llm"]
        assert [(link.mention, link.node_id) for link in chosen] == [("pancreatic exocrine insufficiency", "hpo:HP:0001738")]
        assert steps.summary()["stages"]["ground_extract"]["calls"] == 1
        assert steps.summary()["stages"]["ground_disambiguate"]["calls"] == 1
