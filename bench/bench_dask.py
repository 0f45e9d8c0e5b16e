"""`kgsynth run` of a PrimeKG-like config with `runner: local` and `runner: dask`, side by side.

    python bench/bench_dask.py [--kg /work/bench_data/scale0.1/kg.csv] [--n 40000] [--shard-size 10000]
                               [--batch-size 10000] [--workers 4] [--keep DIR]

Make the graph first, e.g. `python ../shared/tools/make_primekg_like.py --scale 0.1 --out
/work/bench_data/scale0.1/kg.csv`. Each run is the real CLI in a subprocess, from a clean run
directory, with the template writer; the dask run starts its own local cluster of `--workers`
processes and a temporary Prefect server (no PREFECT_API_URL, a throwaway PREFECT_HOME), as a
user's first `kgsynth run` would. Printed per stage: its own seconds (from its stamp), and the
wall and CPU seconds of the window from the previous stage's end to its end (CPU of every
process of the run: the CLI, the Dask workers, the Prefect server). Then each run's total wall,
CPU and peak memory (summed over its processes), the load average, and whether paths.parquet,
items.parquet and the dataset files are byte-identical (the card without its run records).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import yaml

STAGES = ["load", "shatter", "sample", "generate", "verify", "export"]


@dataclass
class Run:
    runner: str
    wall: float = 0.0
    cpu: float = 0.0  # getrusage of the finished process tree
    peak_rss: int = 0
    started: float = 0.0  # seconds until the first stage's stamp appeared (start-up)
    windows: dict[str, tuple[float, float]] = field(default_factory=dict)  # stage -> (wall, cpu)
    seconds: dict[str, float] = field(default_factory=dict)  # stage -> its stamp's seconds


def write_config(folder: Path, kg: Path, args: argparse.Namespace, runner: str) -> Path:
    config = {
        "name": f"bench-{runner}",
        "source": {"format": "primekg", "paths": [str(kg)]},
        "shatter": {"enabled": True},
        "sample": {"strategy": "walk", "n": args.n, "hops": "2-3", "seed": 0, "shard_size": args.shard_size},
        "generate": {"writer": "template", "batch_size": args.batch_size},
        "export": {"formats": ["parquet"]},
        "execution": {"runner": runner, "workers": args.workers},
    }
    path = folder / f"{runner}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def tree_cpu(root: psutil.Process, seen: dict[int, float]) -> tuple[float, int]:
    """CPU seconds of every process of the run seen so far (the last figure of those that ended), RSS now."""
    rss = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
            seen[process.pid] = times.user + times.system
            rss += process.memory_info().rss
        except psutil.Error:
            pass
    return sum(seen.values()), rss


def run(config: Path, out: Path, env: dict[str, str], runner: str) -> Run:
    result = Run(runner)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    log = out.parent / f"{runner}.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen([sys.executable, "-c", "from kgsynth.cli import main; main()", "run", str(config),
                                 "--out", str(out)], env=env, stdout=sink, stderr=sink)  # fmt: skip
        root = psutil.Process(proc.pid)
        seen: dict[int, float] = {}
        done: set[str] = set()
        last_wall, last_cpu = 0.0, 0.0
        while proc.poll() is None:
            try:
                cpu, rss = tree_cpu(root, seen)
            except psutil.Error:
                break
            result.peak_rss = max(result.peak_rss, rss)
            now = time.perf_counter() - started
            for stage in STAGES:
                stamp = out / f"{stage}.stamp.json"
                if not result.started and stamp.exists():
                    result.started = now
                if stage in done or not stamp.exists():
                    continue
                try:
                    record = json.loads(stamp.read_text())
                except ValueError:
                    continue  # being replaced
                if record.get("complete"):
                    done.add(stage)
                    result.windows[stage] = (now - last_wall, cpu - last_cpu)
                    result.seconds[stage] = record["seconds"]
                    last_wall, last_cpu = now, cpu
            time.sleep(0.2)
        proc.wait()
    result.wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result.cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode:
        sys.exit(f"kgsynth run ({runner}) failed with exit code {proc.returncode}:\n{log.read_text()[-3000:]}")
    return result


def dataset_files(run_dir: Path) -> dict[str, bytes]:
    files = {}
    for path in sorted((run_dir / "dataset").rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if path.name == "README.md":  # the card's run records: timings, timestamps, paths
                data = re.sub(rb"```json\n.*?```", b"", data, flags=re.S)
            files[str(path.relative_to(run_dir))] = data
    return files


def same_bytes(a: Path, b: Path) -> dict[str, bool]:
    return {
        "paths.parquet": (a / "paths.parquet").read_bytes() == (b / "paths.parquet").read_bytes(),
        "items.parquet": (a / "items.parquet").read_bytes() == (b / "items.parquet").read_bytes(),
        "dataset files": dataset_files(a) == dataset_files(b),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kg", type=Path, default=Path("/work/bench_data/scale0.1/kg.csv"))
    parser.add_argument("--n", type=int, default=40_000, help="Paths to sample.")
    parser.add_argument("--shard-size", type=int, default=10_000, help="Paths per sampling shard.")
    parser.add_argument("--batch-size", type=int, default=10_000, help="Paths per generation batch.")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--keep", type=Path, help="Folder to keep both run directories in (default: a temp dir).")
    args = parser.parse_args()
    if not args.kg.is_file():
        sys.exit(f"{args.kg}: no such file; make it with ../shared/tools/make_primekg_like.py --scale 0.1 --out {args.kg}")
    folder = args.keep or Path(tempfile.mkdtemp(prefix="kgsynth-bench-dask-"))
    folder.mkdir(parents=True, exist_ok=True)
    home = folder / "prefect-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}

    load_before = os.getloadavg()
    runs = []
    for runner in ("local", "dask"):
        out = folder / runner
        shutil.rmtree(out, ignore_errors=True)
        runs.append(run(write_config(folder, args.kg, args, runner), out, env, runner))
    load_after = os.getloadavg()
    local, dask = runs

    print(f"graph {args.kg} ({args.kg.stat().st_size / 1e6:.0f} MB)  sample.n {args.n:,} in shards of "
          f"{args.shard_size:,}  generate.batch_size {args.batch_size:,}  dask workers {args.workers}")  # fmt: skip
    print(f"cores {os.cpu_count()}  load average before {load_before[0]:.1f}, after {load_after[0]:.1f}")
    print()
    print(f"{'stage':<10} {'local s':>8} {'wall':>7} {'CPU':>7}   {'dask s':>8} {'wall':>7} {'CPU':>7}")
    for stage in STAGES:
        cells = []
        for r in runs:
            wall, cpu = r.windows.get(stage, (float("nan"), float("nan")))
            cells.append(f"{r.seconds.get(stage, float('nan')):8.1f} {wall:7.1f} {cpu:7.1f}")
        print(f"{stage:<10} {cells[0]}   {cells[1]}")
    print(f"{'start-up':<10} {'':>8} {local.started:7.1f} {'':>7}   {'':>8} {dask.started:7.1f}")
    for r in runs:
        print(f"total {r.runner:<6} wall {r.wall:7.1f} s  CPU {r.cpu:7.1f} s  peak memory {r.peak_rss / 2**30:5.2f} GiB")
    print("(stage s: the stage's own seconds from its stamp; wall, CPU: from the previous stage's end to this "
          "one's, all processes of the run; start-up: until the first stage began)")
    checks = same_bytes(folder / "local", folder / "dask")
    print("byte-identical: " + ", ".join(f"{name} {'yes' if ok else 'NO'}" for name, ok in checks.items()))
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    if not all(checks.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
