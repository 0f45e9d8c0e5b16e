"""Benchmark: questions per second for entity linking and path finding on the HPO graph (no model).

Questions are written from the graph itself, in the shapes exam questions take:
"A patient presents with P1, P2 and P3. Which disease is the most likely
diagnosis?" (four disease options), "Which gene is associated with D?" (four gene
options) and open "Which phenotype is a clinical feature of D?". Every entity is a
real HPO name, so the figures measure the work, not the misses.

    python bench/bench_ground.py --questions 2000
    python bench/bench_ground.py --questions 300 --embedding   # + embedding linking of paraphrases

Linking and path finding are timed separately and together (what `kgsynth ground`
reports as questions/s for linking + path finding). One-off costs are printed on
their own: building the name dictionary, and with --embedding loading the model
and embedding every node name (cached beside the snapshot: the first run pays it
once, later runs read it). Prints figures only, with the load average, because the
numbers are only as quiet as the machine.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=2000)
    parser.add_argument("--embedding", action="store_true", help="also link by embeddings (needs torch)")
    parser.add_argument("--snapshot", type=Path, help="an HPO snapshot directory (default: built in a temp dir)")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--max-hops", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

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
