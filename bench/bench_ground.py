"""Benchmark: questions per second for entity linking and path finding on the HPO graph (no model).

Questions are written from the graph itself, in the shapes exam questions take:
"A patient presents with P1, P2 and P3. Which disease is the most likely
diagnosis?" (four disease options), "Which gene is associated with D?" (four gene
options) and open "Which phenotype is a clinical feature of D?". Every entity is a
real HPO name, so the figures measure the work, not the misses.

    python bench/bench_ground.py --questions 2000
    python bench/bench_ground.py --questions 300 --embedding   # + embedding linking of paraphrases
    python bench/bench_ground.py --precision 300 --snapshot DIR  # embedding linker precision per threshold

Linking and path finding are timed separately and together (what `kgsynth ground`
reports as questions/s for linking + path finding). One-off costs are printed on
their own: building the name dictionary, and with --embedding loading the model
and embedding every node name (cached beside the snapshot: the first run pays it
once, later runs read it). Prints figures only, with the load average, because the
numbers are only as quiet as the machine.

`--precision N` measures the embedding linker's precision at accept thresholds
0.80-0.95 on three labelled sets of N mentions built from the HPO names: a
phenotype's synonym with that exact string held out of the index (the link is
right when it reaches the term, or a node whose name has the same words: OMIM's
and HPO's namesakes), a phenotype or disease name with its first two words swapped
or its last word's number changed ("syndrome moebius", "fryns syndromes"; right:
the term or a namesake), and a word of a name that names no node
("phenylalanine", "stature"), where any link is wrong. Give --snapshot a directory whose name
embeddings are cached: the first run embeds all 59,311 names and synonyms.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

import polars as pl

from kgsynth.graph.engine import open_engine
from kgsynth.graph.snapshot import Snapshot, read_snapshot, write_snapshot
from kgsynth.ground.link import LinkConfig, QALinker
from kgsynth.ground.paths import find_paths
from kgsynth.ground.qa import QAOption, QARecord


def hpo_snapshot(where: Path) -> Snapshot:
    from kgsynth.loaders import load

    if not (where / "manifest.json").exists():
        write_snapshot(load("hpo", []), where)
    return read_snapshot(where)


def make_questions(snapshot: Snapshot, n: int, seed: int, *, paraphrase: bool = False) -> list[QARecord]:
    """Exam-style questions from the graph; with `paraphrase`, the first phenotype of each
    diagnosis question has its first two words swapped ("pancreatic exocrine
    insufficiency"), which the dictionary cannot match and the embeddings should."""
    rng = random.Random(seed)
    nodes = snapshot.nodes.select("id", "name", "type")
    name = dict(zip(nodes["id"].to_list(), nodes["name"].to_list(), strict=True))
    edges = snapshot.edges
    has = (
        edges.filter(pl.col("relation") == "has_phenotype")
        .group_by("src")
        .agg(pl.col("dst").sort())
        .filter(pl.col("dst").list.len() >= 3)
        .sort("src")  # group_by's order varies: the same seed must give the same questions
    )
    genes = edges.filter(pl.col("relation") == "gene_associated_with_disease").sort("src", "dst")
    diseases = nodes.filter(pl.col("type") == "disease")["id"].to_list()
    gene_ids = nodes.filter(pl.col("type") == "gene")["id"].to_list()
    phenotype_rows = has.rows()
    gene_rows = genes.select("src", "dst").rows()
    records = []
    for i in range(n):
        shape = i % 3
        if shape == 0:
            disease, phenotypes = rng.choice(phenotype_rows)
            shown = [name[p] for p in rng.sample(phenotypes, 3)]
            words = shown[0].split()
            if paraphrase and len(words) >= 2:
                shown[0] = " ".join([words[1], words[0], *words[2:]]).lower()
            question = f"A patient presents with {shown[0]}, {shown[1]} and {shown[2]}. Which disease is the most likely diagnosis?"
            options = [disease, *rng.sample(diseases, 3)]
        elif shape == 1:
            gene, disease = rng.choice(gene_rows)
            question = f"Which gene is associated with {name[disease]}?"
            options = [gene, *rng.sample(gene_ids, 3)]
        else:
            disease, phenotypes = rng.choice(phenotype_rows)
            question = f"Which phenotype is a clinical feature of {name[disease]}?"
            options = [rng.choice(phenotypes)]
        answer = options[0]
        rng.shuffle(options)
        labelled = [QAOption(label=chr(65 + j), text=name[o]) for j, o in enumerate(options)] if len(options) > 1 else []
        records.append(QARecord(
            dataset_name="bench", id_in_dataset=str(i), question=question, options=labelled, answer=name[answer],
            answer_label=chr(65 + options.index(answer)) if labelled else None, row=i + 1,
        ))
    return records


THRESHOLDS = (0.80, 0.82, 0.84, 0.85, 0.86, 0.88, 0.90, 0.92, 0.95)


def labelled_mentions(snapshot: Snapshot, known: set[str], n: int, seed: int) -> dict[str, list[tuple[str, str | None, str]]]:
    """(mention, the node it names or None, that node's string it stands for) per set; see the module docstring. `known`: every
    casefolded name and synonym of the graph, which the dictionary would have matched."""
    from kgsynth.ground.link import QUESTION_WORDS
    from kgsynth.verify.text import COMMON_WORDS

    rng = random.Random(seed)
    rows = snapshot.nodes.filter(pl.col("type").is_in(["phenotype", "disease"])).select("id", "name", "type", "synonyms").rows()
    rng.shuffle(rows)
    sets: dict[str, list[tuple[str, str | None, str]]] = {"held-out synonym": [], "reordered or plural name": [], "part of a name, no node": []}
    held, changed, parts = sets.values()
    taken: set[str] = set()
    for node_id, name, node_type, synonyms in rows:
        words = name.split()
        if len(held) < n and node_type == "phenotype":
            own = [s.casefold() for s in synonyms or [] if s.casefold() != name.casefold()]
            if own:
                synonym = rng.choice(own)
                held.append((synonym, node_id, synonym))
                continue
        if len(changed) < n and len(words) >= 2:
            if rng.random() < 0.5:
                text = " ".join([words[1], words[0], *words[2:]]).casefold()
            else:
                last = words[-1]
                text = " ".join([*words[:-1], last[:-1] if last.endswith("s") else last + "s"]).casefold()
            if text not in known:
                changed.append((text, node_id, name))
                continue
        if len(parts) < n and len(words) >= 2:
            text = rng.choice(words).casefold().strip(",()")
            if (
                text.isalpha() and len(text) >= 4 and text not in COMMON_WORDS and text not in QUESTION_WORDS
                and not {text, text + "s", text.removesuffix("s")} & known
                and text not in taken
            ):
                taken.add(text)
                parts.append((text, None, ""))
    return sets


def measure_precision(snapshot: Snapshot, n: int, seed: int) -> None:
    import numpy as np

    from kgsynth.ground.embed import encode, name_index
    from kgsynth.verify.text import normalize

    clock = time.perf_counter()
    names = name_index(snapshot)
    print(f"name embeddings: {len(names.node_ids):,} names and synonyms, ready in {time.perf_counter() - clock:.1f}s")
    folded = np.array([t.casefold() for t in names.texts])
    words_of = {node_id: set() for node_id in names.node_ids}
    for node_id, text in zip(names.node_ids, names.texts, strict=True):
        words_of[node_id].add(" ".join(sorted(normalize(text).split())))
    sets = labelled_mentions(snapshot, set(folded.tolist()), n, seed)
    best: dict[str, list[tuple[float, bool, str, str]]] = {}  # set → (cosine, right, mention, text reached)
    for label, mentions in sets.items():
        scores = encode([m for m, _, _ in mentions]) @ names.matrix.T
        judged = []
        for i, (mention, gold, meant) in enumerate(mentions):
            if label == "held-out synonym":
                scores[i, folded == mention] = -np.inf
            row = int(np.argmax(scores[i]))
            reached = names.node_ids[row]
            right = gold is not None and (reached == gold or " ".join(sorted(normalize(meant).split())) in words_of[reached])
            judged.append((float(scores[i, row]), right, mention, names.texts[row]))
        best[label] = judged
    print(f"mentions: {', '.join(f'{label} {len(m)}' for label, m in sets.items())}")
    print("accept | " + " | ".join(f"{label:>27}" for label in sets) + " | precision | recall")
    for threshold in THRESHOLDS:
        cells, linked, right, positives = [], 0, 0, 0
        for label, judged in best.items():
            taken = [ok for score, ok, _, _ in judged if score >= threshold]
            good = sum(taken)
            cells.append(f"{good:4d} right {len(taken) - good:4d} wrong")
            linked, right = linked + len(taken), right + good
            positives += len(judged) if label != "part of a name, no node" else 0
        print(f"  {threshold:.2f} | " + " | ".join(f"{c:>27}" for c in cells) + f" | {right / max(linked, 1):9.3f} | {right / positives:6.3f}")
    for label, judged in best.items():
        wrong = sorted((j for j in judged if not j[1] and j[0] >= THRESHOLDS[0]), reverse=True)
        print(f"{label}: wrong links at or above {THRESHOLDS[0]}, e.g. " + "; ".join(
            f"'{mention}' -> '{text}' {score:.2f}" for score, _, mention, text in wrong[:: max(1, len(wrong) // 8)][:8]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=2000)
    parser.add_argument("--embedding", action="store_true", help="also link by embeddings (needs torch)")
    parser.add_argument("--snapshot", type=Path, help="an HPO snapshot directory (default: built in a temp dir)")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--max-hops", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", type=int, metavar="N", help="measure embedding linking precision on N mentions per set instead")
    args = parser.parse_args()
    if args.precision:
        with tempfile.TemporaryDirectory() as tmp:
            measure_precision(hpo_snapshot(args.snapshot or Path(tmp) / "snapshot"), args.precision, args.seed)
            print(f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPU(s)")
        return

    with tempfile.TemporaryDirectory() as tmp:
        clock = time.perf_counter()
        snapshot = hpo_snapshot(args.snapshot or Path(tmp) / "snapshot")
        engine = open_engine(snapshot)
        print(f"HPO snapshot: {snapshot.manifest.counts.nodes:,} nodes, {snapshot.manifest.counts.edges:,} edges "
              f"(ready in {time.perf_counter() - clock:.1f}s)")
        records = make_questions(snapshot, args.questions, args.seed, paraphrase=args.embedding)
        methods = ["dictionary", "embedding"] if args.embedding else ["dictionary"]

        clock = time.perf_counter()
        linker = QALinker(snapshot, LinkConfig(methods=methods))
        print(f"one-off: name dictionary built in {time.perf_counter() - clock:.2f}s")
        if args.embedding:
            clock = time.perf_counter()
            linker.prepare()
            print(f"one-off: model loaded and node names embedded or read from cache in {time.perf_counter() - clock:.1f}s")

        clock = time.perf_counter()
        linked = linker.link(records)
        link_s = time.perf_counter() - clock
        clock = time.perf_counter()
        search = find_paths(engine, linked, k=args.k, max_hops=args.max_hops, seed=args.seed, max_pairs=25)
        path_s = time.perf_counter() - clock

        n = len(records)
        with_paths = len(search.paths)
        found = sum(len(rows) for rows in search.paths.values())
        print(f"questions: {n:,} ({'+'.join(methods)} linking, k={args.k}, max {args.max_hops} hops)")
        print(f"linking:            {link_s:7.2f}s  {n / link_s:10,.1f} questions/s")
        print(f"path finding:       {path_s:7.2f}s  {n / path_s:10,.1f} questions/s  ({search.pairs:,} pairs, {found:,} paths)")
        print(f"linking + paths:    {link_s + path_s:7.2f}s  {n / (link_s + path_s):10,.1f} questions/s")
        if args.embedding:
            embedded = sum(1 for lk in linked for link in lk.question if link.method == "embedding" and link.accepted)
            print(f"embedding links accepted: {embedded:,}")
        print(f"coverage: {sum(1 for lk in linked if lk.question_nodes):,} with question entities, "
              f"{sum(1 for lk in linked if lk.answer_nodes):,} with a linked answer, {with_paths:,} with a path")
        print(f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPU(s)")


if __name__ == "__main__":
    main()
