"""Benchmark: generation throughput and kgsynth's CPU cost per item against a model endpoint.

A local OpenAI-compatible server (tests/llm_server.py, in its own process so its CPU
is not counted here) answers every call after a fixed latency. With C calls in
flight and latency L the best possible rate is C / L requests per second; the bench
prints the achieved rate against that bound, and the CPU time of this process per
item (`time.process_time()`), split into what the bare openai client costs for the
same requests and what kgsynth adds on top. The rate is counted by the server from
the first request's arrival to the last reply, so start-up (loading names, opening
the cache) is not in it; the CPU figures include everything.

    python bench/bench_llm.py --paths 800 --latency 0.2 --concurrency 32

Prints figures only; the machine's load average is printed with them because the
numbers are only as quiet as the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from hpo_paths import make_paths  # noqa: E402
from llm_server import remote_stats, start_subprocess  # noqa: E402

from kgsynth.generate import WRITERS, agenerate_items  # noqa: E402
from kgsynth.graph.snapshot import read_snapshot, write_snapshot  # noqa: E402
from kgsynth.llm import LLMConfig, Price  # noqa: E402


def hpo_snapshot(work: Path):
    from kgsynth.loaders import load

    out = work / "snapshot"
    write_snapshot(load("hpo", []), out)
    return read_snapshot(out)


async def bare_sdk(config: LLMConfig, bodies: list[dict], concurrency: int) -> tuple[float, float]:
    """The same requests through the openai client alone, same transport: (wall s, CPU s)."""
    import openai

    from kgsynth.llm.client import _http_client

    try:
        from httpx2 import Response
    except ImportError:
        from httpx import Response
    client = openai.AsyncOpenAI(base_url=config.base_url, api_key="bench", max_retries=0,
                                http_client=_http_client(config))
    semaphore = asyncio.Semaphore(concurrency)

    async def one(body: dict) -> None:
        async with semaphore:
            response = await client.post("/chat/completions", body=body, cast_to=Response)
            response.json()

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(b) for b in bodies))
    result = time.perf_counter() - wall, time.process_time() - cpu
    await client.close()
    return result


async def main_async(args: argparse.Namespace, url: str, work: Path) -> None:
    from statistics import median

    snapshot = hpo_snapshot(work)
    started = time.perf_counter()
    paths = make_paths(snapshot, args.paths, seed=args.seed)
    print(f"paths: {paths.height} sampled in {time.perf_counter() - started:.1f}s")
    bound = args.concurrency / args.latency
    rates, live, bare, cached = [], [], [], []
    for repeat in range(args.repeat):
        run = work / f"run{repeat}"
        config = LLMConfig(
            model="bench-model", base_url=url, concurrency=args.concurrency, cache_path=run / "cache.sqlite",
            prices={"bench-model": Price(input=0.15, output=0.60)}, timeout_s=30,
        )
        remote_stats(url, reset=True)
        wall, cpu = time.perf_counter(), time.process_time()
        result = await agenerate_items(paths, snapshot, writer=WRITERS.get("openai")(config), out=run / "items.parquet",
                                       concurrency=args.concurrency, batch_size=256)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        served = remote_stats(url)
        requests = int(served["chat"])
        items = max(result.items_new, 1)
        rates.append(requests / (served["last_at"] - served["first_at"]))  # while requests were flowing
        live.append(1000 * cpu / items)

        # the same run again into a new file: every reply from the cache, no HTTP at all
        cpu = time.process_time()
        again = await agenerate_items(paths, snapshot, writer=WRITERS.get("openai")(config),
                                      out=run / "again.parquet", concurrency=args.concurrency, batch_size=256)
        cached.append(1000 * (time.process_time() - cpu) / max(again.items_new, 1))

        # the same chat bodies through the bare openai client (same transport) to split the figure
        bodies = _bodies(paths, snapshot, config)[:requests]
        remote_stats(url, reset=True)
        _, sdk_cpu = await bare_sdk(config, bodies, args.concurrency)
        served = remote_stats(url)
        bare_rate = served["chat"] / (served["last_at"] - served["first_at"])
        bare.append(1000 * sdk_cpu / len(bodies))
        print(f"run {repeat + 1}: {result.items_new} items, {requests} requests, {wall:.2f}s in all: "
              f"{rates[-1]:.1f} req/s ({100 * rates[-1] / bound:.1f}% of {bound:.0f}/s); CPU per item "
              f"{live[-1]:.3f} ms live, {cached[-1]:.3f} ms all-cached; bare client {bare[-1]:.3f} ms/request "
              f"at {bare_rate:.1f} req/s")
    print(f"median of {args.repeat}: request rate {median(rates):.1f}/s = {100 * median(rates) / bound:.1f}% of the "
          f"bound {bound:.0f}/s (concurrency {args.concurrency} / latency {args.latency}s)")
    print(f"  CPU per item, this process, live run: {median(live):.3f} ms (kgsynth + openai client + cache writes)")
    print(f"  bare openai client per request:       {median(bare):.3f} ms")
    print(f"  kgsynth's own CPU per item:           {median(live) - median(bare):.3f} ms (live minus bare client)")
    print(f"  kgsynth per item with no HTTP at all: {median(cached):.3f} ms (re-run served from the reply cache)")
    print(f"load average (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")


def _bodies(paths, snapshot, config: LLMConfig) -> list[dict]:
    from kgsynth.generate.prepare import Phrasebook, node_lookup, path_facts
    from kgsynth.llm import WrittenItem
    from kgsynth.llm.client import LLMClient

    writer = WRITERS.get("openai")(config)
    nodes, book = node_lookup(snapshot, paths), Phrasebook(snapshot)
    client = LLMClient(config.model_copy(update={"cache_path": None}))
    bodies = []
    for row in paths.iter_rows(named=True):
        facts, _ = path_facts(row, nodes, book)
        for kind in ("mcq", "open"):
            bodies.append(client.body(writer.messages(kind, facts), WrittenItem, client.params(), "json_schema"))
    asyncio.get_running_loop().create_task(client.aclose())
    return bodies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=800, help="paths to sample (two items each)")
    parser.add_argument("--latency", type=float, default=0.2, help="server latency per request, seconds")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="measure this many times; medians are printed")
    args = parser.parse_args()
    proc, url = start_subprocess("--latency", str(args.latency), "--responder", "echo")
    try:
        with tempfile.TemporaryDirectory() as work:
            asyncio.run(main_async(args, url, Path(work)))
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    main()
