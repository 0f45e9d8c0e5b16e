"""The dataset card (YAML the Hub reads, how the data was made), licences, and secrets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml
from test_export_rundir import export_run  # noqa: F401  (session fixture)

from kgsynth.export import card_license, export_dataset, write_report
from kgsynth.export.card import UMLS_LICENSE_LINK, card_metadata, size_category
from kgsynth.export.redact import REDACTED, is_secret_name
from kgsynth.graph.snapshot import SourceInfo, read_snapshot


@pytest.fixture(scope="module")
def card(export_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:  # noqa: F811
    out = tmp_path_factory.mktemp("card") / "dataset"
    export_dataset(export_run, out, repo_id="tester/hpo-demo", formats=("parquet", "jsonl"))
    return (out / "README.md").read_text(encoding="utf-8"), out


def test_card_yaml_parses_and_has_the_hub_fields(card) -> None:
    text, out = card
    assert text.startswith("---\n")
    meta = card_metadata(text)
    assert meta == yaml.safe_load(text.split("---\n")[1])
    assert meta["license"] == "other"
    assert meta["license_name"] == "hpo-license" and meta["license_link"] == "https://hpo.jax.org/license"
    assert meta["language"] == ["en"]
    assert set(meta["task_categories"]) == {"question-answering", "text-generation"}
    assert meta["size_categories"] == ["n<1K"]
    assert {"biomedical", "knowledge-graph", "hpo"} <= set(meta["tags"])
    configs = {c["config_name"]: c for c in meta["configs"]}
    assert set(configs) == {"default", "sft", "mcq"} and configs["default"]["default"] is True
    infos = {i["config_name"]: i for i in meta["dataset_info"]}
    for name, config in configs.items():
        for data_files in config["data_files"]:
            matched = list(out.glob(data_files["path"]))
            assert len(matched) == 1, data_files
            rows = pl.read_parquet(matched[0]).height
            split_info = next(s for s in infos[name]["splits"] if s["name"] == data_files["split"])
            assert split_info["num_examples"] == rows


def test_card_says_how_the_dataset_was_made(card, export_run: Path) -> None:  # noqa: F811
    text, _ = card
    manifest = read_snapshot(export_run / "snapshot").manifest
    hubs = json.loads((export_run / "pruned" / "hubs.json").read_text())
    generate = json.loads((export_run / "generate.json").read_text())
    summary = json.loads((export_run / "verified" / "summary.json").read_text())
    accepted = pl.read_parquet(export_run / "verified" / "accepted.parquet")
    failures = pl.read_parquet(export_run / "failures.parquet")
    provenance = accepted["provenance"][0]
    judged = summary["accepted"] + summary["rejected"]
    top_failure, top_count = failures["reason"].value_counts(sort=True).row(0)
    top_reason = next(iter(summary["by_reason"]))
    expected = [
        manifest.source_info.name,
        f"version {manifest.source_info.version}",
        manifest.source_info.license,
        manifest.source_info.attribution,
        manifest.hash,  # the source graph's snapshot hash
        hubs["params_hash"],
        json.dumps(hubs["params"], sort_keys=True),
        max(hubs["removed"], key=lambda h: h["degree"])["name"],
        f"{len(hubs['removed'])} hub node(s) removed",
        f"`{provenance['strategy']}` (seed {provenance['seed']})",  # sampler and seed
        f"| {provenance['writer']} | {provenance['model']} |",  # writer and model
        *(f"`{p['name']}` (hash `{p['hash']}`)" for p in generate["prompts"].values()),  # prompt versions
        f"| generate | items | {generate['items_total'] + failures.height} | {generate['items_total']} |",
        f"| verify | items | {judged} | {summary['accepted']} | {summary['accepted'] / judged:.1%} |",
        f"| verify: graph | {top_reason} |",
        f"| generate | {top_failure} | {top_count} |",
        "@misc{",
        "huggingface.co/datasets/tester/hpo-demo",
        'load_dataset("tester/hpo-demo", "sft")',
        "`jsonl/<config>/<split>.jsonl`",
    ]
    for fragment in expected:
        assert fragment in text, fragment
    assert "disk/<config>" not in text  # not exported in this format
    assert str(export_run) not in text  # local paths of the run records are left out


@pytest.mark.parametrize(
    ("info", "license", "name", "link"),
    [
        (SourceInfo(name="HPO", license="https://hpo.jax.org/license"), "other", "hpo-license", "https://hpo.jax.org/license"),
        (SourceInfo(name="PrimeKG", license="CC-BY-4.0"), "cc-by-4.0", None, None),
        (SourceInfo(name="PrimeKG", license="https://creativecommons.org/licenses/by/4.0/"), "cc-by-4.0", None,
         "https://creativecommons.org/licenses/by/4.0/"),
        (SourceInfo(name="UMLS Metathesaurus", license="UMLS Metathesaurus License"), "other", "umls-license",
         UMLS_LICENSE_LINK),
        (SourceInfo(name="my graph", license="MIT"), "mit", None, None),
        (SourceInfo(name="x", license="https://example.org/terms"), "other", "example-org-license", "https://example.org/terms"),
        (SourceInfo(name="x"), "unknown", None, None),
        (None, "unknown", None, None),
    ],
)
def test_card_license_from_the_source_graph(info, license, name, link) -> None:
    lic = card_license(info)
    assert (lic.license, lic.name, lic.link) == (license, name, link)


def test_umls_cards_warn_that_redistribution_needs_a_licence() -> None:
    note = card_license(SourceInfo(name="UMLS", license="UMLS Metathesaurus License", version="2024AB")).note
    assert "UMLS licence" in note and "private" in note


def test_size_categories() -> None:
    assert [size_category(n) for n in (0, 999, 1000, 99_999, 2_000_000)] == [
        "n<1K", "n<1K", "1K<n<10K", "10K<n<100K", "1M<n<10M"]


def test_secret_names() -> None:
    assert all(map(is_secret_name, ["HF_TOKEN", "OPENAI_API_KEY", "NEO4J_PASSWORD", "apiKey", "AWS_SECRET_ACCESS_KEY"]))
    assert not any(map(is_secret_name, ["prompt_tokens", "completion_tokens", "keywords", "TOKENIZERS_PARALLELISM"]))


def test_no_secret_reaches_any_written_file(export_run: Path, tmp_path: Path, monkeypatch) -> None:  # noqa: F811
    secrets = {
        "OPENAI_API_KEY": "sk-fake-4f9a8b7c6d5e4f3a2b1c",
        "HF_TOKEN": "hf_fakeTokenValue0123456789",
        "NEO4J_PASSWORD": "n30j-fake-pa55word",
    }
    for key, value in secrets.items():
        monkeypatch.setenv(key, value)
    unlisted = "sk-not-in-the-environment-77aa"
    url_password = "url-pa55-in-base-url"
    run = tmp_path / "run"
    shutil.copytree(export_run, run, symlinks=True)
    generate = json.loads((run / "generate.json").read_text())
    generate["params"] = {
        "api_key": unlisted,
        "base_url": f"https://writer:{url_password}@llm.example.org/v1",
        "note": f"called with key {secrets['OPENAI_API_KEY']}",
    }
    (run / "generate.json").write_text(json.dumps(generate))
    summary = json.loads((run / "verified" / "summary.json").read_text())
    summary["judge"] = {"endpoint": "bolt://neo4j@localhost", "neo4j_password": secrets["NEO4J_PASSWORD"]}
    (run / "verified" / "summary.json").write_text(json.dumps(summary))

    out = tmp_path / "dataset"
    export_dataset(run, out, repo_id="tester/hpo-demo")
    write_report(run)
    card_text = (out / "README.md").read_text()
    assert card_text.count(REDACTED) >= 4  # the planted values were there to leak, and were redacted
    written = [p for folder in (out, run / "report") for p in folder.rglob("*") if p.is_file()]
    assert len(written) > 20
    for path in written:
        data = path.read_bytes()
        for value in [*secrets.values(), unlisted, url_password]:
            assert value.encode() not in data, f"{value} leaked into {path}"


def test_export_without_optional_parts_says_what_is_missing(export_run: Path, tmp_path: Path) -> None:  # noqa: F811
    bare = tmp_path / "bare"
    (bare / "verified").mkdir(parents=True)
    shutil.copy(export_run / "verified" / "accepted.parquet", bare / "verified")
    out = tmp_path / "dataset"
    result = export_dataset(bare, out)
    assert sum(result.configs["default"].values()) == pl.read_parquet(bare / "verified" / "accepted.parquet").height
    text = (out / "README.md").read_text()
    meta = card_metadata(text)
    assert meta["license"] == "unknown"
    for fragment in ("No hub pruning was applied", "No `rejected.parquet`", "No `generate.json`",
                     "No `snapshot/`", "check it before you redistribute"):
        assert fragment in text, fragment
    report = write_report(bare).read_text()
    assert "answer nodes' degrees are unknown" in report and "No hubs were removed" in report
