"""The run configuration: validation messages name file, line and field; hashes track what matters."""

from __future__ import annotations

from pathlib import Path

import pytest

from kgsynth.config import RunConfig, config_hash, load_config, parse_hops
from kgsynth.errors import ConfigError, SourceNotFoundError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_demo_config_is_valid_and_uses_the_template_writer() -> None:
    config = load_config(REPO / "configs" / "demo.yaml")
    assert config.source.format == "hpo"
    assert config.generate.writer == "template"
    assert config.neo4j is None and config.publish is None


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_is_valid(path: Path) -> None:
    config = load_config(path)
    assert config.name and config.source.format


def test_readme_quick_start_is_one_line_running_the_demo() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Quick start", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    assert block.strip().splitlines() == ["pip install -e . && kgsynth run configs/demo.yaml"]


def test_bad_hops_names_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "name: demo\nsource:\n  format: hpo\nsample:\n  n: 10\n  hops: x\n", "demo.yaml")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}, line 6: sample.hops: expected 'MIN-MAX' like 2-4, got 'x'"


@pytest.mark.parametrize(("value", "expected"), [(3, (3, 3)), ("2-4", (2, 4)), (" 1 - 5 ", (1, 5)), ([2, 3], (2, 3))])
def test_hops_forms(value: object, expected: tuple[int, int]) -> None:
    assert parse_hops(value) == expected


@pytest.mark.parametrize("value", ["4-2", "0-3", "two", True, [1, 2, 3]])
def test_bad_hops(value: object) -> None:
    with pytest.raises(ValueError):
        parse_hops(value)


def test_unknown_field_lists_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "name: demo\nsource: {format: hpo}\ngenerate:\n  concurency: 3\n")
    with pytest.raises(
        ConfigError, match=r"line 4: generate.concurency: unknown field; known fields here: .*concurrency"
    ):
        load_config(path)


def test_min_options_above_options_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "name: demo\nsource: {format: hpo}\ngenerate:\n  options: 3\n  min_options: 4\n")
    with pytest.raises(ConfigError, match=r"generate: .*min_options \(4\) cannot exceed options \(3\)"):
        load_config(path)
    assert load_config(write(tmp_path, "name: demo\nsource: {format: hpo}\ngenerate: {min_options: 2}\n")).generate.min_options == 2


def test_toml_type_error_quotes_the_value(tmp_path: Path) -> None:
    path = write(tmp_path, 'name = "demo"\n[source]\nformat = "hpo"\n[sample]\nn = "many"\n', "run.toml")
    with pytest.raises(ConfigError, match=r"run.toml: sample.n: .*valid integer.*got 'many'"):
        load_config(path)


def test_missing_source_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"source: required field is missing"):
        load_config(write(tmp_path, "name: demo\n"))


def test_secrets_are_refused_and_never_echoed(tmp_path: Path) -> None:
    path = write(
        tmp_path, "name: demo\nsource: {format: hpo}\nneo4j:\n  uri: bolt://localhost:7687\n  password: hunter2\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "line 5: neo4j.password" in str(caught.value) and "NEO4J_PASSWORD" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_password_inside_uri_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "name: demo\nsource: {format: hpo}\nneo4j: {uri: 'bolt://neo4j:hunter2@db:7687'}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "neo4j.uri" in str(caught.value) and "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    "section", ["generate: {writer: openai, model: m, base_url: 'https://me:hunter2@llm.example/v1'}",
                "verify: {llm_judge: {model: m, base_url: 'http://me:hunter2@localhost:8000/v1'}}"],
)  # fmt: skip
def test_password_inside_a_model_url_is_refused(tmp_path: Path, section: str) -> None:
    with pytest.raises(ConfigError, match="base_url: the URL holds a password") as caught:
        load_config(write(tmp_path, f"name: demo\nsource: {{format: hpo}}\n{section}\n"))
    assert "hunter2" not in str(caught.value)


def test_llm_writer_needs_a_model(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="generate: writer 'openai' needs a model"):
        load_config(write(tmp_path, "name: demo\nsource: {format: hpo}\ngenerate: {writer: openai}\n"))


def test_neo4j_sampling_needs_a_neo4j_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sample.source is 'neo4j' but there is no neo4j section"):
        load_config(write(tmp_path, "name: demo\nsource: {format: hpo}\nsample: {source: neo4j}\n"))


def test_ratios_must_sum_to_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"export.ratios: expected three shares"):
        load_config(write(tmp_path, "name: demo\nsource: {format: hpo}\nexport: {ratios: [0.8, 0.3, 0.1]}\n"))
    config = load_config(
        write(tmp_path, "name: demo\nsource: {format: hpo}\nexport: {ratios: {train: 0.5, test: 0.5}}\n")
    )
    assert config.export.ratios == (0.5, 0.0, 0.5)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"run.yaml, line 3: not valid YAML"):
        load_config(write(tmp_path, "name: demo\nsource:\n  format: hpo: x\n"))


def test_missing_file_and_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="use .yaml, .yml or .toml"):
        load_config(write(tmp_path, "{}", "run.json"))


def test_source_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    path = write(tmp_path / "sub", "name: demo\nsource: {format: hpo, paths: [release/hp.obo]}\n")
    assert load_config(path).source.paths == [tmp_path / "sub" / "release" / "hp.obo"]


def test_config_hash_ignores_concurrency_but_not_parameters() -> None:
    base = RunConfig.model_validate({"name": "a", "source": {"format": "hpo"}})
    faster = RunConfig.model_validate({"name": "b", "source": {"format": "hpo"}, "generate": {"concurrency": 16}})
    other = RunConfig.model_validate({"name": "a", "source": {"format": "hpo"}, "sample": {"seed": 1}})
    assert config_hash(base) == config_hash(faster)
    assert config_hash(base) != config_hash(other)
