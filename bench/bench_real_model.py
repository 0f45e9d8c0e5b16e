"""Benchmark: the demo pipeline against a real model, llama.cpp's llama-server with SmolLM2-135M.

Runs configs/local-llm.yaml (sample → generate with the model → graph checks and
the model as judge → export) on N paths, then runs generate and verify again
from the reply cache, and prints what the model did at each stage: the
structured-output mode used, replies that did not parse and how they ended,
items made, accepted by the graph checks and by the judge, every rejection
reason, tokens/s, requests/s, wall and CPU time (this process and the server's),
and the load average. Beside it, the same paths through the offline template
writer: the baseline every model run is compared with.

    kgsynth llm-server prepare                      # once per machine: builds the server (~9 min on 2 cores)
    python bench/bench_real_model.py --paths 300    # starts its own server on a free port, stops it after

Prints figures only. The server must be built (`kgsynth llm-server prepare`);
the bench never builds it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import polars as pl

from kgsynth.config import load_config
from kgsynth.llm import local_server as ls
from kgsynth.pipeline import planned_stages, run_stage
from kgsynth.rundir import RunDir

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def server_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def with_server(config, url: str, n: int, run_dir: Path):
    g = config.generate.model_copy(update={"base_url": url})
    judge = config.verify.llm_judge.model_copy(update={"base_url": url})
    return config.model_copy(update={
        "run_dir": run_dir, "sample": config.sample.model_copy(update={"n": n}), "generate": g,
        "verify": config.verify.model_copy(update={"llm_judge": judge}),
    })  # fmt: skip


def timed_stage(name: str, config, run: RunDir, server: ls.LocalServer, *, force: bool = False) -> dict:
    before = ls.server_metrics(server.root_url)
    cpu0, server_cpu0, wall0 = own_cpu(), server_cpu(server.pid), time.perf_counter()
    result = run_stage(name, config, run, force=force)
    wall = time.perf_counter() - wall0
    after = ls.server_metrics(server.root_url)
    return {
        "wall_s": wall, "cpu_s": own_cpu() - cpu0, "server_cpu_s": server_cpu(server.pid) - server_cpu0,
        "server_prompt_tokens": after.get("llamacpp:prompt_tokens_total", 0) - before.get("llamacpp:prompt_tokens_total", 0),
        "server_predicted_tokens": after.get("llamacpp:tokens_predicted_total", 0)
        - before.get("llamacpp:tokens_predicted_total", 0),
        "summary": result.summary,
    }  # fmt: skip


def baseline(config, run_dir: Path) -> dict:
    """The same paths through the template writer, judged by the graph checks only."""
    g = config.generate.model_copy(update={"writer": "template", "model": None, "base_url": None})
    base = config.model_copy(update={
        "run_dir": run_dir, "generate": g, "verify": config.verify.model_copy(update={"llm_judge": None}),
    })  # fmt: skip
    run = RunDir(run_dir)
    for name in ("load", "shatter", "sample"):
        run_stage(name, base, run)
    wall0, cpu0 = time.perf_counter(), own_cpu()
    run_stage("generate", base, run)
    gen_wall, gen_cpu = time.perf_counter() - wall0, own_cpu() - cpu0
    run_stage("verify", base, run)
    stats = json.loads((run.root / "generate.json").read_text())
    summary = json.loads((run.verified / "summary.json").read_text())
    return {"stats": stats, "summary": summary, "wall_s": gen_wall, "cpu_s": gen_cpu}


def judge_counts(verified: Path) -> dict[str, int]:
    """The judge's verdicts as recorded on the items (accepted and rejected)."""
    frames = [pl.read_parquet(verified / name, columns=["verdicts"]) for name in ("accepted.parquet", "rejected.parquet")]
    verdicts = pl.concat(frames).explode("verdicts").unnest("verdicts").filter(pl.col("check") == "llm_consistency")
    counts = {"judged": verdicts.height, "consistent": int(verdicts["passed"].sum())}
    for code, n in verdicts.filter(~pl.col("passed")).group_by("code").len().iter_rows():
        counts[code] = n
    return counts


# turned away before any model call (generate.run's path checks)
BEFORE_MODEL = ("too_few_negatives", "answer_not_unique", "duplicate_path", "names_not_distinct", "name_is_common_word")


def before_model(rejected: dict[str, int]) -> int:
    return sum(n for reason, n in rejected.items() if reason in BEFORE_MODEL or reason.startswith("anchor_"))


def rerun_requests(run: RunDir) -> int:
    gen = json.loads((run.root / "generate.json").read_text())["usage"]["stages"]["generate"]["requests"]
    verify = json.loads((run.verified / "summary.json").read_text()).get("usage") or {}
    return gen + verify.get("stages", {}).get("verify", {}).get("requests", 0)


