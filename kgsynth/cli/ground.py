"""`kgsynth ground`: existing QA pairs → grounded, verified reasoning (the MedReason workflow)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("ground")(ground)


def _split(value: Optional[str]) -> list[str] | None:
    items = [v.strip() for v in (value or "").split(",") if v.strip()]
    return items or None


def ground(
    qa_file: Annotated[Path, typer.Argument(help="QA set: .jsonl/.json, .csv/.tsv, .parquet or a Hugging Face dataset directory.")],
    snapshot: Annotated[Path, typer.Option(help="The full snapshot: linking and verification use it.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory (run-directory layout).")],
    pruned: Annotated[
        Optional[Path], typer.Option(help="Pruned snapshot to search paths on (from `kgsynth shatter`); default: --snapshot.")
    ] = None,
    hubs: Annotated[
        Optional[Path], typer.Option(help="hubs.json of the pruning (default: hubs.json in --pruned, if present).")
    ] = None,
    dataset_name: Annotated[Optional[str], typer.Option(help="dataset_name of the rows (default: the file's name).")] = None,
    split: Annotated[Optional[str], typer.Option(help="Split of a Hugging Face dataset (default: train).")] = None,
    question_col: Annotated[str, typer.Option(help="Column with the question.")] = "question",
    options_col: Annotated[
        str, typer.Option(help="Column with the options (dict, list, JSON or 'A. …' lines), or several comma-separated columns; '' for none.")
    ] = "options",
    answer_col: Annotated[str, typer.Option(help="Column with the answer: an option label, an option's text, or the answer text.")] = "answer",
    id_col: Annotated[Optional[str], typer.Option(help="Column with the row id (default: id or id_in_dataset, else the row number).")] = None,
    source_col: Annotated[Optional[str], typer.Option(help="Column naming each row's dataset (default: dataset_name if present).")] = None,
    answer_index_base: Annotated[
        Optional[int], typer.Option(min=0, max=1, help="Integer answers index the options from 0 or 1.")
    ] = None,
    link: Annotated[str, typer.Option(help="Linking methods, comma-separated: dictionary, embedding, llm.")] = "dictionary,embedding",
    question_types: Annotated[Optional[str], typer.Option(help="Node types question entities may have (comma-separated; default: any).")] = None,
    answer_types: Annotated[Optional[str], typer.Option(help="Node types the answer may have (default: the options' type, else any).")] = None,
    accept: Annotated[float, typer.Option(min=0.0, max=1.0, help="Cosine at which an embedding match links.")] = 0.9,
    floor: Annotated[float, typer.Option(min=0.0, max=1.0, help="Cosine below which no candidate is recorded.")] = 0.6,
    k: Annotated[int, typer.Option(min=1, help="Paths searched per (question entity, answer) pair.")] = 5,
    max_hops: Annotated[int, typer.Option(min=1, max=6, help="Hop cap of every path.")] = 3,
    paths: Annotated[int, typer.Option("--paths", min=1, help="Paths the reasoning follows per question.")] = 3,
    max_pairs: Annotated[int, typer.Option(min=1, help="(question entity, answer) pairs searched per question.")] = 25,
    seed: Annotated[int, typer.Option(help="Seed of the path search.")] = 0,
    select: Annotated[str, typer.Option(help="Path selection: rank (offline) or llm.")] = "rank",
    writer: Annotated[str, typer.Option(help="Reasoning writer: template (offline) or openai (any OpenAI-compatible server).")] = "template",
    check: Annotated[
        Optional[list[str]], typer.Option("--check", "-c", help="Verification graph checks (repeatable; default: edges, answer, thinking).")
    ] = None,
    consistency: Annotated[bool, typer.Option(help="Also have the model answer from the reasoning alone.")] = False,
    relation_check: Annotated[
        str, typer.Option(help="How each step's relation is read: lexicon, model (the lexicon, then --model for the rest), off.")
    ] = "lexicon",
    model: Annotated[Optional[str], typer.Option(help="Model for the llm steps (--link …,llm, --select llm, --writer openai, --consistency).")] = None,
    base_url: Annotated[Optional[str], typer.Option(help="Endpoint, e.g. http://localhost:8000/v1 (default: $OPENAI_BASE_URL or OpenAI).")] = None,
    api_key_env: Annotated[str, typer.Option(help="Environment variable that holds the API key.")] = "OPENAI_API_KEY",
    concurrency: Annotated[int, typer.Option(min=1, help="Model calls in flight at once.")] = 32,
    budget_usd: Annotated[Optional[float], typer.Option(min=0, help="Refuse model calls past this spend (USD).")] = None,
    price: Annotated[Optional[list[str]], typer.Option(help="Price MODEL=IN,OUT in USD per 1M tokens (repeatable).")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not cache model replies (a re-run pays again).")] = False,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Use only the first N questions.")] = None,
) -> int:
    """Ground existing QA pairs in the graph: link entities, find paths from the question's
    entities to the answer, write a reasoning along them, verify it against the full graph.

    Writes items and verified items (so `kgsynth export OUT` works), MedReason-compatible
    grounded.jsonl/parquet, every question's outcome and a coverage report. Exit code 3
    means the budget was reached (everything is written; re-run with a larger budget,
    the replies already paid for come from the cache).

    Example: kgsynth ground tests/data/qa_hpo.jsonl --snapshot runs/demo/snapshot --out runs/grounded
    """
    from kgsynth.errors import ConfigError
    from kgsynth.graph.snapshot import read_snapshot
    from kgsynth.ground.link import LinkConfig
    from kgsynth.ground.qa import ColumnMap, read_qa
    from kgsynth.ground.run import GroundConfig, ground_qa
    from kgsynth.llm.config import LLMConfig, parse_price
    from kgsynth.progress import console

    started = time.perf_counter()
    if select not in ("rank", "llm"):
        raise ConfigError(f"--select must be rank or llm, not {select!r}")
    if writer not in ("template", "openai"):
        raise ConfigError(f"--writer must be template or openai, not {writer!r}")
    if relation_check not in ("lexicon", "model", "off"):
        raise ConfigError(f"--relation-check must be lexicon, model or off, not {relation_check!r}")
    methods = _split(link) or []
    unknown = [m for m in methods if m not in ("dictionary", "embedding", "llm")]
    if unknown or "dictionary" not in methods:
        raise ConfigError(f"--link takes dictionary plus embedding and/or llm, comma-separated; got {link!r}")
    columns = ColumnMap(
        question=question_col, options=_split(options_col) or [], answer=answer_col, id=id_col, source=source_col,
        answer_index_base=answer_index_base,
    )
    records = read_qa(qa_file, columns, dataset_name=dataset_name, split=split)
    if limit is not None:
        records = records[:limit]
    full = read_snapshot(snapshot)
    sampled = read_snapshot(pruned) if pruned else None
    if hubs is None and pruned is not None and (pruned / "hubs.json").exists():
        hubs = pruned / "hubs.json"
    config = GroundConfig(
        link=LinkConfig(methods=methods, question_types=_split(question_types), answer_types=_split(answer_types),
                        accept=accept, floor=floor),
        k=k, max_hops=max_hops, paths_per_question=paths, max_pairs=max_pairs, seed=seed, select=select,
        writer=writer, checks=check or list(GroundConfig().checks), consistency=consistency, relation_check=relation_check,
    )
    llm = None
    if config.model_steps():
        if not model:
            raise ConfigError(f"{', '.join(config.model_steps())} need(s) --model (e.g. gpt-4o-mini, or the name your server serves)")
        llm = LLMConfig(
            model=model, base_url=base_url, api_key_env=api_key_env, concurrency=concurrency, budget_usd=budget_usd,
            cache_path=None if no_cache else out / "llm_cache.sqlite",
        )
        llm.prices.update(dict(parse_price(p) for p in price or []))
    result = ground_qa(records, full, out, config=config, sampled=sampled, hubs=hubs, llm=llm)

    s = result.seconds
    console.print(
        f"[bold green]grounded[/] {result.questions:,} questions → {result.items:,} reasoning(s), "
        f"{result.accepted:,} verified, {result.rejected:,} rejected → {result.out} "
        f"in {time.perf_counter() - started:.1f}s"
    )
    console.print(
        f"  time: setup {s['setup']:.1f}s, link {s['link']:.1f}s, paths {s['paths']:.1f}s, reasoning {s['reasoning']:.1f}s, verify {s['verify']:.1f}s "
        f"({result.summary['questions_per_second']['link_and_paths']:,} questions/s linking + path finding)"
    )
    names = result.summary.get("name_embeddings")
    if names:
        console.print(
            f"  embedding linking: {names['embedded']:,} node names embedded ({names['names_per_second']:,.0f}/s), "
            f"{names['from_cache']:,} read from the cache beside the snapshot"
        )
    for row in result.coverage["funnel"]:
        console.print(f"  {row['meaning']}: {row['questions']:,} ({row['share'] * 100:.1f}%)")
    for stage, reasons in result.coverage["losses"].items():
        console.print(f"  lost at {stage}: " + ", ".join(f"{reason} {count:,}" for reason, count in reasons.items()))
    usage = result.summary.get("model_usage")
    if usage:
        total = usage["total"]
        console.print(
            f"  model {usage['model']}: {total['calls']:,} calls, {total['cache_hits']:,} from cache, "
            f"${total['cost_usd']:.4f}" + (f"; failed: {usage['failures']}" if usage["failures"] else "")
        )
    console.print(f"  MedReason rows → {result.out / 'grounded.jsonl'}; coverage → {result.out / 'coverage.md'}")
    if result.stopped == "budget":
        from kgsynth.cli.generate import BUDGET_EXIT_CODE

        refused = {key.split(":")[0]: n for key, n in usage["failures"].items() if key.endswith(":budget")}
        console.print(
            f"[bold yellow]budget reached[/] (${budget_usd}): model calls refused: "
            + ", ".join(f"{name} {n:,}" for name, n in refused.items())
            + ". Everything is written; re-run with a larger --budget-usd to continue."
        )
        return BUDGET_EXIT_CODE
    return 0
