"""Write an export folder: the card, parquet laid out as on the Hub, and optional copies.

```
OUT/README.md                                  dataset card (YAML `configs:` point at data/)
OUT/data/<config>/<split>-00000-of-0000N.parquet  what `load_dataset(OUT)` and the Hub read
OUT/disk/<config>/                             `DatasetDict.save_to_disk` copy ("disk")
OUT/jsonl/<config>/<split>.jsonl               one JSON object per line ("jsonl")
OUT/export.json                                counts, split parameters, left-out items
```

The parquet names match what `DatasetDict.push_to_hub(data_dir="data/<config>")`
writes, so the same card works locally and on the Hub. The folder is written
beside OUT and moved into place at the end: a failed export leaves nothing behind.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel

from kgsynth.atomic import replace_directory
from kgsynth.errors import ConfigError
from kgsynth.export.build import prepare
from kgsynth.export.card import SplitFiles, render_card
from kgsynth.export.redact import redact
from kgsynth.export.stats import run_stats

FORMATS = ("disk", "parquet", "jsonl")
FORMAT_ALIASES = {"arrow": "disk"}  # the run configuration's name for save_to_disk
MAX_SHARD_BYTES = 500 * 1024 * 1024  # push_to_hub's default shard size
EXPORT_RECORD = "export.json"


class ExportResult(BaseModel):
    out: Path
    configs: dict[str, dict[str, int]]  # config → split → rows
    left_out: dict[str, int]  # reason → items not exported
    difficulty_levels: dict[str, dict[str, int]] | None = None  # split → level → items, when measured
    formats: list[str]
    card: Path
    seconds: float


def export_dataset(
    run_dir: str | Path,
    out: str | Path,
    *,
    formats: Sequence[str] = FORMATS,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    hop_split: Mapping[str, Sequence[int]] | None = None,
    repo_id: str | None = None,
    drop_rejected: bool = False,
    curriculum: bool = False,
    stratify: str = "none",
) -> ExportResult:
    """Export a run's accepted items to `out` (replaced atomically). `repo_id` only shapes the card's snippets;
    `drop_rejected` leaves out items an expert rejected (`kgsynth review export`); `curriculum` orders the train
    split easy to hard and `stratify="difficulty"` balances difficulty levels across splits (both need the
    difficulty stage's output)."""
    started = time.perf_counter()
    formats = tuple(dict.fromkeys(FORMAT_ALIASES.get(f, f) for f in formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ConfigError(f"unknown export format(s) {unknown or formats!r}; choose from {', '.join(FORMATS)}")
    out = Path(out)

    prepared = prepare(
        run_dir, ratios=ratios, seed=seed, hop_split=hop_split, drop_rejected=drop_rejected,
        curriculum=curriculum, stratify=stratify,
    )  # fmt: skip
    configs = prepared.configs()
    stats = run_stats(prepared.inputs, prepared.plan)

    with replace_directory(out, marker=EXPORT_RECORD, what="export") as tmp, quiet_datasets():
        files: dict[str, SplitFiles] = {}
        for name, dataset_dict in configs.items():
            if "parquet" in formats:
                files[name] = _write_parquet(dataset_dict, tmp, name)
            if "jsonl" in formats:
                for split, dataset in dataset_dict.items():
                    target = tmp / "jsonl" / name / f"{split}.jsonl"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    dataset.to_json(target, lines=True, force_ascii=False)
            if "disk" in formats:
                dataset_dict.save_to_disk(tmp / "disk" / name)
        card = render_card(prepared, stats, files, repo_id=repo_id, formats=formats)
        (tmp / "README.md").write_text(card, encoding="utf-8")
        record = {
            "configs": {name: {s: d.num_rows for s, d in dd.items()} for name, dd in configs.items()},
            "left_out": prepared.plan.left_out_counts(),
            "ratios": prepared.plan.ratios,
            "seed": seed,
            "hop_split": prepared.plan.hop_split,
            "drop_rejected": drop_rejected,
            "curriculum": curriculum,
            "stratify": stratify,
            "difficulty_levels": _levels_by_split(prepared),
            "formats": list(formats),
            "groups": prepared.plan.groups,
            "snapshot_hash": prepared.inputs.snapshot.hash if prepared.inputs.snapshot else None,
        }
        (tmp / EXPORT_RECORD).write_text(redact(json.dumps(record, indent=2)) + "\n", encoding="utf-8")
    return ExportResult(
        out=out,
        configs=record["configs"],
        left_out=record["left_out"],
        difficulty_levels=record["difficulty_levels"],
        formats=list(formats),
        card=out / "README.md",
        seconds=time.perf_counter() - started,
    )


def _levels_by_split(prepared) -> dict[str, dict[str, int]] | None:
    """split → difficulty level → items, when difficulty was measured."""
    from collections import Counter

    from kgsynth.difficulty import LEVELS
    from kgsynth.export.rows import level

    if prepared.inputs.difficulty is None:
        return None
    out = {}
    for split, rows in prepared.rows.items():
        counted = Counter(level(r) or "unmeasured" for r in rows)
        out[split] = {name: counted[name] for name in (*LEVELS, "unmeasured") if counted[name]}
    return out


def _write_parquet(dataset_dict, root: Path, config: str) -> SplitFiles:
    folder = root / "data" / config
    folder.mkdir(parents=True)
    patterns, examples, num_bytes, download = {}, {}, {}, 0
    for split, dataset in dataset_dict.items():
        shards = max(1, math.ceil(dataset.data.nbytes / MAX_SHARD_BYTES))
        for index in range(shards):
            target = folder / f"{split}-{index:05d}-of-{shards:05d}.parquet"
            dataset.shard(shards, index, contiguous=True).to_parquet(target)
            download += target.stat().st_size
        patterns[split] = f"data/{config}/{split}-*"
        examples[split] = dataset.num_rows
        num_bytes[split] = dataset.data.nbytes
    return SplitFiles(patterns=patterns, examples=examples, num_bytes=num_bytes, download_size=download)


@contextmanager
def quiet_datasets() -> Iterator[None]:
    """Silence the progress bars and info logs of datasets and huggingface_hub; kgsynth shows its own."""
    import datasets
    import huggingface_hub.utils as hub_utils
    from datasets.utils import logging as datasets_logging

    bars = not datasets.are_progress_bars_disabled(), not hub_utils.are_progress_bars_disabled()
    verbosity = datasets_logging.get_verbosity()
    datasets.disable_progress_bars()
    hub_utils.disable_progress_bars()
    datasets_logging.set_verbosity_error()
    try:
        yield
    finally:
        datasets_logging.set_verbosity(verbosity)
        if bars[0]:
            datasets.enable_progress_bars()
        if bars[1]:
            hub_utils.enable_progress_bars()
