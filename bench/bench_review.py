"""Benchmark: how fast the review app shows an item on a 100,000-item run.

The run is made from a real one (default: `kgsynth run configs/demo.yaml`, the HPO
graph with the template writer): its verified items, accepted and rejected, are
repeated under new ids and shuffled until there are --items of them, so every page
shows a real item, real verdicts and real distractor proofs over the full graph.
`kgsynth review RUN --port 0` is started as a user starts it, and then timed:

- start: from the command to the printed URL (reading 100,000 items, splits, patterns);
- server time: the app's own time per item page (its Server-Timing header) and the
  HTTP round trip from this process, over random items, plain and with filters
  (the reviewer's unreviewed items after 1,000 reviews; a --sample 500 server);
- page load in Chromium (Debian's package, via playwright): navigation start to the
  load event, and to the path graph drawn by Cytoscape.js.

Side by side, the same figures on a run of the source's own size (the demo's ~1,600
items, made the same way) as the baseline. Prints figures only, with the load average and CPU seconds.

    python bench/bench_review.py [--run RUN_DIR] [--items 100000] [--pages 200]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import polars as pl
import psutil

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def demo_run(where: Path) -> Path:
    print(f"making the demo run in {where} (kgsynth run configs/demo.yaml) …", flush=True)
    subprocess.run(["kgsynth", "run", str(REPO / "configs" / "demo.yaml"), "--out", str(where)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return where


def scale_run(source: Path, to: Path, n: int, seed: int = 0) -> dict[str, int]:
    """A run of n verified items: the source's items repeated under new ids, shuffled; graph folders linked."""
    to.mkdir(parents=True)
    for name in ("snapshot", "pruned"):
        if (source / name).exists():
            (to / name).symlink_to((source / name).resolve(), target_is_directory=True)
    shutil.copy2(source / "paths.parquet", to / "paths.parquet")
    (to / "verified").mkdir()
    accepted = pl.read_parquet(source / "verified" / "accepted.parquet")
    rejected = pl.read_parquet(source / "verified" / "rejected.parquet")
    share = accepted.height / (accepted.height + rejected.height)
    counts = {}
    for name, frame, k in (("accepted", accepted, round(n * share)), ("rejected", rejected, n - round(n * share))):
        copies = -(-k // frame.height)
        big = pl.concat([frame.with_columns(pl.lit(c).alias("_copy")) for c in range(copies)]).sample(k, seed=seed, shuffle=True)
        ids = [hashlib.sha256(f"{i}:{c}".encode()).hexdigest()[:32] for i, c in zip(big["id"], big["_copy"], strict=True)]
        big = big.with_columns(pl.Series("id", ids)).drop("_copy")
        big.write_parquet(to / "verified" / f"{name}.parquet")
        counts[name] = big.height
    return counts


class Server:
    def __init__(self, run: Path, *args: str) -> None:
        self.command = ["kgsynth", "review", str(run), "--port", "0", "--reviewer", "bench", *args]

    def __enter__(self) -> Server:
        started = time.perf_counter()
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"})
        for line in self.process.stdout:
            match = re.search(r"review (http://\S+)/", line)
            if match:
                self.url = match.group(1)
                break
        else:
            raise RuntimeError(f"kgsynth review did not start: {self.process.stdout.read()}")
        self.start_seconds = time.perf_counter() - started
        self.ps = psutil.Process(self.process.pid)
        self.start_cpu = sum(self.ps.cpu_times()[:2])
        self.start_rss = self.ps.memory_info().rss
        return self

    def cpu(self) -> float:
        return sum(self.ps.cpu_times()[:2])

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def figures(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"median {statistics.median(ordered):6.1f} ms, p95 {p95:6.1f} ms, max {ordered[-1]:6.1f} ms"


def time_pages(url: str, ids: list[str], query: str = "") -> tuple[list[float], list[float]]:
    """(server ms from Server-Timing, round-trip ms) per item page."""
    server, trip = [], []
    with httpx.Client(base_url=url, timeout=60) as client:
        client.get(f"/items/{ids[0]}{query}")  # warm-up
        for item in ids:
            started = time.perf_counter()
            response = client.get(f"/items/{item}{query}")
            trip.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            server.append(float(re.search(r"dur=([\d.]+)", response.headers["server-timing"]).group(1)))
    return server, trip


def walk_queue(url: str, query: str, n: int) -> tuple[list[float], list[float]]:
    """Walk a queue as a reviewer does (each page's next link), timing each item page."""
    server, trip = [], []
    with httpx.Client(base_url=url, timeout=60, follow_redirects=False) as client:
        location = client.get(f"/next{query}").headers["location"]
        for _ in range(n):
            started = time.perf_counter()
            response = client.get(location)
            trip.append((time.perf_counter() - started) * 1000)
            server.append(float(re.search(r"dur=([\d.]+)", response.headers["server-timing"]).group(1)))
            location = re.search(r'data-next="([^"]+)"', response.text).group(1).replace("&amp;", "&")
            if not location.startswith("/items/"):
                break
    return server, trip


def browser_pages(url: str, ids: list[str]) -> tuple[list[float], list[float]] | None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return None
    from playwright.sync_api import sync_playwright

    loaded, drawn = [], []
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(profile, executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        page = context.new_page()
        page.goto(f"{url}/items/{ids[0]}")  # warm-up: static files into the cache, as for a reviewer
        for item in ids:
            page.goto(f"{url}/items/{item}", wait_until="load")
            timing = page.evaluate("() => [performance.getEntriesByType('navigation')[0].loadEventEnd, window.kgsynthReview.drawnAt]")
            loaded.append(timing[0])
            drawn.append(timing[1])
        context.close()
    return loaded, drawn


def bench(label: str, run: Path, pages: int, browser_pages_n: int, seed: int) -> None:
    ids = pl.concat([pl.read_parquet(run / "verified" / f, columns=["id"]) for f in ("accepted.parquet", "rejected.parquet")])["id"].to_list()
    rng = random.Random(seed)
    chosen = rng.sample(ids, min(pages, len(ids)))
    print(f"\n== {label}: {len(ids):,} items ({load()})", flush=True)
    with Server(run) as served:
        print(f"start (command to URL): {served.start_seconds:.1f} s wall, {served.start_cpu:.1f} s CPU, "
              f"RSS {served.start_rss / 2**20:,.0f} MiB")
        cpu0, wall0 = served.cpu(), time.perf_counter()
        server, trip = time_pages(served.url, chosen)
        cpu = served.cpu() - cpu0
        print(f"item page, server time  : {figures(server)}  ({len(chosen)} random items; server CPU {1000 * cpu / len(chosen):.1f} ms/page)")
        print(f"item page, HTTP round trip: {figures(trip)}  ({(time.perf_counter() - wall0):.1f} s for all)")
        reviewed = rng.sample(ids, min(1000, len(ids) // 2))
        with httpx.Client(base_url=served.url) as client:  # reviews first, then the unreviewed queue
            for item in reviewed:
                client.post("/api/reviews", json={"item_id": item, "decision": "accept"})
        server, trip = walk_queue(served.url, "?reviewed=no&verdict=accepted&hops=3", 100)
        print(f"  walking a filtered queue (unreviewed, accepted, 3 hops; after {len(reviewed):,} reviews): "
              f"server {figures(server)}; round trip {figures(trip)}")
        timings = browser_pages(served.url, chosen[:browser_pages_n])
        if timings is None:
            print("page load in Chromium: skipped (no chromium executable; apt-get install -y chromium)")
        else:
            loaded, drawn = timings
            print(f"page load in Chromium, navigation to load event: {figures(loaded)}  ({len(loaded)} pages)")
            print(f"page load in Chromium, navigation to graph drawn: {figures(drawn)}")
        print(f"server RSS after: {served.ps.memory_info().rss / 2**20:,.0f} MiB; {load()}")
    with Server(run, "--sample", "500", "--seed", "1") as sampled:
        server, trip = walk_queue(sampled.url, "", 100)
        print(f"  walking a --sample 500 queue: start {sampled.start_seconds:.1f} s; server {figures(server)}; round trip {figures(trip)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a finished run directory to scale (default: make the demo run)")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--pages", type=int, default=200, help="item pages timed over HTTP")
    parser.add_argument("--browser-pages", type=int, default=30, help="item pages timed in Chromium")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = args.run or demo_run(Path(tmp) / "demo")
        started, cpu = time.perf_counter(), time.process_time()
        counts = scale_run(source, Path(tmp) / "big", args.items, seed=args.seed)
        print(f"made the {args.items:,}-item run ({counts['accepted']:,} accepted, {counts['rejected']:,} rejected) "
              f"from {source} in {time.perf_counter() - started:.1f} s ({time.process_time() - cpu:.1f} s CPU)")
        bench(f"{args.items:,}-item run", Path(tmp) / "big", args.pages, args.browser_pages, args.seed)
        # the baseline is made the same way at the source's own size (reviews go to the copy, not the source run)
        size = sum(pl.scan_parquet(source / "verified" / f).select(pl.len()).collect().item() for f in ("accepted.parquet", "rejected.parquet"))
        scale_run(source, Path(tmp) / "base", size, seed=args.seed)
        bench("baseline: the source run's size", Path(tmp) / "base", args.pages, args.browser_pages, args.seed)


if __name__ == "__main__":
    main()
