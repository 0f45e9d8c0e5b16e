"""Relation check benchmark (issue 14): what the lexicon catches, what it wrongly rejects, what it costs.

1. corpus (tests/data/relation_corpus.jsonl): step sentences per relation family —
   correct paraphrases, misstatements (another family), the relation the wrong way
   round, negations — filled with the names of real edges (HPO sentences: the HPO
   graph; PrimeKG sentences: the PrimeKG-like graph) and, for every vocabulary, with
   made-up names; judged on the lexicon path as the thinking check judges a step.
   Figures per set: "tuned" (the lexicon was tuned on it), "heldout" and "heldout2"
   (each written before the lexicon was last changed; see the report for the figures
   they gave when first measured).
2. template items: the real pipeline — k-Shattering, the walk sampler on the pruned
   graph, the template writer — over the HPO graph and the PrimeKG-like graph, every
   item verified with all graph checks. The template writer states each hop in its
   relation's own wording, so any RELATION_MISSTATED among them is a false rejection.
3. throughput of the graph stage on those items, side by side in one run: the code
   before this change (the `--base` commit, unpacked with `git archive` and run in a
   subprocess on the same items), relation_check=off, relation_check=lexicon. Best of
   `--repeats` (wall and CPU seconds; the machine is shared, the load average is printed).

Prints figures; asserts nothing.

    python bench/bench_relation.py                       # HPO, then PrimeKG-like
    python bench/bench_relation.py --skip-primekg --paths 5000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_verify import load, pipeline  # noqa: E402
from relation_corpus import Tally, judge_made_up, judge_real, read_corpus  # noqa: E402

from kgsynth.graph.snapshot import Snapshot, read_snapshot, write_snapshot  # noqa: E402
from kgsynth.verify import verify_items  # noqa: E402
from kgsynth.verify.index import graph_index  # noqa: E402

BASELINE = """
import json, sys, time
import polars as pl
from kgsynth.graph.snapshot import read_snapshot
from kgsynth.verify import verify_items
items, snapshot, hubs, repeats = pl.read_parquet(sys.argv[1]), read_snapshot(sys.argv[2]), json.loads(open(sys.argv[3]).read()), int(sys.argv[4])
verify_items(items.head(100), snapshot, hubs=hubs)
best = {"wall": float("inf"), "cpu": float("inf"), "thinking_wall": float("inf"), "thinking_cpu": float("inf")}
for _ in range(repeats):
    s = verify_items(items, snapshot, hubs=hubs).summary
    best = {"wall": min(best["wall"], s["seconds"]["graph"]), "cpu": min(best["cpu"], s["cpu_seconds"]["graph"]),
            "thinking_wall": min(best["thinking_wall"], s["seconds"]["check:thinking"]),
            "thinking_cpu": min(best["thinking_cpu"], s["cpu_seconds"]["check:thinking"])}
