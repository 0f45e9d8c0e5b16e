"""Versioned prompt files: `prompts/<name>.v<N>.md`, one `## section` per message or template.

A prompt is never edited in place once items were made with it: a new wording is a
new version file. Each item records the prompt's name and the sha256 of its text,
so items made with different wording never share an id or a cache entry.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

from kgsynth.errors import ConfigError

PROMPT_DIR = Path(__file__).resolve().parent / "prompts"
_SECTION = re.compile(r"^## (\w+)[ \t]*$", re.M)


@dataclass(frozen=True)
class Prompt:
    name: str
    hash: str  # sha256 of the file's text
    sections: dict[str, Template]

    def render(self, section: str, **values: object) -> str:
        try:
            return self.sections[section].substitute(values)
        except KeyError as exc:
            raise ConfigError(f"prompt {self.name}: section '{section}' needs ${exc.args[0]}") from None


@functools.cache
def load_prompt(name: str) -> Prompt:
    """A bundled prompt by name (`thinking_mcq.v1`) or a path to a prompt file."""
    path = Path(name) if name.endswith(".md") else PROMPT_DIR / f"{name}.md"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in PROMPT_DIR.glob("*.md")))
        raise ConfigError(f"no prompt '{name}'; bundled: {known}")
    text = path.read_text(encoding="utf-8")
    parts = _SECTION.split(text)
    sections = {parts[i]: Template(parts[i + 1].strip()) for i in range(1, len(parts) - 1, 2)}
    if not sections:
        raise ConfigError(f"{path}: a prompt file needs '## section' headings (e.g. ## system, ## user)")
    return Prompt(name=path.stem, hash=hashlib.sha256(text.encode()).hexdigest(), sections=sections)
