"""Publishing to the Hugging Face Hub.

Each configuration goes up with `DatasetDict.push_to_hub(config_name=…,
data_dir="data/<config>")`, the same layout the export folder has, and then the
kgsynth card replaces the card `datasets` wrote, so `load_dataset(repo_id,
config)` reads exactly what `load_dataset(export_folder, config)` reads.

The endpoint is `HF_ENDPOINT` (read by `huggingface_hub` at import). The token
is the `token` argument or `HF_TOKEN`; it is passed to the client and nowhere
else: never logged, written, or quoted in an error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from datasets import Dataset, DatasetDict

from kgsynth.errors import PublishError, SourceNotFoundError
from kgsynth.export.card import card_metadata
from kgsynth.export.redact import redact
from kgsynth.export.rows import FEATURES
from kgsynth.export.writer import ExportResult, quiet_datasets


def push_dataset(
    source: str | Path | ExportResult | Mapping[str, DatasetDict],
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
) -> str:
    """Push every configuration and the card; return the dataset's URL on the Hub.

    `source` is an export folder (or its `ExportResult`), whose card and parquet
    files are pushed, or a mapping config → DatasetDict (pushed without a kgsynth card).
    """
    from huggingface_hub import HfApi, constants

    token = token or os.environ.get("HF_TOKEN")
    if not token:
        raise PublishError(
            "no Hub token: set HF_TOKEN to a write token (https://huggingface.co/settings/tokens) to publish"
        )
    if "/" not in repo_id:
        raise PublishError(f"repository id {repo_id!r} needs a namespace: use USER/NAME or ORG/NAME")
    configs, card = _configs_and_card(source)
    endpoint = constants.ENDPOINT
    try:
        with quiet_datasets():
            for name, dataset_dict in configs.items():
                dataset_dict.push_to_hub(
                    repo_id,
                    config_name=name,
                    data_dir=f"data/{name}",
                    private=private,
                    token=token,
                    commit_message=f"Upload the {name} configuration (kgsynth)",
                )
            if card is not None:
                HfApi(endpoint=endpoint, token=token).upload_file(
                    path_or_fileobj=card.encode("utf-8"),
                    path_in_repo="README.md",
                    repo_id=repo_id,
                    repo_type="dataset",
                    commit_message="Dataset card (kgsynth)",
                )
    except Exception as exc:  # huggingface_hub and httpx raise many types; all mean the push failed
        raise PublishError(
            f"pushing dataset {repo_id!r} to {endpoint} failed: {_describe(exc, token)}"
        ) from None
    return f"{endpoint}/datasets/{repo_id}"


def _configs_and_card(
    source: str | Path | ExportResult | Mapping[str, DatasetDict],
) -> tuple[dict[str, DatasetDict], str | None]:
    if isinstance(source, Mapping):
        return dict(source), None
    folder = Path(source.out if isinstance(source, ExportResult) else source)
    readme = folder / "README.md"
    if not readme.exists():
        raise SourceNotFoundError(f"{readme}: missing; push expects a folder written by `kgsynth export`")
    card = readme.read_text(encoding="utf-8")
    entries = card_metadata(card).get("configs") or []
    if not entries:
        raise SourceNotFoundError(
            f"{readme}: the card lists no parquet configurations; re-export with the parquet format to publish"
        )
    configs: dict[str, DatasetDict] = {}
    for entry in entries:
        name = entry["config_name"]
        splits = {}
        for data_files in entry["data_files"]:
            paths = sorted(folder.glob(data_files["path"]))
            if not paths:
                raise SourceNotFoundError(f"{folder / data_files['path']}: no files; the export folder is incomplete")
            splits[data_files["split"]] = _read_parquet(paths, name, data_files["split"])
        configs[name] = DatasetDict(splits)
    return configs, card


def _read_parquet(paths: list[Path], config: str, split: str) -> Dataset:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.concat_tables([pq.read_table(p) for p in paths])
    features = FEATURES.get(config)
    dataset = Dataset(table, split=split)
    return dataset.cast(features) if features is not None and dataset.features != features else dataset


def _describe(exc: Exception, token: str) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    status = getattr(getattr(exc, "response", None), "status_code", None)
    text = " ".join(lines[:3]) or type(exc).__name__
    return redact(f"HTTP {status}: {text}" if status else f"{type(exc).__name__}: {text}", extra=(token,))
