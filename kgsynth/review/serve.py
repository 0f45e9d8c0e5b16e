"""Start the review app: bind the port first (a port in use is a clear error, not a
traceback from deep inside uvicorn), then serve on that socket."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kgsynth.errors import ConfigError
from kgsynth.review.app import TOKEN_ENV, Settings, create_app
from kgsynth.review.data import ReviewData, load_review_data
from kgsynth.review.store import ReviewStore, check_reviewer

DEFAULT_PORT = 8765


@dataclass
class Served:
    url: str
    data: ReviewData
    store: ReviewStore


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def token_for(host: str) -> str | None:
    """The token clients must show: required off loopback, honoured on loopback when set."""
    token = os.environ.get(TOKEN_ENV) or None
    if token is None and not is_loopback(host):
        raise ConfigError(
            f"--host {host} lets other machines reach the review app; set ${TOKEN_ENV} to a secret "
            "(e.g. `export KGSYNTH_REVIEW_TOKEN=$(python -c 'import secrets; print(secrets.token_urlsafe())')`) "
            "and give it to the reviewers, or leave out --host to listen on 127.0.0.1 only"
        )
    if token is not None and len(token) < 12:
        raise ConfigError(f"${TOKEN_ENV} is too short to be a secret: use at least 12 characters")
    return token


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (0: any free port), or a ConfigError saying why not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host}: not an address of this machine ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} on {host} is in use (another `kgsynth review`?); choose another with --port, or --port 0 for a free one"
            ) from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise ConfigError(f"port {port} on {host} needs privileges; choose a port above 1023 with --port") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ConfigError(f"--host {host}: not an address of this machine") from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def serve(
    run_dir: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    reviewer: str | None = None,
    sample: int | None = None,
    seed: int = 0,
    on_ready: Callable[[Served], None] | None = None,
) -> Served:
    """Serve the review app until interrupted (Ctrl-C). `on_ready` is called once it listens."""
    import uvicorn

    token = token_for(host)
    if reviewer is not None:
        reviewer = check_reviewer(reviewer)
    data = load_review_data(run_dir, sample=sample, seed=seed)
    store = ReviewStore.of_run(run_dir)
    sock = bind(host, port)
    served = Served(url=url_of(sock), data=data, store=store)
    app = create_app(data, store, Settings(reviewer=reviewer, token=token))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    if on_ready is not None:
        on_ready(served)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down on Ctrl-C, then raises it again for us
        pass
    finally:
        sock.close()
        store.close()
    return served
