"""Hard negatives and unique answers: the array code (baseline) beside the compiled kernels, one run.

    python bench/bench_negatives.py [--snapshot DIR] [--pruned DIR] [--paths 20000]
                                    [--repeats 3] [--unique-paths 20000] [--big 1000000] [--skip-cli]

The setup of issue 13: 3-hop walks from disease nodes sampled on the pruned
PrimeKG-like graph, 3 hard negatives per path proven on the full graph. Printed:
- hard negatives, old and new on the same paths: paths/s by wall and CPU clock, the
  share of paths with 0/1/2/3 negatives (new: median of --repeats runs after a warm-up;
  also on one thread);
- unique answers by hop count (2, 3, 4), old and new on the same paths, and whether
  every verdict agrees;
- numba: the first call in a fresh cache directory (compiles) and the next process's
  first call (loads the cache), each in its own process;
- a --big path batch (3 hops) through both, in its own process: wall, CPU, peak RSS
  before and after;
- `kgsynth sample -n --big` with default options (3 negatives, unique answers judged
  alongside), process start to output, unless --skip-cli;
- the load average before and after: on a shared machine it moves the wall figures a lot.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FULL = Path("/work/bench_data/primekg_snapshot")
PRUNED = Path("/work/bench_data/primekg_pruned")


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Clock:
    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def shares(counts: np.ndarray, k: int) -> str:
    return " ".join(f"{share:.3f}" for share in np.bincount(np.minimum(counts, k), minlength=k + 1) / max(len(counts), 1))


def walks(engine, n: int, hops: int, seed: int, start_types=None):
    from kgsynth.sample.batch import PathBatch
    from kgsynth.sample.walk import sample_walks

    return PathBatch.concat(sample_walks(engine, n, np.random.default_rng(seed), hops=hops, start_types=start_types).batches)


def child(code: str, env: dict[str, str] | None = None) -> dict:
    """Run python code in a fresh process; it prints one JSON line last."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT, env={**os.environ, **(env or {})}
    )
    if done.returncode:
        sys.exit(f"child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


FIRST_CALL = """
import json, time
started = time.perf_counter()
import numpy as np
from kgsynth.graph.engine import open_engine
from kgsynth.graph.snapshot import read_snapshot
from kgsynth.sample.batch import PathBatch
from kgsynth.sample.walk import sample_walks
from kgsynth.sample.negatives import hard_negatives
from kgsynth.sample.unique import unique_answers
full, pruned = open_engine(read_snapshot({full!r})), open_engine(read_snapshot({pruned!r}))
batch = PathBatch.concat(sample_walks(pruned, 50, np.random.default_rng(1), hops=3).batches)
ready = time.perf_counter()
hard_negatives(pruned, full, batch, 3, np.random.default_rng(1))
unique_answers(pruned, full, batch)
print(json.dumps({{"setup_s": ready - started, "first_call_s": time.perf_counter() - ready}}))
"""

BIG_BATCH = """
import json, resource, time
import numpy as np
from kgsynth.graph.engine import open_engine
from kgsynth.graph.snapshot import read_snapshot
from kgsynth.sample.batch import PathBatch
from kgsynth.sample.walk import sample_walks
from kgsynth.sample.negatives import hard_negatives
from kgsynth.sample.unique import unique_answers
def rss(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
full, pruned = open_engine(read_snapshot({full!r})), open_engine(read_snapshot({pruned!r}))
batch = PathBatch.concat(sample_walks(pruned, {n}, np.random.default_rng(7), hops=3).batches)
hard_negatives(pruned, full, PathBatch(batch.nodes[:50], batch.entries[:50]), 3, np.random.default_rng(1))
unique_answers(pruned, full, PathBatch(batch.nodes[:50], batch.entries[:50]))
before = rss()
done = []
wall, cpu = time.perf_counter(), time.process_time()
proven = hard_negatives(pruned, full, batch, 3, np.random.default_rng(7), views={{}}, advance=done.append)
negatives = (time.perf_counter() - wall, time.process_time() - cpu)
wall, cpu = time.perf_counter(), time.process_time()
verdict = unique_answers(pruned, full, batch)
unique = (time.perf_counter() - wall, time.process_time() - cpu)
print(json.dumps({{"paths": batch.rows, "rss_before_mib": before, "rss_after_mib": rss(), "negatives": negatives,
                  "unique": unique, "ticks": len(done), "with3": float((proven.counts == 3).mean())}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshot", type=Path, default=FULL)
    parser.add_argument("--pruned", type=Path, default=PRUNED)
    parser.add_argument("--paths", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--unique-paths", type=int, default=20_000)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--skip-cli", action="store_true")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT / "tests"))
    import baseline_negatives as baseline
    import numba

    from kgsynth.graph.engine import open_engine
    from kgsynth.graph.snapshot import read_snapshot
    from kgsynth.sample.negatives import hard_negatives
    from kgsynth.sample.unique import unique_answers

    figures: dict[str, object] = {"load_before": load_average(), "threads": numba.config.NUMBA_NUM_THREADS}
    full, pruned = open_engine(read_snapshot(args.snapshot)), open_engine(read_snapshot(args.pruned))
    batch = walks(pruned, args.paths, 3, 8, ["disease"])
    figures["negatives_paths"] = batch.rows

    with Clock() as clock:
        old = baseline.hard_negatives(pruned, full, batch, 3, np.random.default_rng(8))
    figures["old_paths_per_s"] = batch.rows / clock.wall
    figures["old_paths_per_cpu_s"] = batch.rows / clock.cpu
    figures["old_share_0_1_2_3"] = shares(old.counts, 3)

    views: dict = {}
    with Clock() as clock:  # compiled code loaded (or compiled), per-graph arrays built into views
        hard_negatives(pruned, full, batch.__class__(batch.nodes[:50], batch.entries[:50]), 3, np.random.default_rng(0), views=views)
    figures["new_warm_up_s"] = clock.wall
    runs = []
    for _ in range(args.repeats):
        with Clock() as clock:
            new = hard_negatives(pruned, full, batch, 3, np.random.default_rng(8), views=views)
        runs.append((clock.wall, clock.cpu))
    wall, cpu = np.median([r[0] for r in runs]), np.median([r[1] for r in runs])
    figures["new_paths_per_s"] = batch.rows / wall
    figures["new_paths_per_cpu_s"] = batch.rows / cpu
    figures["new_paths_per_s_best"] = batch.rows / min(r[0] for r in runs)
    figures["new_share_0_1_2_3"] = shares(new.counts, 3)
    threads = numba.config.NUMBA_NUM_THREADS
    numba.config.NUMBA_NUM_THREADS = 1
    with Clock() as clock:
        hard_negatives(pruned, full, batch, 3, np.random.default_rng(8), views=views)
    numba.config.NUMBA_NUM_THREADS = threads
    figures["new_one_thread_paths_per_s"] = batch.rows / clock.wall
    figures["new_one_thread_paths_per_cpu_s"] = batch.rows / clock.cpu
    figures["speedup_wall"] = figures["new_paths_per_s"] / figures["old_paths_per_s"]
    figures["speedup_cpu"] = figures["new_paths_per_cpu_s"] / figures["old_paths_per_cpu_s"]

    for hops in (2, 3, 4):
        paths = walks(pruned, args.unique_paths, hops, 8)
        with Clock() as clock:
            old_verdict = baseline.unique_answers(pruned, full, paths)
        figures[f"unique_{hops}hop_old_paths_per_s"] = paths.rows / clock.wall
        figures[f"unique_{hops}hop_old_paths_per_cpu_s"] = paths.rows / clock.cpu
        unique_answers(pruned, full, batch.__class__(paths.nodes[:50], paths.entries[:50]))
        with Clock() as clock:
            new_verdict = unique_answers(pruned, full, paths, views=views)
        figures[f"unique_{hops}hop_new_paths_per_s"] = paths.rows / clock.wall
        figures[f"unique_{hops}hop_new_paths_per_cpu_s"] = paths.rows / clock.cpu
        counts = np.bincount(new_verdict.astype(np.int64) + 1, minlength=3)
        figures[f"unique_{hops}hop_unknown_not_unique"] = f"{counts[0]} {counts[1]} {counts[2]}"
        figures[f"unique_{hops}hop_same_verdicts"] = bool(np.array_equal(old_verdict, new_verdict))
    figures["peak_rss_mib_this_process"] = peak_rss_mib()

    with tempfile.TemporaryDirectory() as cache:
        code = FIRST_CALL.format(full=str(args.snapshot), pruned=str(args.pruned))
        first = child(code, {"NUMBA_CACHE_DIR": cache})
        cached = child(code, {"NUMBA_CACHE_DIR": cache})
    figures["numba_first_call_compiling_s"] = first["first_call_s"]
    figures["numba_first_call_cached_s"] = cached["first_call_s"]

    if args.big:
        big = child(BIG_BATCH.format(full=str(args.snapshot), pruned=str(args.pruned), n=args.big))
        figures["big_paths"] = big["paths"]
        figures["big_negatives_paths_per_s"] = big["paths"] / big["negatives"][0]
        figures["big_negatives_paths_per_cpu_s"] = big["paths"] / big["negatives"][1]
        figures["big_unique_paths_per_s"] = big["paths"] / big["unique"][0]
        figures["big_unique_paths_per_cpu_s"] = big["paths"] / big["unique"][1]
        figures["big_share_with_3"] = big["with3"]
        figures["big_progress_ticks"] = big["ticks"]
        figures["big_peak_rss_mib_before_after"] = f"{big['rss_before_mib']:.0f} {big['rss_after_mib']:.0f}"

    if args.big and not args.skip_cli:
        with tempfile.TemporaryDirectory() as out:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            done = subprocess.run(
                ["kgsynth", "sample", str(args.pruned), "-n", str(args.big), "--out", str(Path(out) / "paths.parquet")],
                capture_output=True, text=True, check=False, env={**os.environ, "COLUMNS": "400"},  # rich: one line each
            )
            figures["cli_sample_defaults_s"] = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            figures["cli_sample_defaults_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            figures["cli_sample_peak_rss_mib"] = after.ru_maxrss / 1024
            if done.returncode:
                figures["cli_sample_error"] = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode
            else:
                printed = (done.stdout + done.stderr).splitlines()  # the console writes to stderr
                summary = [line for line in printed if "negatives" in line or "unique" in line]
                figures["cli_sample_summary"] = " | ".join(line.strip() for line in summary)

    figures["load_after"] = load_average()
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        shown = f"{value:,.1f}" if isinstance(value, float) and abs(value) >= 100 else (f"{value:.3f}" if isinstance(value, float) else value)
        print(f"{key:<{width}}  {shown}")


if __name__ == "__main__":
    main()
