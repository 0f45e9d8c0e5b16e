"""`kgsynth load` and `kgsynth info`: summaries, -O options, one-line errors with exit code 2,
and an existing snapshot left alone by a failed load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kgsynth.cli import main

DATA = Path(__file__).parent / "data"


def _run(capsys, *args: str) -> tuple[int, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exit:
        code = exit.code
    return code, capsys.readouterr().err


def test_load_then_info(tmp_path, capsys):
    out = tmp_path / "snap"
    code, err = _run(capsys, "load", "--format", "primekg", str(DATA / "primekg" / "kg.csv"), "--out", str(out))
    assert code == 0
    assert "loaded primekg: 36 nodes, 130 edges, 10 node types, 30 relations" in err
    assert "skipped 130: kg.csv: rows repeating a relationship" in err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["edges"] == 130 and manifest["loader"] == "primekg"
    code, err = _run(capsys, "info", str(out))
    assert code == 0 and "36 nodes, 130 edges" in err and "anatomy_protein_present" in err


def test_loader_options_vocabulary_and_fallback_flags(tmp_path, capsys):
    code, err = _run(
        capsys, "load", "-f", "umls", str(DATA / "umls"), "-o", str(tmp_path / "u"),
        "-O", "languages=ENG,FRE", "-O", "drop_suppressed=false",
    )  # fmt: skip
    assert code == 0
    manifest = json.loads((tmp_path / "u" / "manifest.json").read_text())
    assert manifest["options"]["languages"] == ["ENG", "FRE"] and manifest["options"]["drop_suppressed"] is False
    assert manifest["counts"]["nodes"] == 7

    edges = tmp_path / "e.txt"
    edges.write_text("a,binds,b\nx,binds,y\n")
    args = ["load", "-f", "edges", str(edges), "-o", str(tmp_path / "e"), "-O", "separator=,", "-O", "head_id=a"]
    args += ["-O", "relation=binds", "-O", "tail_id=b"]
    code, err = _run(capsys, *args)
    assert code == 2 and "unknown relation(s) 'binds'" in err
    code, err = _run(capsys, *args, "--allow-unknown-relations")
    assert code == 0 and "1 relations" in err


def test_bad_input_is_one_line_exit_two_and_keeps_the_old_snapshot(tmp_path, capsys):
    out = tmp_path / "snap"
    assert _run(capsys, "load", "-f", "primekg", str(DATA / "primekg" / "kg.csv"), "-o", str(out))[0] == 0
    before = (out / "manifest.json").read_bytes()
    text = (DATA / "primekg" / "kg.csv").read_text(encoding="utf-8")
    cut = tmp_path / "kg.csv"
    cut.write_text(text[:-30], encoding="utf-8")
    code, err = _run(capsys, "load", "-f", "primekg", str(cut), "-o", str(out))
    assert code == 2
    assert err.startswith(f"error: {cut}, line {text.count(chr(10))}, field ")
    assert "truncated" in err and "Traceback" not in err
    assert (out / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kg.csv", "snap"]

    code, err = _run(capsys, "load", "-f", "primekg", str(DATA / "primekg" / "kg.csv"), "-O", "colour=blue")
    assert code == 2 and "unknown option(s) colour for loader 'primekg'" in err
    code, err = _run(capsys, "load", "-f", "primekg", str(DATA / "primekg" / "kg.csv"), "-O", "colour")
    assert code == 2 and "--option expects KEY=VALUE" in err
    code, err = _run(capsys, "load", "-f", "rdf", str(tmp_path / "absent.ttl"), "-o", str(tmp_path / "r"))
    assert code == 2 and "absent.ttl: no such file" in err
    assert not (tmp_path / "r").exists()


def test_the_installed_command_exits_two(tmp_path):
    bad = tmp_path / "kg.csv"
    bad.write_text("relation\tdisplay_relation\tx_index\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-c", "from kgsynth.cli import main; main()", "load", "-f", "primekg", str(bad)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 2
    assert "line 1, field 'relation'" in result.stderr and "is the file tab-separated?" in result.stderr
    assert not (tmp_path / "snapshot").exists()


@pytest.mark.parametrize("value,parsed", [("a,b", ["a", "b"]), ("true", True), (",", ","), ("", ""), ("x", "x")])
def test_option_values(value, parsed):
    from kgsynth.cli.graph import _parse_options

    assert _parse_options([f"k={value}"]) == {"k": parsed}
