"""The relation corpus (tests/data/relation_corpus.jsonl) filled with entity names and judged.

Each corpus line is a step sentence for one relation of a bundled vocabulary, with
`{A}` and `{B}` for its two entities (`reading` forward: A is the stored edge's
source), what it asserts (`kind`: a paraphrase of the relation, a misstatement —
another relation family —, the relation the wrong way round, or a negation) and
whether verification must accept it (`expect`: stated) or reject it (misstated).

HPO sentences are filled with the names of real edges of the relation from the HPO
graph (PrimeKG ones, in the benchmark, from a PrimeKG snapshot) and judged exactly
as verification's thinking check judges a step (the snapshot's name dictionary, the
snapshot's lexicon, every relation the graph holds between the two); sentences of
any vocabulary can also be filled with made-up names of the right kinds, linked by a
dictionary of the two names (as `kgsynth.reward` does without a snapshot) and judged
with the bundled vocabulary's lexicon.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kgsynth.graph.vocabulary import load_vocabulary
from kgsynth.verify.lexicon import MISSTATED, STATED, UNSURE, lexicon_of
from kgsynth.verify.relation import StepReader, engine_facts, path_steps
from kgsynth.verify.text import linker_for_names

CORPUS = Path(__file__).parent / "data" / "relation_corpus.jsonl"

# made-up names by kind (none contains a word of the lexicon)
NAMES = {
    "drug": ["Metformin", "Lisinopril", "Warfarin", "Atorvastatin", "Amoxicillin", "Sertraline", "Imatinib", "Tacrolimus"],
    "disease": ["Type 2 diabetes mellitus", "Essential hypertension", "Marfan syndrome", "Chronic myeloid leukemia",
                "Rheumatoid arthritis", "Parkinson disease", "Cystic fibrosis", "Asthma"],
    "phenotype": ["Arachnodactyly", "Ectopia lentis", "Hepatomegaly", "Ataxia", "Tremor", "Macrocephaly", "Nystagmus", "Scoliosis"],
    "protein": ["EGFR", "TP53", "BRCA1", "ABL1", "CFTR", "FBN1", "KRAS", "INSR"],
    "anatomy": ["Liver", "Cerebellum", "Renal cortex", "Left ventricle", "Hippocampus", "Pancreatic islet", "Retina", "Spleen"],
    "process": ["Glycolysis", "Apoptotic signaling", "Angiogenesis", "Autophagy", "DNA repair", "Lipid transport"],
    "function": ["Kinase activity", "Ion channel activity", "Transcription factor binding", "Hydrolase activity"],
    "component": ["Mitochondrial matrix", "Nucleolus", "Golgi apparatus", "Plasma membrane", "Cytosol"],
    "exposure": ["Cigarette smoke", "Arsenic", "Benzene", "Particulate matter", "Lead"],
    "concept": ["Myocardial infarction", "Heart attack", "Acute coronary event", "Cardiac arrest", "Angina pectoris"],
    "site": ["Heart structure", "Coronary artery", "Femur", "Skin of forearm", "Lung parenchyma"],
    "organism": ["Streptococcus pneumoniae", "Plasmodium falciparum", "Influenza A virus", "Mycobacterium tuberculosis"],
    "mechanism": ["Cyclooxygenase inhibition", "Beta adrenergic blockade", "Proton pump inhibition"],
    "brand": ["Glucophage", "Zestril", "Coumadin", "Lipitor"],
    "test": ["Sweat chloride test", "Echocardiography", "Serum ferritin measurement", "Spirometry"],
    "pathway": ["Insulin signaling pathway", "Wnt signaling pathway"],
}

# forward reading: (kind of A, kind of B)
KINDS = {
    "indication": ("drug", "disease"), "contraindication": ("drug", "disease"), "off-label use": ("drug", "disease"),
    "drug_effect": ("drug", "phenotype"), "drug_protein": ("drug", "protein"), "protein_protein": ("protein", "protein"),
    "disease_phenotype_positive": ("disease", "phenotype"), "disease_phenotype_negative": ("disease", "phenotype"),
    "anatomy_protein_present": ("protein", "anatomy"), "anatomy_protein_absent": ("protein", "anatomy"),
    "bioprocess_protein": ("protein", "process"), "molfunc_protein": ("protein", "function"),
    "cellcomp_protein": ("protein", "component"), "phenotype_phenotype": ("phenotype", "phenotype"),
    "anatomy_anatomy": ("anatomy", "anatomy"), "disease_protein": ("protein", "disease"),
    "exposure_disease": ("exposure", "disease"), "drug_drug": ("drug", "drug"),
    "may_treat": ("drug", "disease"), "may_prevent": ("drug", "disease"), "may_diagnose": ("test", "disease"),
    "part_of": ("anatomy", "anatomy"), "cause_of": ("concept", "concept"), "has_causative_agent": ("disease", "organism"),
    "has_finding_site": ("concept", "site"), "SY": ("concept", "concept"), "SIB": ("concept", "concept"),
    "RN": ("concept", "concept"), "tradename_of": ("brand", "drug"), "has_mechanism_of_action": ("drug", "mechanism"),
    "has_active_ingredient": ("brand", "drug"), "located_in": ("protein", "component"), "treats": ("drug", "disease"),
    "causes": ("concept", "concept"), "interacts_with": ("protein", "protein"),
}


@dataclass(frozen=True)
class Sentence:
    vocabulary: str
    relation: str
    reading: str
    kind: str
    family: str
    text: str
    expect: str
    set: str = "tuned"  # "heldout": written after the lexicon was tuned on the rest, measured as written


def read_corpus(path: Path = CORPUS) -> list[Sentence]:
    return [Sentence(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass
class Tally:
    """Verdicts by expectation and kind, with examples of what went wrong."""

    verdicts: Counter = field(default_factory=Counter)  # (expect, kind, verdict) → count
    wrong: list[str] = field(default_factory=list)
    unlinked: int = 0

    def add(self, sentence: Sentence, text: str, verdict: str, reason: str = "") -> None:
        self.verdicts[(sentence.expect, sentence.kind, verdict)] += 1
        failed = (verdict == MISSTATED) != (sentence.expect == "misstated")
        if failed and len(self.wrong) < 400:
            self.wrong.append(f"[{sentence.vocabulary}:{sentence.relation}:{sentence.reading}:{sentence.kind}] {text} -> {verdict} {reason}")

    def count(self, expect: str, verdict: str | None = None, kind: str | None = None) -> int:
        return sum(n for (e, k, v), n in self.verdicts.items() if e == expect and (verdict is None or v == verdict) and (kind is None or k == kind))

    @property
    def caught(self) -> float:
        """Share of misstatements (other family, wrong way round, negation) rejected."""
        total = self.count("misstated")
        return self.count("misstated", MISSTATED) / total if total else 1.0

    @property
    def falsely_rejected(self) -> float:
        """Share of correct paraphrases rejected."""
        total = self.count("stated")
        return self.count("stated", MISSTATED) / total if total else 0.0

    @property
    def unsure(self) -> float:
        """Share of correct paraphrases the lexicon could not read (accepted; a model would be asked)."""
        total = self.count("stated")
        return self.count("stated", UNSURE) / total if total else 0.0


def judge_made_up(sentences: list[Sentence], *, per_sentence: int = 3, seed: int = 0, tally: Tally | None = None) -> Tally:
    """Non-HPO sentences with made-up names, each filled `per_sentence` times (HPO ones need the graph: `judge_real`)."""
    rng = random.Random(seed)
    tally = tally or Tally()
    lexicons = {}
    for s in sentences:
        if s.vocabulary == "hpo":
            continue
        lexicon = lexicons.get(s.vocabulary) or lexicons.setdefault(s.vocabulary, lexicon_of(load_vocabulary(s.vocabulary)))
        kinds = KINDS[s.relation] if s.reading == "forward" else KINDS[s.relation][::-1]
        for _ in range(per_sentence):
            a = rng.choice(NAMES[kinds[0]])
            b = rng.choice([n for n in NAMES[kinds[1]] if n != a])
            text = s.text.format(A=a, B=b)
            linker = linker_for_names({"a": [a], "b": [b]})
            verdict, reason = _verdict(StepReader(lexicon, text, linker.link(text)), ["a", "b"], s.relation, s.reading == "forward")
            if verdict is None:
                tally.unlinked += 1
                continue
            tally.add(s, text, verdict, reason)
    return tally


def real_edges(index, relation: str, n: int, *, seed: int = 0) -> list[tuple[int, int]]:
    """Up to n stored edges (source, target) of the relation whose two ends the name dictionary knows
    and that no other relation joins (a sentence stating the other one would be true of the graph)."""
    engine = index.engine
    code = engine.relation_index[relation]
    rows = np.flatnonzero(np.asarray(engine.edge_rel) == code)
    rng = np.random.default_rng(seed)
    out = []
    forms = index.linker.forms
    between = engine_facts(index)
    for r in rng.permutation(rows).tolist():
        u, v = int(engine.edge_src[r]), int(engine.edge_dst[r])
        if u in forms and v in forms and {f.relation for f in between((u,), (v,))} == {relation}:
            out.append((u, v))
        if len(out) >= n:
            break
    return out


def judge_real(
    sentences: list[Sentence], index, *, vocabulary: str = "hpo", edges_per_relation: int = 40, per_sentence: int = 3,
    seed: int = 0, tally: Tally | None = None,
) -> Tally:
    """One vocabulary's sentences filled with the names of real edges of the graph `index` is over
    (the HPO graph; a PrimeKG snapshot), judged as the thinking check judges a step."""
    rng = random.Random(seed)
    tally = tally or Tally()
    facts = engine_facts(index)
    edges = {}
    for s in sentences:
        if s.vocabulary != vocabulary or s.relation not in index.engine.relation_index:
            continue
        pool = edges.get(s.relation) or edges.setdefault(s.relation, real_edges(index, s.relation, edges_per_relation, seed=seed))
        for u, v in rng.sample(pool, min(per_sentence, len(pool))):
            a, b = (u, v) if s.reading == "forward" else (v, u)
            text = s.text.format(A=index.names[a], B=index.names[b])
            reader = StepReader(index.lexicon, text, index.linker.link(text))
            verdict, reason = _verdict(reader, [a, b], s.relation, s.reading == "forward", facts)
            if verdict is None:
                tally.unlinked += 1
                continue
            tally.add(s, text, verdict, reason)
    return tally


def _verdict(reader: StepReader, path: list, relation: str, forward: bool, facts=None) -> tuple[str | None, str]:
    """The step's verdict (None: the two entities are not named next to each other in one sentence)."""
    mentions = reader.mentions
    named = any(
        path[0] in mentions[i - 1].nodes and path[1] in mentions[i].nodes and mentions[i - 1].sentence == mentions[i].sentence
        for i in range(1, len(mentions))
    )
    if not named:
        return None, ""
    steps = [s for s in path_steps(reader, path, [relation], [forward], facts) if s.hop == 0]
    for verdict in (MISSTATED, UNSURE):
        found = next((s for s in steps if s.judgement.verdict == verdict), None)
        if found is not None:
            return verdict, found.judgement.reason
    return STATED, ""