print(json.dumps(best))
"""


def tally_line(name: str, tally: Tally) -> str:
    misstated, stated = tally.count("misstated"), tally.count("stated")
    kinds = ", ".join(
        f"{kind} {tally.count('misstated', 'misstated', kind):,}/{tally.count('misstated', kind=kind):,}"
        for kind in ("misstatement", "reversed", "negation")
    )
    return (
        f"  {name:34s} misstated steps caught {tally.caught:7.2%} ({tally.count('misstated', 'misstated'):,}/{misstated:,}: {kinds}); "
        f"paraphrases falsely rejected {tally.falsely_rejected:6.2%} ({tally.count('stated', 'misstated'):,}/{stated:,}), "
        f"unsure {tally.unsure:6.2%}; not named side by side {tally.unlinked:,}"
    )


def bench_corpus(hpo: Snapshot, primekg: Snapshot | None, args) -> None:
    corpus = read_corpus()
    print(f"\n-- corpus: {len(corpus):,} sentences over {len({(s.vocabulary, s.relation) for s in corpus})} relations ({load()})")
    hpo_index = graph_index(hpo)
    for name in ("tuned", "heldout", "heldout2", None):
        part = [s for s in corpus if name is None or s.set == name]
        label = name or "all"
        print(tally_line(f"{label}: HPO, real names", judge_real(part, hpo_index, per_sentence=args.per_sentence, edges_per_relation=400)))
        if primekg is not None:
            tally = judge_real(part, graph_index(primekg), vocabulary="primekg", per_sentence=args.per_sentence, edges_per_relation=400)
            print(tally_line(f"{label}: PrimeKG-like, real names", tally))
        print(tally_line(f"{label}: all but HPO, made-up names", judge_made_up(part, per_sentence=args.per_sentence)))
    if primekg is not None:
        graph_index(hpo)  # the PrimeKG index replaced it in the cache: build it again before timing HPO


def baseline_code(base: str, into: Path) -> Path | None:
    """The package as it was at `base`, unpacked (no checkout: the working tree is shared)."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", base, "kgsynth", "ontologies"], capture_output=True, check=False)
    if archive.returncode:
        print(f"  (no baseline: git archive {base} failed: {archive.stderr.decode().strip()[:200]})")
        return None
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def bench_graph(name: str, full: Snapshot, args, workdir: Path, base: Path | None) -> None:
    print(f"\n=== {name}: {full.manifest.counts.nodes:,} nodes, {full.manifest.counts.edges:,} edges ({load()})")
    items, hubs, figures = pipeline(full, workdir, paths=args.paths, hops=args.hops, k=args.k, pairs=args.pairs, seed=args.seed)
    kinds = dict(items["kind"].value_counts().iter_rows())
    hops = dict(items["hops"].value_counts().sort("hops").iter_rows())
    relations = items["relations"].explode().n_unique()
    backwards = items["forward"].explode().not_().sum()
    print(f"pipeline: {items.height:,} template items ({kinds}; hops {hops}; {relations} relations; {backwards:,} hops walked against the stored edge)")

    result = verify_items(items, full, hubs=hubs)
    misstated = result.summary["by_reason"].get("RELATION_MISSTATED", 0)
    print(f"\n-- template items: RELATION_MISSTATED {misstated:,} of {items.height:,} items (false rejections: the writer states each hop in its own wording)")
    print(f"   all rejections by reason: {result.summary['by_reason']}")
    for row in result.rejected.filter(pl.col("reasons").list.contains("RELATION_MISSTATED")).head(3).iter_rows(named=True):
        print("   e.g.", next(v["detail"] for v in row["verdicts"] if v["code"] == "RELATION_MISSTATED")[:300])

    items_path, hubs_path = workdir / "timed_items.parquet", workdir / "hubs.json"
    items.write_parquet(items_path)
    hubs_path.write_text(json.dumps(hubs))
    print(f"\n-- throughput, {items.height:,} items, all graph checks, best of {args.repeats} ({load()})")
    rows = {}
    if base is not None:
        env = {**os.environ, "PYTHONPATH": str(base)}
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", BASELINE, str(items_path), str(full.path), str(hubs_path), str(args.repeats)],
                             capture_output=True, text=True, env=env, check=False)
        if out.returncode:
            print(f"  baseline failed: {out.stderr.strip()[-300:]}")
        else:
            rows[f"before ({args.base})"] = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"  (baseline subprocess took {time.perf_counter() - started:.0f}s; {load()})")
    verify_items(items.head(100), full, hubs=hubs)
    best = {mode: {"wall": float("inf"), "cpu": float("inf"), "thinking_wall": float("inf"), "thinking_cpu": float("inf")} for mode in ("off", "lexicon")}
    for _ in range(args.repeats):  # interleaved, so both modes see the same load
        for mode in ("off", "lexicon"):
            s = verify_items(items, full, hubs=hubs, relation_check=mode).summary
            b = best[mode]
            b["wall"], b["cpu"] = min(b["wall"], s["seconds"]["graph"]), min(b["cpu"], s["cpu_seconds"]["graph"])
            b["thinking_wall"] = min(b["thinking_wall"], s["seconds"]["check:thinking"])
            b["thinking_cpu"] = min(b["thinking_cpu"], s["cpu_seconds"]["check:thinking"])
    rows["relation_check=off"] = best["off"]
    rows["relation_check=lexicon"] = best["lexicon"]
    n = items.height
    for label, b in rows.items():
        print(
            f"  {label:24s} graph stage {b['wall']:6.2f}s wall → {n / b['wall']:9,.0f} items/s; {b['cpu']:6.2f}s CPU → "
            f"{n / b['cpu']:9,.0f} items per CPU-second; thinking check {b['thinking_wall']:.2f}s wall / {b['thinking_cpu']:.2f}s CPU"
        )
    print(f"  ({load()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--primekg", type=Path, default=Path("/work/bench_data/primekg_snapshot"))
    parser.add_argument("--skip-primekg", action="store_true")
    parser.add_argument("--paths", type=int, default=20000, help="paths to sample per graph")
    parser.add_argument("--hops", default="2-3")
    parser.add_argument("--k", type=float, default=50.0, help="k-Shattering k")
    parser.add_argument("--pairs", type=int, default=2000, help="k-Shattering sampled pairs")
    parser.add_argument("--repeats", type=int, default=3, help="timed verification runs per mode (the best counts)")
    parser.add_argument("--per-sentence", type=int, default=5, help="fillings of each corpus sentence")
    parser.add_argument("--base", default="f046e4e^", help="commit of the code before the relation check")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_relation_") as tmp:
        tmp = Path(tmp)
        from kgsynth.loaders import load as run_loader

        hpo = read_snapshot(write_snapshot(run_loader("hpo", []), tmp / "hpo" / "snapshot"))
        primekg = None
        if not args.skip_primekg:
            if (args.primekg / "manifest.json").exists():
                primekg = read_snapshot(args.primekg)
            else:
                print(f"no PrimeKG-like snapshot at {args.primekg}; see bench/bench_verify.py to make one")
        bench_corpus(hpo, primekg, args)
        base = baseline_code(args.base, tmp / "base")
        bench_graph("HPO (real)", hpo, args, tmp / "hpo", base)
        if primekg is not None:
            bench_graph("PrimeKG-like (scale 1.0)", primekg, args, tmp / "primekg", base)


if __name__ == "__main__":
    main()
