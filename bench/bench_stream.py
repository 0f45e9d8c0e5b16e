"""Streaming sampling at scale: memory and rate of `kgsynth sample` from 1M to 50M paths, beside the previous release.

    python bench/bench_stream.py [--pruned DIR] [--full DIR] [--paths 50000000]
                                 [--baseline-commit 51c3089] [--baseline-paths 1000000,2000000,5000000]

Every figure comes from this one run, each command in its own process under GNU
time (wall, CPU, peak RSS), on the full-scale PrimeKG-like graph (`--pruned`: a
`kgsynth shatter` output, `--full`: its parent; bench_sample.py makes both).

- kgsynth: `kgsynth sample PRUNED --hops 3 -n N --negatives 0` for N = 1M and 20M,
  and one run of `--paths` (50M) in which the time at every millionth path
  written is recorded, so the rate of the 1st and the 20th million of the same
  run can be compared;
- the baseline: the same command from `--baseline-commit` (a git worktree of the
  release before streaming), at the sizes it can hold in memory;
- defaults: `kgsynth sample PRUNED --full FULL -n 1000000` (3 hard negatives per
  path, unique answers judged), end to end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRUNED = Path("/work/bench_data/primekg_pruned")
FULL = Path("/work/bench_data/primekg_snapshot")

# The 50M run in its own process: the library's streamed writer with a clock at every millionth path.
TRACE = """
import json, sys, time
from kgsynth.graph.engine import open_engine
from kgsynth.graph.snapshot import read_snapshot
from kgsynth.sample import SampleProgress, sample_to_file
pruned, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
engine = open_engine(read_snapshot(pruned))
marks, done, started = [], [0], time.perf_counter()
def written(count):
    before = done[0] // 1_000_000
    done[0] += count
    for _ in range(done[0] // 1_000_000 - before):
        marks.append(time.perf_counter() - started)
stats = sample_to_file(engine, out, "walk", n, 0, hops=3, negatives=0, progress=SampleProgress(written=written))
print(json.dumps({"marks": marks, "produced": stats.produced, "seconds": time.perf_counter() - started}))
"""


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def timed(args: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> tuple[dict[str, float], str]:
    """Run under GNU time: (wall s, CPU s, peak RSS GiB), and the command's stdout."""
    done = subprocess.run(["/usr/bin/time", "-v", *args], capture_output=True, text=True, check=False, cwd=cwd, env=env)
    if done.returncode:
        sys.exit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")

    def field(name: str) -> str:
        return re.search(rf"{re.escape(name)}: (.+)", done.stderr).group(1).strip()

    h, m, s = ([0.0] + [float(x) for x in field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")])[-3:]
    return {
        "wall_s": h * 3600 + m * 60 + s,
        "cpu_s": float(field("User time (seconds)")) + float(field("System time (seconds)")),
        "peak_rss_gib": int(field("Maximum resident set size (kbytes)")) / 2**20,
    }, done.stdout


def sample_command(tree: Path, pruned: Path, n: int, out: Path, *extra: str) -> list[str]:
    """`kgsynth sample` as the code in `tree` has it (PYTHONPATH puts that tree first)."""
    return [sys.executable, "-c", "from kgsynth.cli import main; main()", "sample", str(pruned), "-n", str(n), *extra, "--out", str(out)]


def tree_env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pruned", type=Path, default=PRUNED)
    parser.add_argument("--full", type=Path, default=FULL)
    parser.add_argument("--paths", type=int, default=50_000_000)
    parser.add_argument("--sizes", default="1000000,20000000", help="separate runs of this tree's command")
    parser.add_argument("--baseline-commit", default="51c3089", help="the release before streaming")
    parser.add_argument("--baseline-paths", default="1000000,2000000,5000000")
    parser.add_argument("--skip-defaults", action="store_true")
    args = parser.parse_args()

    figures: dict[str, object] = {"load_before": load_average(), "pruned": str(args.pruned)}
    work = Path(tempfile.mkdtemp(prefix="kgsynth-bench-stream-"))
    print(f"scratch {work}, load {figures['load_before']}", file=sys.stderr)
    walk = ("--hops", "3", "--negatives", "0")

    baseline = work / "baseline"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(baseline), args.baseline_commit], check=True, capture_output=True)
    try:
        for n in [int(x) for x in args.baseline_paths.split(",") if x]:
            out = work / "baseline.parquet"
            figures[f"baseline_{n}"] = {**timed(sample_command(baseline, args.pruned, n, out, *walk), cwd=baseline, env=tree_env(baseline))[0], "paths": n}
            out.unlink(missing_ok=True)
            print(f"baseline {n:,}: {figures[f'baseline_{n}']}", file=sys.stderr)
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(baseline)], check=False, capture_output=True)

    for n in [int(x) for x in args.sizes.split(",") if x]:
        out = work / "stream.parquet"
        figures[f"stream_{n}"] = {**timed(sample_command(REPO, args.pruned, n, out, *walk), cwd=REPO, env=tree_env(REPO))[0], "paths": n}
        out.unlink(missing_ok=True)
        print(f"stream {n:,}: {figures[f'stream_{n}']}", file=sys.stderr)

    out = work / "trace.parquet"
    resources, stdout = timed([sys.executable, "-c", TRACE, str(args.pruned), str(out), str(args.paths)], cwd=REPO, env=tree_env(REPO))
    trace = json.loads(stdout)
    marks = trace["marks"]
    per_million = [b - a for a, b in zip([0.0, *marks[:-1]], marks, strict=True)]
    figures["stream_trace"] = {
        **resources, "paths": trace["produced"], "file_gib": out.stat().st_size / 2**30,
        "rate_1st_million": 1e6 / per_million[0],
        "rate_20th_million": 1e6 / per_million[19] if len(per_million) >= 20 else None,
        "rate_last_million": 1e6 / per_million[-1],
        "rate_median_million": 1e6 / sorted(per_million)[len(per_million) // 2],
        "rate_overall": trace["produced"] / trace["seconds"],
    }  # fmt: skip
    out.unlink(missing_ok=True)
    print(f"trace {args.paths:,}: {figures['stream_trace']}", file=sys.stderr)

    if not args.skip_defaults:
        out = work / "defaults.parquet"
        figures["defaults_1000000"] = {
            **timed(sample_command(REPO, args.pruned, 1_000_000, out, "--full", str(args.full)), cwd=REPO, env=tree_env(REPO))[0],
            "paths": 1_000_000,
        }  # fmt: skip
        out.unlink(missing_ok=True)
        print(f"defaults 1,000,000: {figures['defaults_1000000']}", file=sys.stderr)
    figures["load_after"] = load_average()

    print(f"{'run':<24} {'paths':>12} {'wall s':>9} {'CPU s':>9} {'paths/s':>11} {'peak RSS GiB':>13}")
    for name, row in figures.items():
        if isinstance(row, dict):
            rate = row["paths"] / row["wall_s"]
            print(f"{name:<24} {row['paths']:>12,} {row['wall_s']:>9.1f} {row['cpu_s']:>9.1f} {rate:>11,.0f} {row['peak_rss_gib']:>13.2f}")
    t = figures["stream_trace"]
    print(
        f"within the {t['paths']:,}-path run: 1st million {t['rate_1st_million']:,.0f} paths/s, 20th "
        f"{t['rate_20th_million'] or 0:,.0f}, median {t['rate_median_million']:,.0f}, last {t['rate_last_million']:,.0f}"
    )
    print(f"load average before {figures['load_before']}, after {figures['load_after']}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
