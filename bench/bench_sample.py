"""Engine, k-Shattering and sampling figures on the full-scale PrimeKG-like graph, beside networkx.

    python bench/bench_sample.py [--snapshot DIR] [--walks 1000000] [--nx-walks 200000]
                                 [--pairs 300] [--nx-seconds 60] [--negatives-paths 20000] [--pruned DIR]

The graph is `--snapshot`, else /work/bench_data/primekg_snapshot, else loaded
from the generator's kg.csv and written there (under the shared lock). Every
figure comes from this one run; the networkx baselines are built from the same
edges: random walks over precomputed adjacency lists, and `nx.all_shortest_paths`
between entity pairs (what MedReason does). The load average is printed before
and after: on a shared machine it moves the figures a lot.

Measured:
- engine: build from the snapshot's tables, and reopen from the memory-mapped cache;
- `kgsynth shatter` with default parameters, process start to output written;
- `walk`, 3 hops, start type disease, hubs excluded: sampling rate in the library,
  against the networkx walk rate (both: median of --repeats runs after one warm-up
  run, which is also reported for kgsynth); and `kgsynth sample -n 1000000 --negatives 0`
  end to end, process start to parquet written;
- hard negatives on their own (3 per path, proven on the full graph);
- `between` with a 3-hop cap: entity pairs per second, against networkx.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_SNAPSHOT = Path("/work/bench_data/primekg_snapshot")
KG = Path("/work/bench_data/kg.csv")


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def ensure_snapshot(path: Path | None) -> Path:
    if path is not None:
        return path
    if (DEFAULT_SNAPSHOT / "manifest.json").exists():
        return DEFAULT_SNAPSHOT
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_load import ensure_kg  # takes the same lock itself, so before ours

    from kgsynth.graph.snapshot import write_snapshot
    from kgsynth.loaders import load

    ensure_kg(KG, 1.0)
    with open(DEFAULT_SNAPSHOT.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (DEFAULT_SNAPSHOT / "manifest.json").exists():
            write_snapshot(load("primekg", [KG]), DEFAULT_SNAPSHOT)
    return DEFAULT_SNAPSHOT


def timed_command(args: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of a command, from process start to exit."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        sys.exit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    print(done.stderr.strip(), file=sys.stderr)
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


class Clock:
    """Wall and CPU seconds of a block: on a shared machine the CPU figure is the steadier one."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def nx_graph(engine):
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(range(engine.n_nodes))
    graph.add_edges_from(zip(engine.edge_src.tolist(), engine.edge_dst.tolist(), strict=True))
    return graph


def adjacency_lists(graph, hubs: set[int]) -> dict[int, list[int]]:
    """The networkx graph's adjacency as plain lists, hubs left out (precomputed, not timed)."""
    return {u: [v for v in graph[u] if v not in hubs] for u in graph if u not in hubs}


def nx_walks(adjacency: dict[int, list[int]], starts: list[int], count: int, hops: int, seed: int) -> tuple[float, int]:
    """Random simple walks over precomputed adjacency lists: (seconds, walks made)."""
    rng = random.Random(seed)
    made = 0
    started = time.perf_counter()
    for _ in range(count):
        path = [rng.choice(starts)]
        for _ in range(hops):
            options = adjacency[path[-1]]
            if not options:
                break
            for _ in range(6):
                step = rng.choice(options)
                if step not in path:
                    path.append(step)
                    break
            else:
                break
        made += len(path) == hops + 1
    return time.perf_counter() - started, made


