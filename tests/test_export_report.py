"""The quality report: report.md with readable PNG plots, and the CLI commands."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image
from test_export_rundir import export_run  # noqa: F401  (session fixture)

from kgsynth.cli import main
from kgsynth.export import write_report

PLOTS = {"hops.png", "coverage.png", "answer_degree.png", "rejections.png", "hubs.png", "cost.png", "difficulty.png"}


@pytest.fixture(scope="module")
def report(export_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    return write_report(export_run, tmp_path_factory.mktemp("report") / "report")


def test_report_links_every_plot_and_each_is_a_real_png(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    linked = set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text))
    assert linked == PLOTS
    assert {p.name for p in report.parent.glob("*.png")} == PLOTS
    for name in PLOTS:
        with Image.open(report.parent / name) as image:
            assert image.format == "PNG"
            width, height = image.size
            assert width >= 500 and height >= 300
            pixels = np.asarray(image.convert("L"), dtype=float)
        # a drawn chart: mostly white background with a fair amount of ink
        ink = (pixels < 200).mean()
        assert 0.01 < ink < 0.6, f"{name}: {ink:.3f} of pixels are dark"


def test_report_figures_match_the_run(report: Path, export_run: Path) -> None:  # noqa: F811
    text = report.read_text(encoding="utf-8")
    accepted = pl.read_parquet(export_run / "verified" / "accepted.parquet")
    rejected = pl.read_parquet(export_run / "verified" / "rejected.parquet")
    for hops in sorted(set(accepted["hops"])):
        a = accepted.filter(pl.col("hops") == hops).height
        r = rejected.filter(pl.col("hops") == hops).height
        assert f"| {hops} | {a} | {r} | {r / (a + r):.1%} |" in text
    relation_hops = accepted["relations"].explode().value_counts()
    for relation, count in relation_hops.iter_rows():
        assert f"| {relation} | {count} |" in text
    summary = json.loads((export_run / "verified" / "summary.json").read_text())
    for reason, count in summary["by_reason"].items():
        assert f"| verify: graph | {reason} | {count} |" in text
    failures = pl.read_parquet(export_run / "failures.parquet")["reason"].value_counts()
    for reason, count in failures.iter_rows():
        assert f"| generate | {reason} | {count} |" in text
    hubs = json.loads((export_run / "pruned" / "hubs.json").read_text())["removed"]
    assert all(h["name"] in text for h in sorted(hubs, key=lambda h: -h["degree"])[:20])
    answers = accepted["answer_id"].n_unique()
    assert f"{answers:,} distinct answer nodes" in text
    usage = accepted["provenance"].struct.field("usage").struct.field("prompt_tokens").sum()
    usage += rejected["provenance"].struct.field("usage").struct.field("prompt_tokens").sum()
    assert f"| openai | test-model | {accepted.height + rejected.height} | {usage:,} |" in text


def test_cli_report_and_export_summaries(export_run: Path, tmp_path: Path, capsys) -> None:  # noqa: F811
    run = tmp_path / "run"
    shutil.copytree(export_run, run, symlinks=True)
    shutil.rmtree(run / "report", ignore_errors=True)
    main(["report", str(run)])  # returns normally on success; errors exit 2
    assert {p.name for p in (run / "report").glob("*.png")} == PLOTS
    main(["export", str(run), "--hop-split", "train=1-3,test=4-5", "-f", "parquet"])
    err = capsys.readouterr().err
    assert "report" in err and "exported" in err and "default" in err
    assert sorted(p.name for p in (run / "dataset").iterdir()) == ["README.md", "data", "export.json"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "{empty}"], "accepted.parquet: missing"),
        (["export", "{run}", "--ratios", "a,b,c"], "--ratios expects three numbers"),
        (["export", "{run}", "--hop-split", "train=1-3,test=2-4"], "overlap without being equal"),
        (["export", "{run}", "-f", "csv"], "unknown export format"),
        (["report", "{empty}"], "accepted.parquet: missing"),
    ],
)
def test_cli_errors_are_one_line_and_exit_2(args, message, export_run: Path, tmp_path: Path, capsys) -> None:  # noqa: F811
    argv = [a.format(empty=tmp_path, run=export_run) for a in args]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_report_refuses_a_folder_of_other_files(export_run: Path, tmp_path: Path, capsys) -> None:  # noqa: F811
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(export_run), "-o", str(mine)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "not a kgsynth report (no report.md); refusing" in " ".join(err.split()) and "Traceback" not in err
    assert [p.name for p in mine.iterdir()] == ["keep.txt"]