def fmt(counts: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])) or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paths", type=int, default=300)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "local-llm.yaml")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-real-model"))
    parser.add_argument("--parallel", type=int, default=ls.DEFAULT_PARALLEL)
    args = parser.parse_args()

    config = load_config(args.config)
    load_before = os.getloadavg()
    started = time.perf_counter()
    with ls.running_server(parallel=args.parallel) as server:
        config = with_server(config, server.url, args.paths, args.out / "model")
        run = RunDir(args.out / "model")
        stages: dict[str, dict] = {}
        for name in planned_stages(config):
            stages[name] = timed_stage(name, config, run, server, force=name in ("generate", "verify"))
        total_wall = time.perf_counter() - started
        load_after = os.getloadavg()
        # the first pass's figures, before the re-run from the cache rewrites these files
        gen = json.loads((run.root / "generate.json").read_text())
        summary = json.loads((run.verified / "summary.json").read_text())
        judge = judge_counts(run.verified)
        failures = pl.read_parquet(run.failures)
        again = {name: timed_stage(name, config, run, server, force=True) for name in ("generate", "verify")}
    base = baseline(config, args.out / "template")

    usage = gen["usage"]["stages"]["generate"]
    judge_usage = (summary.get("usage") or {}).get("stages", {}).get("verify", {})
    paths = pl.read_parquet(run.paths).height
    tasks = gen["items_new"] + failures.height
    graph_failed_items = summary["rejected"] - sum(v for k, v in judge.items() if k not in ("judged", "consistent"))

    g_wall, v_wall = stages["generate"]["wall_s"], stages["verify"]["wall_s"]
    print(f"bench_real_model: {paths} paths, model {config.generate.model} on llama-server "
          f"({args.parallel} slots of {ls.DEFAULT_SLOT_CONTEXT} tokens), {os.cpu_count()} cores")
    print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}; pipeline wall {total_wall:.0f} s")
    print()
    print("| stage | figure | value |")
    print("|---|---|---|")
    rows = [
        ("generate", "(path, kind) pairs", f"{tasks} from {paths} paths; "
                                           f"{tasks - before_model(gen['rejected'])} reached the model"),
        ("generate", "structured-output mode used", fmt(gen["usage"].get("modes", {}))),
        ("generate", "requests (replies paid)", f"{usage['requests']} ({usage['calls']})"),
        ("generate", "replies that did not parse", f"{usage['junk_replies']}; asked again with another seed, "
                                                   f"{usage['failures']} still unusable → rejected"),
        ("generate", "items made", gen["items_new"]),
        ("generate", "turned away / rejected (reason: count)", fmt(gen["rejected"])),
        ("generate", "endpoint failures (retried by a re-run)", fmt(gen["failed"])),
        ("generate", "tokens in / out", f"{usage['prompt_tokens']} / {usage['completion_tokens']}"),
        ("generate", "tokens/s out, requests/s", f"{usage['completion_tokens'] / g_wall:.1f}, "
                                                 f"{usage['requests'] / g_wall:.2f}"),
        ("generate", "wall, client CPU, server CPU", f"{g_wall:.0f} s, {stages['generate']['cpu_s']:.1f} s, "
                                                     f"{stages['generate']['server_cpu_s']:.0f} s"),
        ("verify", "items checked", summary["items"]),
        ("verify", "rejected by the graph checks", f"{graph_failed_items} ({fmt({k: v for k, v in summary['by_reason'].items() if k not in ('ANSWER_INCONSISTENT', 'LLM_UNAVAILABLE')})})"),
        ("verify", "judged by the model", judge["judged"]),
        ("verify", "judge: consistent / inconsistent / unavailable",
         f"{judge['consistent']} / {judge.get('ANSWER_INCONSISTENT', 0)} / {judge.get('LLM_UNAVAILABLE', 0)}"),
        ("verify", "judge requests, junk replies", f"{judge_usage.get('requests', 0)}, {judge_usage.get('junk_replies', 0)}"),
        ("verify", "judge tokens/s out, requests/s",
         f"{judge_usage.get('completion_tokens', 0) / v_wall:.1f}, {judge_usage.get('requests', 0) / v_wall:.2f}"),
        ("verify", "wall, client CPU, server CPU", f"{v_wall:.0f} s, {stages['verify']['cpu_s']:.1f} s, "
                                                   f"{stages['verify']['server_cpu_s']:.0f} s"),
        ("verify", "accepted", f"{summary['accepted']} of {summary['items']}"),
        ("re-run", "generate + verify from the cache: requests, tokens the server decoded",
         f"{rerun_requests(run)}, "
         f"{sum(a['server_predicted_tokens'] + a['server_prompt_tokens'] for a in again.values()):.0f} "
         f"in {sum(a['wall_s'] for a in again.values()):.1f} s"),
        ("baseline", "template writer, same paths: items, accepted",
         f"{base['stats']['items_new']}, {base['summary']['accepted']} (generate {base['wall_s']:.1f} s)"),
    ]
    for row in rows:
        print(f"| {row[0]} | {row[1]} | {row[2]} |")
    print()
    print("server-side tokens (generate): prompt "
          f"{stages['generate']['server_prompt_tokens']:.0f}, predicted {stages['generate']['server_predicted_tokens']:.0f}")
    print(f"outputs: {run.root} (model), {args.out / 'template'} (baseline)")


if __name__ == "__main__":
    main()
