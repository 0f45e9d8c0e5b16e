"""Verification benchmark: defect recall, false rejections, graph-check throughput.

For each graph (the real HPO graph; the full-scale PrimeKG-like graph) it runs the
real pipeline — k-Shattering, the walk sampler on the pruned graph (negatives
proven on the full one), the template writer — and then:

1. verifies the clean items against the full graph with the removed hubs, and
   splits the rejections into true defects the pipeline made (each confirmed by
   an independent oracle: a sparse-matrix walk of the question's pattern, or an
   exact breadth-first search for shortcuts) and false rejections (everything
   else);
2. corrupts copies of the accepted multiple-choice items with every defect of
   `kgsynth.verify.defects` and counts how many are rejected with the right code;
3. times the graph checks (wall clock and process CPU time; the machine is shared,
   so the load average is printed with the figures).

Prints figures; asserts nothing.

    python bench/bench_verify.py                       # HPO, then PrimeKG-like
    python bench/bench_verify.py --skip-primekg --paths 2000
    python /work/shared/tools/make_primekg_like.py --scale 1.0 --out /work/bench_data/kg.csv
    kgsynth load --format primekg /work/bench_data/kg.csv --out /work/bench_data/primekg_snapshot
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import polars as pl

from kgsynth.generate import WRITERS, generate_items
from kgsynth.graph.engine import open_engine
from kgsynth.graph.snapshot import Snapshot, read_snapshot, write_snapshot
from kgsynth.verify import verify_items
from kgsynth.verify.defects import DEFECTS, corrupt, pattern_reach
from kgsynth.verify.index import graph_index
from kgsynth.verify.shortcut import hub_index, shortcut_bfs

ORACLE_SAMPLE = 1000  # rejected clean items checked by an oracle


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min) {five:.1f} (5 min) on {os.cpu_count()} cores"


def pipeline(full: Snapshot, workdir: Path, *, paths: int, hops: str, k: float, pairs: int, seed: int) -> tuple[pl.DataFrame, list[str], dict]:
    """Shatter, sample on the pruned graph, write template items: what `kgsynth run` does."""
    from kgsynth.prune import shatter
    from kgsynth.sample import sample_paths

    figures: dict = {}
    clock = time.perf_counter()
    pruned = shatter(full, k=k, pairs=pairs, seed=seed)
    figures["shatter_s"] = time.perf_counter() - clock
    hubs = [h["id"] for h in pruned.hubs]
    pruned_dir = write_snapshot(pruned.snapshot, workdir / "pruned")
    clock = time.perf_counter()
    table = sample_paths(open_engine(read_snapshot(pruned_dir)), "walk", n=paths, seed=seed, full=open_engine(full), negatives=3, hops=hops)
    figures["sample_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    out = workdir / "items.parquet"
    generate_items(table, read_snapshot(pruned_dir), writer=WRITERS.get("template")(None), out=out, full_snapshot=full)
    figures["generate_s"] = time.perf_counter() - clock
    return pl.read_parquet(out), hubs, figures


def confirm(full: Snapshot, hubs: list[str], rejected: pl.DataFrame) -> tuple[Counter, Counter, int, list[str]]:
    """Check a sample of rejected clean items with the oracles.

    Returns, scaled to all rejections: per reason code the confirmed and the
    unconfirmed count, the items none of whose reasons is confirmed (false
    rejections), and a few examples of false alarms.
    """
    index = graph_index(full)
    e = index.engine
    hub_set = hub_index(index, hubs)
    sample = rejected.sample(min(ORACLE_SAMPLE, rejected.height), seed=0) if rejected.height else rejected
    true, false, examples = Counter(), Counter(), []
    wrongly = 0
    for item in sample.to_dicts():
        confirmed = False
        for code in item["reasons"]:
            if code == "ANSWER_NOT_UNIQUE":
                ok = len(pattern_reach(index, item)) > 1
            elif code == "DISTRACTOR_VALID":
                reach = pattern_reach(index, item)
                ok = any(e.index_of(o["node_id"]) in reach for o in item["options"] if o["node_id"] != item["answer_id"])
            elif code == "SHORTCUT":
                ok = shortcut_bfs(hub_set, e.index_of(item["anchor_id"]), e.index_of(item["answer_id"]), item["hops"]) is not None
            else:  # the template writer states the path it was given: any other code is a false alarm
                ok = False
            (true if ok else false)[code] += 1
            confirmed |= ok
            if not ok and len(examples) < 5:
                detail = next(v["detail"] for v in item["verdicts"] if v["code"] == code)
                examples.append(f"{code}: {detail[:200]}")
        wrongly += not confirmed
    scale = rejected.height / sample.height if sample.height else 0.0
    return (
        Counter({k: round(v * scale) for k, v in true.items()}),
        Counter({k: round(v * scale) for k, v in false.items()}),
        round(wrongly * scale),
        examples,
    )


def timed(items: pl.DataFrame, full: Snapshot, hubs: list[str], repeats: int) -> tuple[object, dict[str, float], dict[str, float]]:
    """Verify `repeats` times after a warm-up (index and hub index cached); the least wall and
    CPU seconds per stage and check, as the shared machine's load only ever adds time."""
    verify_items(items.head(100), full, hubs=hubs)
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for _ in range(repeats):
        result = verify_items(items, full, hubs=hubs)
        for mine, theirs in ((wall, result.summary["seconds"]), (cpu, result.summary["cpu_seconds"])):
            for key, value in theirs.items():
                mine[key] = min(mine.get(key, float("inf")), value)
    return result, wall, cpu


