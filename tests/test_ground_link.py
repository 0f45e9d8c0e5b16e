"""Entity linking of QA pairs on the real HPO graph: dictionary, embeddings, the model's help."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl
import pytest

from kgsynth.errors import ConfigError
from kgsynth.graph.snapshot import build_snapshot, read_snapshot, write_snapshot
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


def test_embeddings_link_what_the_dictionary_misses_and_are_cached(cf_snapshot: Path, monkeypatch):
    snapshot = read_snapshot(cf_snapshot)
    q3 = read_qa(DATA)[2]
    linked = QALinker(snapshot, LinkConfig()).link([q3])[0]
    embedded = {link.mention: link for link in linked.question if link.method == "embedding"}
    pancreatic = embedded["pancreatic exocrine insufficiency"]  # HPO: "Exocrine pancreatic insufficiency"
    assert pancreatic.node_id == "hpo:HP:0001738" and pancreatic.type == "phenotype"
    assert pancreatic.score >= LinkConfig().accept and pancreatic.candidates  # the runners-up are recorded
    assert all((link.score >= LinkConfig().accept) == link.accepted for link in embedded.values())
    assert "hpo:HP:0002110" in linked.question_nodes  # bronchiectasis: the dictionary's link is kept

    # a second linker reads the name embeddings cached beside the snapshot instead of embedding again
    cache = list(cf_snapshot.glob(".embeddings-*/*.npy"))
    assert {p.stem for p in cache} == {"disease", "gene", "phenotype"}
    import kgsynth.ground.embed as embed

    monkeypatch.setattr(embed, "_embed_names", lambda *a: pytest.fail("node names embedded twice"))
    strict = QALinker(snapshot, LinkConfig(accept=0.999)).link([q3])[0]
    offered = [link for link in strict.question if not link.accepted]
    assert offered and offered[0].mention == "pancreatic exocrine insufficiency"
    assert offered[0].candidates[0].node_id == "hpo:HP:0001738" and offered[0].node_id is None


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
