"""The `neo4j-admin database import full` files: headers the importer accepts, data that rebuilds the snapshot."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import polars as pl
import pytest

from kgsynth.errors import OutputError
from kgsynth.graph.snapshot import Snapshot, build_snapshot
from kgsynth.stores.neo4j import vocabulary_from_json
from kgsynth.stores.neo4j_csv import write_import_csv

pytest_plugins = ["conftest_neo4j"]

# neo4j-admin's header grammar: a property `name[:type]` (type may be an array `type[]`),
# or a special field `[name]:ID[(group)]`, `:START_ID[(group)]`, `:END_ID[(group)]`, `:LABEL`, `:TYPE`.
TYPES = "int|long|float|double|boolean|byte|short|char|string|point|date|localtime|time|localdatetime|datetime|duration"
FIELD = re.compile(rf"^(\w+(:({TYPES})(\[\])?)?|\w*:ID(\(\w+\))?|:START_ID(\(\w+\))?|:END_ID(\(\w+\))?|:LABEL|:TYPE)$")


def read_rows(header: Path, data: Path) -> tuple[list[str], list[list[str]]]:
    with open(header, newline="", encoding="utf-8") as handle:
        fields = next(csv.reader(handle))
    with open(data, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    return fields, rows


def test_import_files_have_the_headers_neo4j_admin_requires_and_rebuild_the_snapshot(
    hpo_eye: Snapshot, tmp_path: Path
) -> None:
    files = write_import_csv(hpo_eye, tmp_path / "import", database="kg")
    assert set(files.nodes) == {"Phenotype", "Disease", "Gene"}
    assert set(files.relationships) == {"IS_A", "HAS_PHENOTYPE", "GENE_ASSOCIATED_WITH_PHENOTYPE",
                                        "GENE_ASSOCIATED_WITH_DISEASE"}
    nodes, edges = [], []
    for label, (header, data) in files.nodes.items():
        fields, rows = read_rows(header, data)
        assert all(FIELD.match(f) for f in fields), fields
        assert fields[0] == "id:ID(Entity)" and "synonyms:string[]" in fields
        assert all(len(row) == len(fields) for row in rows)
        for row in rows:
            record = dict(zip(fields, row, strict=True))
            synonyms = record["synonyms:string[]"]
            nodes.append({"id": record["id:ID(Entity)"], "name": record["name"], "type": record["type"],
                          "source": record["source"], "source_id": record["source_id"],
                          "synonyms": synonyms.split(files.array_delimiter) if synonyms else []})
    for rel_type, (header, data) in files.relationships.items():
        fields, rows = read_rows(header, data)
        assert fields == [":START_ID(Entity)", ":END_ID(Entity)", "relation", "source"]
        edges += [{"src": s, "dst": d, "relation": r, "source": src} for s, d, r, src in rows]
        assert {r for _, _, r, _ in rows} == {r for r, t in _types(files).items() if t == rel_type}
    fields, rows = read_rows(*files.meta)
    assert all(FIELD.match(f) for f in fields) and fields[0] == "hash:ID(KgsynthSnapshot)"
    meta = dict(zip(fields, rows[0], strict=True))
    assert meta["hash:ID(KgsynthSnapshot)"] == hpo_eye.hash and meta["status"] == "complete"

    vocabulary = vocabulary_from_json(meta["vocabulary"])
    rebuilt = build_snapshot(pl.DataFrame(nodes), pl.DataFrame(edges), vocabulary=vocabulary, name="x", loader="csv")
    assert rebuilt.hash == hpo_eye.hash

    command = files.command("kg")
    assert command.startswith("neo4j-admin database import full") and command.rstrip().endswith(" kg")
    assert "--id-type=string" in command and f"--nodes=Entity:Phenotype={files.nodes['Phenotype'][0]}," in command
    assert f"--relationships=IS_A={files.relationships['IS_A'][0]},{files.relationships['IS_A'][1]}" in command
    assert "--multiline-fields" not in command  # HPO names have no line breaks
    assert (tmp_path / "import" / "import.sh").read_text().count("--relationships=") == 4
    assert "CREATE CONSTRAINT" in (tmp_path / "import" / "after-import.cypher").read_text()


def _types(files) -> dict[str, str]:
    fields, rows = read_rows(*files.meta)
    return json.loads(dict(zip(fields, rows[0], strict=True))["types"])


def test_awkward_values_survive_quoting_and_pick_a_free_array_delimiter(hpo_eye: Snapshot, tmp_path: Path) -> None:
    nodes = hpo_eye.nodes.head(3).with_columns(
        pl.Series("name", ['comma, "quoted"', "line\nbreak", ""]),
        pl.Series("synonyms", [["a;b", "c|d"], [], ["e"]]),
    )
    ids = nodes["id"].to_list()
    snapshot = build_snapshot(nodes, pl.DataFrame({"src": [], "dst": [], "relation": []}, schema={
        "src": pl.String, "dst": pl.String, "relation": pl.String}), vocabulary=hpo_eye.vocabulary, name="odd",
        loader="test")
    files = write_import_csv(snapshot, tmp_path / "odd")
    assert files.array_delimiter == "\x1f" and files.multiline
    assert "--array-delimiter=U+001F" in files.command() and "--multiline-fields=true" in files.command()
    header, data = files.nodes["Phenotype"]
    fields, rows = read_rows(header, data)
    by_id = {row[0]: dict(zip(fields, row, strict=True)) for row in rows}
    assert by_id[ids[0]]["name"] == 'comma, "quoted"' and by_id[ids[1]]["name"] == "line\nbreak"
    assert by_id[ids[0]]["synonyms:string[]"].split("\x1f") == ["a;b", "c|d"]


def test_a_directory_with_other_files_is_not_overwritten(hpo_eye: Snapshot, tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(OutputError, match="not a kgsynth Neo4j import folder"):
        write_import_csv(hpo_eye, tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "mine"