def nx_between(graph, pairs: list[tuple[int, int]], seconds: float) -> tuple[float, int]:
    """nx.all_shortest_paths per pair (paths up to 3 hops kept), until the time is up: (seconds, pairs done)."""
    import networkx as nx

    done = 0
    started = time.perf_counter()
    for s, t in pairs:
        try:
            [p for p in nx.all_shortest_paths(graph, s, t) if len(p) <= 4]
        except nx.NetworkXNoPath:
            pass
        done += 1
        if time.perf_counter() - started > seconds:
            break
    return time.perf_counter() - started, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshot", type=Path)
    parser.add_argument("--pruned", type=Path, help="an existing `kgsynth shatter` output (skips timing the shatter)")
    parser.add_argument("--walks", type=int, default=1_000_000)
    parser.add_argument("--nx-walks", type=int, default=200_000)
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--nx-seconds", type=float, default=60.0)
    parser.add_argument("--negatives-paths", type=int, default=20_000)
    parser.add_argument("--start-type", default="disease")
    parser.add_argument("--repeats", type=int, default=3, help="timed walk runs (median) after one warm-up run, for kgsynth and networkx alike")
    args = parser.parse_args()

    from kgsynth.graph.engine import build_engine, open_engine
    from kgsynth.graph.snapshot import read_snapshot
    from kgsynth.sample import sample_with_stats
    from kgsynth.sample.between import paths_between
    from kgsynth.sample.params import hub_ids

    figures: dict[str, float | int | str] = {"load_before": load_average()}
    snapshot_dir = ensure_snapshot(args.snapshot)
    work = Path(tempfile.mkdtemp(prefix="kgsynth-bench-sample-"))
    print(f"snapshot {snapshot_dir}, scratch {work}, load {figures['load_before']}", file=sys.stderr)

    with Clock() as clock:
        build_engine(read_snapshot(snapshot_dir))
    figures["engine_build_s"], figures["engine_build_cpu_s"] = clock.wall, clock.cpu
    open_engine(read_snapshot(snapshot_dir))  # make sure the cache exists
    with Clock() as clock:
        full = open_engine(read_snapshot(snapshot_dir))
    figures["engine_reopen_s"], figures["engine_reopen_cpu_s"] = clock.wall, clock.cpu
    figures["nodes"], figures["edges"] = full.n_nodes, full.n_edges

    pruned_dir = args.pruned
    if pruned_dir is None:
        pruned_dir = work / "pruned"
        figures["shatter_cli_s"], figures["shatter_cli_cpu_s"] = timed_command(
            ["kgsynth", "shatter", str(snapshot_dir), "--out", str(pruned_dir)]
        )
    hubs = hub_ids(pruned_dir)
    report = json.loads((pruned_dir / "hubs.json").read_text())
    figures["hubs_removed"] = len(hubs)
    figures["mean_path_before"] = report["before"]["mean_path_length"]
    figures["mean_path_after"] = report["after"]["mean_path_length"]
    pruned = open_engine(read_snapshot(pruned_dir))  # also writes its engine cache

    from kgsynth.sample.walk import sample_walks

    for name, engine, options in (("full_excluded", full, {"exclude": hubs}), ("pruned", pruned, {})):
        rates = []
        for repeat in range(args.repeats + 1):  # the first run pages the memory-mapped engine in
            with Clock() as clock:
                made = sample_walks(engine, args.walks, np.random.default_rng(7 + repeat), hops=3, start_types=[args.start_type], **options)
            paths = sum(batch.rows for batch in made.batches)
            rates.append((paths / clock.wall, paths / clock.cpu))
        figures[f"walk_{name}_first_run_paths_per_s"] = rates[0][0]
        figures[f"walk_{name}_paths_per_s"] = float(np.median([wall for wall, _ in rates[1:]]))
        figures[f"walk_{name}_paths_per_cpu_s"] = float(np.median([cpu for _, cpu in rates[1:]]))
    frame, stats = sample_with_stats(full, "walk", args.walks, 7, exclude=hubs, hops=3, start_types=[args.start_type], negatives=0)
    figures["walk_full_excluded_table_s"] = stats.seconds["table"]
    del frame

    graph = nx_graph(full)
    hub_index = set(full.indices_of(hubs).tolist())
    starts = [int(u) for u in np.flatnonzero(full.node_type == full.type_index[args.start_type]) if u not in hub_index]
    adjacency = adjacency_lists(graph, hub_index)
    rates = []
    for repeat in range(args.repeats + 1):  # the same warm-up run as kgsynth's, not counted
        with Clock() as clock:
            _, made = nx_walks(adjacency, starts, args.nx_walks, 3, seed=7 + repeat)
        rates.append((made / clock.wall, made / clock.cpu))
    del adjacency
    figures["walk_networkx_paths_per_s"] = float(np.median([wall for wall, _ in rates[1:]]))
    figures["walk_networkx_paths_per_cpu_s"] = float(np.median([cpu for _, cpu in rates[1:]]))
    figures["walk_speedup"] = figures["walk_full_excluded_paths_per_s"] / figures["walk_networkx_paths_per_s"]
    figures["walk_speedup_cpu"] = figures["walk_full_excluded_paths_per_cpu_s"] / figures["walk_networkx_paths_per_cpu_s"]

    out = work / "paths.parquet"
    figures["sample_cli_1m_s"], figures["sample_cli_1m_cpu_s"] = timed_command([
        "kgsynth", "sample", str(pruned_dir), "-n", "1000000", "--hops", "3", "--start-type", args.start_type,
        "--negatives", "0", "--seed", "7", "--out", str(out),
    ])

    from kgsynth.sample.batch import PathBatch
    from kgsynth.sample.negatives import hard_negatives

    made = sample_walks(pruned, args.negatives_paths, np.random.default_rng(8), hops=3, start_types=[args.start_type])
    batch = PathBatch.concat(made.batches)
    with Clock() as clock:
        proven = hard_negatives(pruned, full, batch, 3, np.random.default_rng(8))
    figures["negatives_paths"] = batch.rows
    figures["negatives_paths_per_s"] = batch.rows / clock.wall
    figures["negatives_paths_per_cpu_s"] = batch.rows / clock.cpu
    figures["negatives_share_without"] = float((proven.counts == 0).mean())

    rng = np.random.default_rng(0)
    near = sample_with_stats(full, "walk", args.pairs // 2, 9, hops=3, start_types=[args.start_type], negatives=0)[0]
    pairs = list(zip(near["nodes"].list.first().to_list(), near["nodes"].list.last().to_list(), strict=True))
    anywhere = rng.choice(np.array(full.node_ids)[full.degree > 0], size=(args.pairs - len(pairs), 2))
    pairs += [(str(s), str(t)) for s, t in anywhere]
    for name, engine in (("full", full), ("pruned", pruned)):
        with Clock() as clock:
            _, found = paths_between(engine, pairs, k=3, max_hops=3)
        figures[f"between_{name}_pairs_per_s"] = len(pairs) / clock.wall
        figures[f"between_{name}_pairs_per_cpu_s"] = len(pairs) / clock.cpu
        figures[f"between_{name}_pairs_with_paths"] = found["with_paths"]
    index_pairs = [(full.index_of(s), full.index_of(t)) for s, t in pairs]
    with Clock() as clock:
        _, done = nx_between(graph, index_pairs, args.nx_seconds)
    figures["between_networkx_pairs_per_s"] = done / clock.wall
    figures["between_networkx_pairs_per_cpu_s"] = done / clock.cpu
    figures["between_speedup"] = figures["between_full_pairs_per_s"] / figures["between_networkx_pairs_per_s"]
    figures["load_after"] = load_average()

    width = max(len(k) for k in figures)
    for key, value in figures.items():
        shown = f"{value:,.3f}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {shown}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
