"""`kgsynth neo4j push | pull | export-import-csv` against the real Bolt server; the password never leaks."""

from __future__ import annotations

from pathlib import Path

import pytest

from bolt_server import free_port
from kgsynth.cli import main
from kgsynth.graph.snapshot import Snapshot, read_snapshot
from kgsynth.sample.paths import read_paths
from kgsynth.stores.neo4j import Neo4jConfig

pytest_plugins = ["conftest_neo4j"]


@pytest.fixture()
def neo4j_env(neo4j_config: Neo4jConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Neo4jConfig:
    monkeypatch.setenv("NEO4J_URI", neo4j_config.uri)
    monkeypatch.setenv("NEO4J_USER", neo4j_config.user)
    monkeypatch.setenv("NEO4J_PASSWORD", neo4j_config.password.get_secret_value())
    if neo4j_config.database:
        monkeypatch.setenv("NEO4J_DATABASE", neo4j_config.database)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # where resume files go
    return neo4j_config


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_push_then_pull_on_the_command_line_and_the_password_appears_nowhere(
    neo4j_env: Neo4jConfig, hpo_ear_dir: Path, hpo_ear: Snapshot, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    password = neo4j_env.password.get_secret_value()
    code, out, err = run(["neo4j", "push", str(hpo_ear_dir), "--batch-size", "500"], capsys)
    assert code == 0, err
    summary = " ".join(err.split())  # rich wraps long lines at the console width
    assert "pushed hpo-ear" in summary and f"{hpo_ear.edges.height:,} relationships" in summary
    assert "[:HAS_PHENOTYPE]" in summary and "relationships/s" in summary

    code, out2, err2 = run(["neo4j", "pull", "--out", str(tmp_path / "pulled"), "--page-size", "200"], capsys)
    assert code == 0, err2
    assert read_snapshot(tmp_path / "pulled").hash == hpo_ear.hash
    assert f"hash {hpo_ear.hash[:12]}" in " ".join(err2.split())

    template = "gene -gene_associated_with_phenotype-> phenotype <-has_phenotype- disease"
    code, out3, err3 = run(["sample", "--store", "neo4j", "--strategy", "pattern", "--pattern", template, "-n", "12",
                            "--seed", "5", "--out", str(tmp_path / "paths.parquet")], capsys)
    assert code == 0, err3
    paths = read_paths(tmp_path / "paths.parquet")
    assert paths.height == 12 and set(paths["pattern"]) == {template} and set(paths["snapshot"]) == {hpo_ear.hash}
    code, out4, err4 = run(["neo4j", "sample", "--strategy", "pattern", "--pattern", template, "-n", "12",
                            "--seed", "5", "--out", str(tmp_path / "again.parquet")], capsys)
    assert code == 0, err4
    assert read_paths(tmp_path / "again.parquet").equals(paths)

    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) > 5  # the pulled snapshot, the paths, the cache directory
    outputs = (out, err, out2, err2, out3, err3, out4, err4)
    for text in (*outputs, *(p.read_bytes().decode("utf-8", "replace") for p in written)):
        assert password not in text


def test_wrong_password_is_one_line_and_exit_code_2(
    neo4j_env: Neo4jConfig, hpo_ear_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    planted = "planted-Passw0rd-d41d8cd98f"
    monkeypatch.setenv("NEO4J_PASSWORD", planted)
    code, out, err = run(["neo4j", "push", str(hpo_ear_dir)], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error:") and "refused the login of user" in err
    assert planted not in out + err


def test_server_down_is_one_line_and_exit_code_2(
    neo4j_env: Neo4jConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NEO4J_URI", f"bolt://127.0.0.1:{free_port()}")
    code, out, err = run(["neo4j", "pull", "--out", str(tmp_path / "x")], capsys)
    assert code == 2 and err.count("\n") == 1 and "cannot reach Neo4j at bolt://127.0.0.1" in err
    assert neo4j_env.password.get_secret_value() not in err
    assert not (tmp_path / "x").exists()


def test_export_import_csv_prints_the_command(
    hpo_ear_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["neo4j", "export-import-csv", str(hpo_ear_dir), "--out", str(tmp_path / "csv"),
                          "--database", "kg"], capsys)
    assert code == 0, err
    assert out.startswith("neo4j-admin database import full") and out.rstrip().endswith("kg")
    assert out.rstrip() in (tmp_path / "csv" / "import.sh").read_text()
    assert "after-import.cypher" in "".join(err.split())


@pytest.mark.parametrize(("option", "value"), [("--unique-answer", None), ("--end-type", "disease"), ("-P", "tries=3")])
def test_sample_in_neo4j_refuses_options_cypher_cannot_honour(option: str, value: str | None, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    argv = ["sample", "--store", "neo4j", "-n", "5", "--out", str(tmp_path / "p.parquet"), option]
    code, _, err = run(argv + ([value] if value else []), capsys)
    assert code == 2 and f"--store neo4j does not take {option}" in err and "Traceback" not in err
    assert not (tmp_path / "p.parquet").exists()
