"""The documentation: the site builds strictly, its generated pages are complete, the
README stays the front door, and every command's --help shows an example."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]


def _reference_hook():
    """docs/hooks/reference.py, the module mkdocs runs to generate the reference pages."""
    name = "kgsynth_docs_reference"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / "hooks" / "reference.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
        env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return out


def test_site_builds_strictly_with_no_marker_left(site):
    pages = list(site.rglob("*.html"))
    assert len(pages) > 30
    left = [p.relative_to(site) for p in pages if "<!-- generated:" in p.read_text(encoding="utf-8")]
    assert not left, f"generated blocks not replaced in {left}"


def test_config_reference_lists_every_field(site):
    hook = _reference_hook()
    html = (site / "reference" / "config" / "index.html").read_text(encoding="utf-8")
    fields = list(hook.iter_config_fields())
    assert len(fields) > 80
    for model in hook.section_models():
        assert f'id="{model.__name__.lower()}"' in html, model.__name__
    for field in fields:
        section = html.split(f'id="{field.model.__name__.lower()}"', 1)[1].split("<h2", 1)[0]
        assert f"<code>{field.name}</code>" in section, field.path
        assert field.description.split()[0] in section, field.path


def test_reason_code_table_lists_every_code(site):
    from kgsynth.verify.codes import REASON_CODES

    html = (site / "reference" / "reason-codes" / "index.html").read_text(encoding="utf-8")
    for code, description in REASON_CODES.items():
        row = html.split(f"<td><code>{code}</code></td>", 1)
        assert len(row) == 2, code
        assert description.split()[-1] in row[1].split("</tr>", 1)[0], code


def test_api_pages_render_docstrings(site):
    html = (site / "api" / "verify" / "index.html").read_text(encoding="utf-8")
    assert "verify_items" in html and "write_verified" in html


def test_every_config_field_has_a_description():
    fields = list(_reference_hook().iter_config_fields())
    paths = {f.path for f in fields}
    assert {"name", "sample.shard_size", "verify.llm_judge.model", "difficulty.models[].model"} <= paths
    missing = [f.path for f in fields if not f.description]
    assert not missing, f"config fields without a description: {missing}"


def test_every_reason_code_has_a_description_and_every_check_code_is_listed():
    from kgsynth.verify.checks import CHECKS, load_checks
    from kgsynth.verify.codes import REASON_CODES

    load_checks()
    assert not [code for code, text in REASON_CODES.items() if not text.strip()]
    declared = {code for name in CHECKS for code in CHECKS.get(name).codes}
    assert declared - set(REASON_CODES) == set()
    rows = _reference_hook().reason_code_rows()
    assert [r[0] for r in rows] == list(REASON_CODES)
    assert all(r[1] and r[2] for r in rows if r[0] in declared)


def _block_under(readme: str, heading: str) -> str:
    """The first ```bash block under a heading, as .ci/run's awk extracts it."""
    after = readme.split(f"\n{heading}\n", 1)[1]
    match = re.search(r"^```bash\n(.*?)^```", after, re.S | re.M)
    return match[1] if match else ""


def test_readme_is_short_and_keeps_its_two_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    quick = _block_under(readme, "## Quick start")
    assert quick.strip() == "pip install -e . && kgsynth run configs/demo.yaml"
    tests = _block_under(readme, "## Tests")
    assert "python -m pytest -q" in tests and 'pip install -e ".[test]"' in tests
    ci = subprocess.run(
        ["awk", r'/^## Tests/{s=1;next} s&&/^```bash/{b=1;next} b&&/^```/{exit} b{print}', "README.md"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert ci.stdout.strip() and ci.stdout == tests
    assert "awk '/^## Tests/{s=1;next} s&&/^```bash/{b=1;next} b&&/^```/{exit} b{print}' README.md" in (
        ROOT / ".ci" / "run"
    ).read_text(encoding="utf-8")
    # the pasted pruning report's own headings are not README sections
    assert not re.search(r"^#+ (Before and after|Removed nodes|Hub pruning of)", readme, re.M)


def _commands():
    return [words for words, _ in _reference_hook().iter_cli_commands()]


@pytest.mark.parametrize("words", _commands(), ids=lambda w: " ".join(w))
def test_every_command_help_has_one_example(words):
    from kgsynth.cli import app

    _reference_hook().cli_command(words)  # registers the commands once
    result = CliRunner().invoke(app, [*words[1:], "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert result.exit_code == 0, result.output
    examples = [line.strip() for line in result.output.splitlines() if line.strip().startswith("Example:")]
    assert len(examples) == 1, result.output
    assert examples[0].removeprefix("Example:").strip().startswith("kgsynth")


def test_version_prints_package_and_snapshot_format():
    import kgsynth
    from kgsynth.graph.snapshot import FORMAT_VERSION

    assert kgsynth.__version__ == importlib.metadata.version("kgsynth")
    result = subprocess.run(["kgsynth", "--version"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"kgsynth {kgsynth.__version__} (snapshot format {FORMAT_VERSION})"
