"""Benchmark: generation throughput and kgsynth's CPU cost per item against a model endpoint.

A local OpenAI-compatible server (tests/llm_server.py, in its own process so its CPU
is not counted here) answers every call after a fixed latency. With C calls in
flight and latency L the best possible rate is C / L requests per second; the bench
prints the achieved rate against that bound, and the CPU time of this process per
item (`time.process_time()`), split into what the bare openai client costs for the
same requests and what kgsynth adds on top.

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

    await one(bodies[0])  # connect once before timing
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(b) for b in bodies))
    result = time.perf_counter() - wall, time.process_time() - cpu
    await client.close()
    return result


async def main_async(args: argparse.Namespace, url: str, work: Path) -> None:
    snapshot = hpo_snapshot(work)
    started = time.perf_counter()
    paths = make_paths(snapshot, args.paths, seed=args.seed)
    print(f"paths: {paths.height} sampled in {time.perf_counter() - started:.1f}s")
    config = LLMConfig(
        model="bench-model", base_url=url, concurrency=args.concurrency, cache_path=work / "cache.sqlite",
        prices={"bench-model": Price(input=0.15, output=0.60)}, timeout_s=30,
    )
    writer = WRITERS.get("openai")(config)
    before = remote_stats(url)["chat"]
    wall, cpu = time.perf_counter(), time.process_time()
    result = await agenerate_items(paths, snapshot, writer=writer, out=work / "items.parquet",
                                   concurrency=args.concurrency, batch_size=256)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    requests = remote_stats(url)["chat"] - before
    bound = args.concurrency / args.latency
    rate = requests / wall
    items = max(result.items_new, 1)
    print(f"generation: {result.items_new} items, {requests} requests in {wall:.2f}s wall")
    print(f"  request rate {rate:.1f}/s = {100 * rate / bound:.1f}% of the bound {bound:.0f}/s "
          f"(concurrency {args.concurrency} / latency {args.latency}s)")
    print(f"  CPU {1000 * cpu / items:.3f} ms per item in this process (all of it: kgsynth + openai client + cache)")

    # the same chat bodies through the bare openai client, to split the CPU figure
    from kgsynth.generate.prepare import Phrasebook, node_lookup, path_facts
    from kgsynth.llm import WrittenItem
    from kgsynth.llm.client import LLMClient

    nodes, book = node_lookup(snapshot, paths), Phrasebook(snapshot)
    client = LLMClient(config.model_copy(update={"cache_path": None}))
    bodies = []
    for row in paths.iter_rows(named=True):
        facts, _ = path_facts(row, nodes, book)
        for kind in ("mcq", "open"):
            bodies.append(client.body(writer.messages(kind, facts), WrittenItem, client.params(), "json_schema"))
    await client.aclose()
    bodies = bodies[:requests]
    sdk_wall, sdk_cpu = await bare_sdk(config, bodies, args.concurrency)
    sdk_per = 1000 * sdk_cpu / len(bodies)
    print(f"bare openai client, same {len(bodies)} requests: {len(bodies) / sdk_wall:.1f}/s, "
          f"CPU {sdk_per:.3f} ms per request")
    print(f"  kgsynth's own CPU per item: {1000 * cpu / items - sdk_per:.3f} ms "
          f"(this process per item minus the bare client per request)")
    print(f"load average (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=800, help="paths to sample (two items each)")
    parser.add_argument("--latency", type=float, default=0.2, help="server latency per request, seconds")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
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
