"""The `kgsynth` command: one sub-command per arrow of the pipeline.

Thin by design: each module in this package parses options, calls the library and
prints a summary. Library imports happen inside the commands so `kgsynth --help`
and fast commands start quickly.
"""

from __future__ import annotations

import importlib
import sys

import typer

from kgsynth.errors import KgsynthError

app = typer.Typer(
    name="kgsynth",
    help="Turn a biomedical knowledge graph into verified reasoning training data.\n\n"
    "Example: kgsynth run configs/demo.yaml",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from kgsynth import __version__
        from kgsynth.graph.snapshot import FORMAT_VERSION

        typer.echo(f"kgsynth {__version__} (snapshot format {FORMAT_VERSION})")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_print_version, help="Print the version and the snapshot format version."
    ),
) -> None:
    """The root's own options; its help text is the app's `help` above."""

# Each module defines `register(app)`; one line per room keeps this file stable.
COMMAND_MODULES = [
    "kgsynth.cli.graph",  # load, info
    "kgsynth.cli.sample",  # shatter, sample
    "kgsynth.cli.run",  # run (the whole pipeline from a config file)
    "kgsynth.cli.generate",  # generate (paths → items)
    "kgsynth.cli.export",  # export, report
    "kgsynth.cli.verify",  # verify (items → accepted, rejected with reasons)
    "kgsynth.cli.difficulty",  # difficulty (accepted items → features, answering models, curriculum order)
    "kgsynth.cli.ground",  # ground (existing QA pairs → grounded, verified reasoning)
    "kgsynth.cli.neo4j",  # neo4j push, pull, export-import-csv
    "kgsynth.cli.review",  # review (expert review web app), review export
    "kgsynth.cli.llm_server",  # llm-server prepare, start, stop, status (llama.cpp + SmolLM2-135M)
]


def _register_all() -> None:
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: KgsynthError becomes one line on stderr and exit code 2."""
    _register_all()
    try:
        result = app(args=argv, standalone_mode=False)
    except KgsynthError as exc:
        from rich.markup import escape

        from kgsynth.progress import console

        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except _click_exceptions() as exc:  # usage errors: click formats them itself
        exc.show()
        sys.exit(exc.exit_code)
    if isinstance(result, int) and result:
        sys.exit(result)


def _click_exceptions():
    """Usage errors: click's, and those of the copy of click that typer >= 0.26 carries inside."""
    import click

    found = [click.exceptions.ClickException]
    try:
        from typer._click.exceptions import ClickException
    except ImportError:
        pass
    else:
        found.append(ClickException)
    return tuple(found)
