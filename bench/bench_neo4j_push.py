"""Push throughput into a Bolt server: relationships per second for 1M relationships.

    python bench/bench_neo4j_push.py [--snapshot DIR] [--edges 1000000] [--batch-size 5000 ...] [--again]

The graph is a seeded random sample of `--edges` relationships (and their end
nodes) from a PrimeKG-like snapshot: `--snapshot`, else /work/bench_data/
primekg_snapshot, else one loaded from the generator's kg.csv (made under a lock
when missing). The server is ArcadeDB's Bolt stand-in (tests/bolt_server.py),
started on free loopback ports with a fresh database per batch size; set
NEO4J_URI (+ NEO4J_USER/PASSWORD/DATABASE) to measure a real Neo4j instead (its
database must be empty). `--again` also times a second push of the same
snapshot (every MERGE matches). The load average is printed before and after
each push: on a shared machine it moves the figures a lot.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
import uuid
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the Bolt stand-in the tests use
DEFAULT_SNAPSHOT = Path("/work/bench_data/primekg_snapshot")


def source_snapshot(path: Path | None):
    from kgsynth.graph.snapshot import read_snapshot

    if path is not None or DEFAULT_SNAPSHOT.exists():
        return read_snapshot(path or DEFAULT_SNAPSHOT)
    from bench_load import ensure_kg  # bench/ is on sys.path when run as a script

    from kgsynth.loaders import load

    kg = Path("/work/bench_data/kg.csv")
    ensure_kg(kg, 1.0)
    return load("primekg", [kg])


def sample_graph(full, edges: int, seed: int):
    from kgsynth.graph.snapshot import build_snapshot

    picked = full.edges.sample(n=min(edges, full.edges.height), seed=seed)
    ends = pl.concat([picked["src"], picked["dst"]]).unique()
    return build_snapshot(
        full.nodes.filter(pl.col("id").is_in(ends.implode())),
        picked,
        vocabulary=full.vocabulary,
        name=f"{full.name}-{edges // 1000}k",
        loader=full.manifest.loader,
        source_info=full.manifest.source_info,
    )


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshot", type=Path)
    parser.add_argument("--edges", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[5000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--again", action="store_true", help="also time a second, idempotent push")
    args = parser.parse_args()

    from pydantic import SecretStr

    from kgsynth.stores.neo4j import Neo4jConfig
    from kgsynth.stores.neo4j_push import push_snapshot

    started = time.perf_counter()
    snapshot = sample_graph(source_snapshot(args.snapshot), args.edges, args.seed)
    counts = snapshot.manifest.counts
    print(f"graph: {counts.nodes:,} nodes, {counts.edges:,} relationships, {len(counts.relations)} types "
          f"(prepared in {time.perf_counter() - started:.0f}s); {os.cpu_count()} CPUs")

    with tempfile.TemporaryDirectory(prefix="bench-neo4j-") as tmp:
        server = None
        if not os.environ.get("NEO4J_URI"):
            from bolt_server import USER, BoltServer

            server = BoltServer(root=Path(tmp) / "arcadedb", password=secrets.token_hex(16))
            server.start()
            print(f"server: ArcadeDB Bolt stand-in at {server.uri}")
        try:
            for batch_size in args.batch_size:
                if server is not None:
                    database = f"bench{uuid.uuid4().hex[:8]}"
                    server.create_database(database)
                    config = Neo4jConfig(uri=server.uri, user=USER, password=SecretStr(server.password),
                                         database=database)
                else:
                    config = Neo4jConfig.from_env()
                for run in ("first", "again") if args.again else ("first",):
                    before = load_average()
                    report = push_snapshot(config, snapshot, batch_size=batch_size,
                                           resume_dir=Path(tmp) / "resume")
                    print(
                        f"batch {batch_size:>6,} {run:>5}: {report.edges_per_second:>8,.0f} relationships/s "
                        f"({report.edges:,} in {report.edge_seconds:.0f}s), "
                        f"{report.nodes / report.node_seconds:>7,.0f} nodes/s ({report.nodes:,} in "
                        f"{report.node_seconds:.0f}s); load average {before} → {load_average()}",
                        flush=True,
                    )
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
