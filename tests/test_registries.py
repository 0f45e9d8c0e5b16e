"""Every component registered by name has a test of its own (DESIGN.md, "Shapes to follow").

A component counts as tested when a test function is named `test_<kind>_<name>_…`
or a test module `test_<kind>s_<name>.py` exists (names with '-' use '_').
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

TESTS = Path(__file__).parent

# kind, module holding the registry, registry name, function that imports every component
REGISTRIES = [
    ("loader", "kgsynth.loaders", "LOADERS", "kgsynth.loaders:_import_all"),
    ("sampler", "kgsynth.sample", "SAMPLERS", "kgsynth.sample:import_strategies"),
    ("writer", "kgsynth.llm.writers", "WRITERS", None),
    ("kind", "kgsynth.generate.kinds", "ITEM_KINDS", None),
    ("check", "kgsynth.verify.checks", "CHECKS", "kgsynth.verify:load_checks"),
    ("rule", "kgsynth.prune.rules", "RULES", None),
    ("store", "kgsynth.stores", "STORES", None),
]


def _test_names() -> tuple[set[str], set[str]]:
    functions: set[str] = set()
    for path in TESTS.glob("test_*.py"):
        functions.update(re.findall(r"^(?:async )?def (test_\w+)", path.read_text(encoding="utf-8"), re.MULTILINE))
    return functions, {p.stem for p in TESTS.glob("test_*.py")}


@pytest.mark.parametrize(("kind", "module", "attribute", "loader"), REGISTRIES, ids=[r[0] for r in REGISTRIES])
def test_every_registered_component_has_a_test_of_its_own(kind: str, module: str, attribute: str, loader) -> None:
    if loader:
        loader_module, function = loader.split(":")
        getattr(importlib.import_module(loader_module), function)()
    registry = getattr(importlib.import_module(module), attribute)
    names = registry.names()
    assert names, f"the {kind} registry is empty: are its modules imported?"
    functions, modules = _test_names()
    untested = []
    for name in names:
        stem = name.replace("-", "_")
        if f"test_{kind}s_{stem}" in modules:
            continue
        if not any(f.startswith(f"test_{kind}_{stem}_") or f == f"test_{kind}_{stem}" for f in functions):
            untested.append(name)
    assert not untested, f"registered {kind}s without a test of their own (test_{kind}_<name>_…): {untested}"
