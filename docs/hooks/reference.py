"""MkDocs hook: reference pages generated from the code, so nothing is written twice.

A page asks for generated text with a marker on a line of its own:

    <!-- generated: config-reference -->     every field of RunConfig and its sections
    <!-- generated: reason-codes -->         every verification reason code, its checks and stage
    <!-- generated: cli kgsynth load -->     one command's usage, description and options

The marker is replaced when the site is built (`on_page_markdown`), from
`kgsynth.config.RunConfig`, `kgsynth.verify.codes.REASON_CODES` with the checks
registry, and the `kgsynth` typer app. tests/test_docs.py imports this module too.
"""

from __future__ import annotations

import enum
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

MARKER = re.compile(r"^<!-- generated: (?P<what>[a-z-]+)(?: (?P<arg>[^>]*?))? -->$", re.MULTILINE)


# --- the run configuration -------------------------------------------------------------


class ConfigField(NamedTuple):
    path: str  # dotted, as written in a config file: sample.shard_size; list items as models[]
    model: type[BaseModel]
    name: str
    type: str
    default: str
    description: str


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation holds (`X | None`, `list[X]`, `dict[str, X]`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += _models_in(arg)
    return found


def section_models() -> list[type[BaseModel]]:
    """RunConfig and every section model reachable from it, in the order a config file lists them."""
    from kgsynth.config import RunConfig, Section

    order: list[type[BaseModel]] = []

    def visit(model: type[BaseModel]) -> None:
        if model in order:
            return
        order.append(model)
        for field in model.model_fields.values():
            for nested in _models_in(field.annotation):
                if nested is RunConfig or issubclass(nested, Section):
                    visit(nested)

    visit(RunConfig)
    return order


def iter_config_fields() -> Iterator[ConfigField]:
    """Every field of RunConfig and, recursively, of its sections, with its dotted path."""
    from kgsynth.config import RunConfig, Section

    def walk(model: type[BaseModel], prefix: str) -> Iterator[ConfigField]:
        for name, field in model.model_fields.items():
            path = f"{prefix}{name}"
            yield ConfigField(
                path=path,
                model=model,
                name=name,
                type=type_name(field.annotation),
                default=_default(field),
                description=(field.description or "").strip(),
            )
            for nested in _models_in(field.annotation):
                if issubclass(nested, Section):
                    many = typing.get_origin(field.annotation) is list or any(
                        typing.get_origin(a) is list for a in typing.get_args(field.annotation)
                    )
                    yield from walk(nested, f"{path}[]." if many else f"{path}.")

    yield from walk(RunConfig, "")


def type_name(annotation: Any) -> str:
    """A type as a reader of a YAML file thinks of it: `list of str`, `mcq | open`, `int or null`."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if origin is Literal:
        return " | ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        parts = [type_name(a) for a in args if a is not type(None)]
        text = " or ".join(parts)
        return f"{text} or null" if type(None) in args else text
    if origin is list:
        return f"list of {type_name(args[0])}"
    if origin is tuple:
        return f"[{', '.join(type_name(a) for a in args)}]"
    if origin is dict:
        return f"mapping {type_name(args[0])} → {type_name(args[1])}"
    if annotation is Any:
        return "any"
    if isinstance(annotation, type):
        if issubclass(annotation, Path):
            return "path"
        if issubclass(annotation, BaseModel):
            return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
        if issubclass(annotation, enum.Enum):
            return " | ".join(str(m.value) for m in annotation)
        return annotation.__name__
    return "any" if annotation is Any else str(annotation).replace("typing.", "")


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value = field.default_factory()
        if isinstance(value, BaseModel):
            return "(the section's defaults)"
    else:
        value = field.default
    if value is PydanticUndefined:
        return "required"
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return f"`{_yaml(value)}`"


def _yaml(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) >= 1 else str(value)
    return str(value)


def _constraints(field: Any) -> str:
    words = []
    for item in field.metadata:
        for attr, sign in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤"), ("min_length", "at least")):
            value = getattr(item, attr, None)
            if value is not None:
                words.append(f"{sign} {value}" if attr != "min_length" else f"at least {value} item(s)")
    return "; ".join(words)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def config_reference() -> str:
    """Markdown: one table per section model, every field with type, default and description."""
    from kgsynth.config import RunConfig

    fields_by_model: dict[type[BaseModel], list[ConfigField]] = {}
    paths_by_model: dict[type[BaseModel], set[str]] = {}
    for field in iter_config_fields():
        fields_by_model.setdefault(field.model, [])
        if all(f.name != field.name for f in fields_by_model[field.model]):
            fields_by_model[field.model].append(field)
        paths_by_model.setdefault(field.model, set()).add(field.path.rsplit(".", 1)[0] if "." in field.path else "")
    out: list[str] = []
    for model in section_models():
        where = sorted(paths_by_model.get(model, {""}))
        title = "the top level" if where == [""] else ", ".join(f"`{w}`" for w in where)
        out.append(f"## {model.__name__}")
        out.append("")
        doc = (model.__doc__ or "").strip()
        if doc and model is not RunConfig and not doc.startswith("A config section."):
            out += [doc.splitlines()[0], ""]
        out.append(f"Fields at {title}.")
        out.append("")
        out.append("| field | type | default | description |")
        out.append("|---|---|---|---|")
        for field in fields_by_model.get(model, []):
            info = model.model_fields[field.name]
            description = field.description
            if limits := _constraints(info):
                description = f"{description} ({limits})" if description else limits
            out.append(f"| `{field.name}` | {_cell(field.type)} | {_cell(field.default)} | {_cell(description)} |")
        out.append("")
    out += _value_models()
    return "\n".join(out)


def _value_models() -> list[str]:
    """Models used as values inside sections (a price) that are not sections themselves."""
    from kgsynth.config import Section

    seen: list[type[BaseModel]] = []
    for model in section_models():
        for field in model.model_fields.values():
            for nested in _models_in(field.annotation):
                if not issubclass(nested, Section) and nested.__module__ != "kgsynth.config" and nested not in seen:
                    seen.append(nested)
    out: list[str] = []
    for model in seen:
        out += [f"## {model.__name__}", "", (model.__doc__ or "").strip().splitlines()[0], ""]
        out += ["| field | type | default | description |", "|---|---|---|---|"]
        for name, info in model.model_fields.items():
            out.append(
                f"| `{name}` | {_cell(type_name(info.annotation))} | {_cell(_default(info))} | "
                f"{_cell((info.description or '').strip() or _constraints(info))} |"
            )
        out.append("")
    return out


# --- verification reason codes ------------------------------------------------------------


def reason_code_rows() -> list[tuple[str, str, list[str], str]]:
    """(code, stage, checks that give it, description) for every code in REASON_CODES, in its order."""
    from kgsynth.verify.checks import CHECKS, STAGES, load_checks
    from kgsynth.verify.codes import REASON_CODES

    load_checks()
    checks_by_code: dict[str, list[tuple[str, str]]] = {}
    for name in CHECKS:
        check = CHECKS.get(name)
        for code in check.codes:
            checks_by_code.setdefault(code, []).append((name, check.stage))
    rows = []
    for code, description in REASON_CODES.items():
        found = checks_by_code.get(code, [])
        stages = sorted({stage for _, stage in found}, key=STAGES.index)
        rows.append((code, ", ".join(stages), [name for name, _ in found], description))
    return rows


def reason_codes() -> str:
    lines = ["| code | stage | checks | what it means |", "|---|---|---|---|"]
    for code, stage, checks, description in reason_code_rows():
        names = ", ".join(f"`{c}`" for c in checks)
        lines.append(f"| `{code}` | {stage} | {names} | {_cell(description)} |")
    return "\n".join(lines)


# --- the command line ------------------------------------------------------------------------


def cli_command(words: list[str]) -> Any:
    """The click command for `kgsynth WORD…` (typer builds it from the app)."""
    import typer

    from kgsynth.cli import _register_all, app

    if not getattr(cli_command, "_registered", False):
        _register_all()
        cli_command._registered = True  # type: ignore[attr-defined]
    command = typer.main.get_command(app)
    for word in words[1:]:
        command = command.commands[word]
    return command


def iter_cli_commands() -> Iterator[tuple[list[str], Any]]:
    """(words, command) for `kgsynth` and every sub-command and group below it."""

    def walk(words: list[str], command: Any) -> Iterator[tuple[list[str], Any]]:
        yield words, command
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk([*words, name], sub)

    yield from walk(["kgsynth"], cli_command(["kgsynth"]))


def cli_reference(words: list[str]) -> str:
    """Markdown for one command: usage, its help text, and a table of its arguments and options."""
    command = cli_command(words)
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    usage = " ".join([*words, "[OPTIONS]", *(p.name.upper() + ("…" if p.nargs == -1 else "") for p in arguments)])
    out = ["```text", usage, "```", ""]
    help_text = (command.help or "").strip()
    example = [line for line in help_text.splitlines() if line.startswith("Example:")]
    prose = "\n".join(line for line in help_text.splitlines() if not line.startswith("Example:")).strip()
    out += [prose, ""]
    if example:
        out += ["```bash", *(line.removeprefix("Example:").strip() for line in example), "```", ""]
    if getattr(command, "commands", None):
        out += ["| command | what it does |", "|---|---|"]
        for name, sub in sorted(command.commands.items()):
            out.append(f"| `{' '.join([*words, name])}` | {_cell((sub.help or '').strip().splitlines()[0])} |")
        return "\n".join(out)
    out += ["| argument / option | default | what it does |", "|---|---|---|"]
    for param in command.params:
        if param.hidden or param.name in ("help",):
            continue
        if param.param_type_name == "argument":
            name = f"`{param.name.upper()}`" + (" (required)" if param.required else "")
        else:
            name = " / ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
            if param.multiple and "repeatable" not in (param.help or ""):
                name += " (repeatable)"
            if param.required:
                name += " (required)"
        default = param.default
        shown = "" if default is None or param.required or default == [] else f"`{_yaml(default)}`"
        if getattr(param, "is_flag", False) and not param.secondary_opts:
            shown = "off" if not default else "on"
        out.append(f"| {name} | {shown} | {_cell(param.help or '')} |")
    return "\n".join(out)


# --- the hook ----------------------------------------------------------------------------------


def render(what: str, arg: str | None) -> str:
    if what == "config-reference":
        return config_reference()
    if what == "reason-codes":
        return reason_codes()
    if what == "cli" and arg:
        return cli_reference(arg.split())
    raise ValueError(f"unknown generated block {what!r} {arg or ''}")


def _pass_markdown_to_highlight() -> None:
    """mkdocstrings 0.30 builds pymdownx's `Highlight` without the Markdown instance that
    pymdown-extensions 13 requires (a TypeError on the first API page); hand it the one
    mkdocstrings already holds. Does nothing when the installed versions agree."""
    import inspect

    from mkdocstrings._internal.handlers import rendering
    from pymdownx.highlight import Highlight

    if "md" not in inspect.signature(Highlight.__init__).parameters or getattr(
        rendering.Highlighter, "_markdown_passed", False
    ):
        return
    original, base = rendering.Highlighter.__init__, Highlight.__init__

    def init(self: Any, md: Any) -> None:
        Highlight.__init__ = lambda inner, **options: base(inner, md, **options)  # type: ignore[method-assign]
        try:
            original(self, md)
        finally:
            Highlight.__init__ = base  # type: ignore[method-assign]

    rendering.Highlighter.__init__ = init  # type: ignore[method-assign]
    rendering.Highlighter._markdown_passed = True  # type: ignore[attr-defined]


def on_config(config: Any) -> Any:
    _pass_markdown_to_highlight()
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return MARKER.sub(lambda m: render(m["what"], m["arg"]), markdown)