def bench_graph(name: str, full: Snapshot, args, workdir: Path) -> None:
    print(f"\n=== {name}: {full.manifest.counts.nodes:,} nodes, {full.manifest.counts.edges:,} edges ({load()})")
    clock = time.perf_counter()
    index = graph_index(full)
    _ = index.linker, index.offsets
    print(f"index (sorted entry keys, offset table, name trie): built once per process in {time.perf_counter() - clock:.1f}s")
    items, hubs, figures = pipeline(full, workdir, paths=args.paths, hops=args.hops, k=args.k, pairs=args.pairs, seed=args.seed)
    kinds = dict(items["kind"].value_counts().iter_rows())
    print(
        f"pipeline: k-Shattering removed {len(hubs):,} hubs in {figures['shatter_s']:.1f}s; sampled in {figures['sample_s']:.1f}s; "
        f"{items.height:,} template items ({kinds}) in {figures['generate_s']:.1f}s"
    )

    clock = time.perf_counter()
    hub_index(index, hubs)._hub_reach  # noqa: B018 - built once per pruning, then cached
    print(f"hub index (hub neighbours, hub-to-hub distances): {time.perf_counter() - clock:.1f}s once per pruning")
    result, wall, cpu = timed(items, full, hubs, args.repeats)
    print(f"\n-- throughput, {items.height:,} items, all graph checks, best of {args.repeats} ({load()})")
    print(
        f"graph stage: {wall['graph']:.2f}s wall → {items.height / wall['graph']:,.0f} items/s; "
        f"{cpu['graph']:.2f}s CPU → {items.height / cpu['graph']:,.0f} items per CPU-second; "
        f"whole call {wall['total']:.2f}s wall"
    )
    checks = [k for k in wall if k.startswith("check:")]
    print("per check, wall / CPU (s): " + ", ".join(f"{k[6:]} {wall[k]:.2f}/{cpu[k]:.2f}" for k in checks))

    print("\n-- clean items: rejections by reason")
    true, false, falsely, examples = confirm(full, hubs, result.rejected)
    for code in sorted(set(true) | set(false)):
        print(f"  {code:22s} confirmed by oracle {true[code]:7,}   not confirmed {false[code]:5,}")
    print(
        f"accepted {result.summary['accepted']:,} / {items.height:,}; "
        f"false rejections ≈ {falsely:,} ({falsely / items.height:.2%} of the clean items; "
        f"oracle sample {min(ORACLE_SAMPLE, result.rejected.height):,} of {result.rejected.height:,} rejections)"
    )
    for line in examples:
        print("  e.g.", line)

    accepted = result.accepted.filter(pl.col("kind") == "mcq").drop("verdicts")
    sample = accepted.sample(min(args.defect_items, accepted.height), seed=args.seed)
    print(f"\n-- defect recall ({sample.height:,} accepted MCQ items corrupted per defect)")
    for defect, spec in DEFECTS.items():
        bad, defect_hubs = corrupt(sample, index, defect, seed=args.seed)
        if not bad.height:
            print(f"  {defect:22s} n/a (applies to no item of this graph)")
            continue
        judged = verify_items(bad, full, hubs=sorted(set(hubs) | set(defect_hubs)))
        reasons = dict(zip(judged.rejected["id"].to_list(), judged.rejected["reasons"].to_list(), strict=True))
        caught = sum(spec.code in reasons.get(i, []) for i in bad["id"].to_list())
        rejected = len(reasons)
        print(f"  {defect:22s} {spec.code:20s} recall {caught / bad.height:7.2%}  ({caught:,}/{bad.height:,}; rejected for any reason {rejected / bad.height:.2%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--primekg", type=Path, default=Path("/work/bench_data/primekg_snapshot"))
    parser.add_argument("--skip-primekg", action="store_true")
    parser.add_argument("--skip-hpo", action="store_true")
    parser.add_argument("--paths", type=int, default=20000, help="paths to sample per graph")
    parser.add_argument("--hops", default="2-3")
    parser.add_argument("--k", type=float, default=50.0, help="k-Shattering k")
    parser.add_argument("--pairs", type=int, default=2000, help="k-Shattering sampled pairs")
    parser.add_argument("--defect-items", type=int, default=2000, help="clean MCQ items corrupted per defect")
    parser.add_argument("--repeats", type=int, default=3, help="timed verification runs (the best counts)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_verify_") as tmp:
        tmp = Path(tmp)
        if not args.skip_hpo:
            from kgsynth.loaders import load as run_loader

            hpo = read_snapshot(write_snapshot(run_loader("hpo", []), tmp / "hpo" / "snapshot"))
            bench_graph("HPO (real)", hpo, args, tmp / "hpo")
        if not args.skip_primekg:
            if not (args.primekg / "manifest.json").exists():
                print(f"\nno PrimeKG-like snapshot at {args.primekg}; see the module docstring to make one")
                return
            bench_graph("PrimeKG-like (scale 1.0)", read_snapshot(args.primekg), args, tmp / "primekg")


if __name__ == "__main__":
    main()
