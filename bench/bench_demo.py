"""Time the README's first command: `kgsynth run configs/demo.yaml` from a clean run directory.

    python bench/bench_demo.py [--config configs/demo.yaml] [--keep DIR]

Prints the wall time of the whole run, each stage's time from its stamp, the
second (all up to date) run, and the machine's load, which skews the figures on
a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(config: Path, out: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", "from kgsynth.cli import main; main()", "run", str(config), "--out", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode:
        sys.exit(f"kgsynth run failed ({done.returncode}):\n{done.stderr}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "demo.yaml")
    parser.add_argument("--keep", type=Path, help="Run directory to keep (default: a temp dir, removed).")
    args = parser.parse_args()
    out = args.keep or Path(tempfile.mkdtemp(prefix="kgsynth-demo-")) / "run"
    if out.exists():
        shutil.rmtree(out)
    load_before = os.getloadavg()
    first = run(args.config, out)
    load_after = os.getloadavg()
    second = run(args.config, out)
    print(
        f"config {args.config}  cores {os.cpu_count()}  load average before {load_before[0]:.1f}, after {load_after[0]:.1f}"
    )
    print(f"clean run:          {first:7.1f} s")
    for stamp in sorted(out.glob("*.stamp.json"), key=lambda p: p.stat().st_mtime):
        record = json.loads(stamp.read_text())
        figures = ", ".join(f"{k} {v}" for k, v in record["summary"].items() if isinstance(v, int | float))
        print(f"  {record['stage']:<10} {record['seconds']:7.1f} s  {figures}")
    print(f"re-run (up to date): {second:6.1f} s")
    if not args.keep:
        shutil.rmtree(out.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
