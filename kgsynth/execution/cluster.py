"""The Dask cluster a run uses: reaching a scheduler, or the settings of a local one.

Nothing here imports Dask or Prefect, so `kgsynth run` can refuse a dead address
before it starts Prefect, writes a stamp or creates the run directory.
"""

from __future__ import annotations

import socket

from kgsynth.errors import KgsynthError

CONNECT_TIMEOUT_S = 10.0  # a scheduler on the same network answers in well under a second

# Schemes of distributed's comm layer (distributed.comm.registry); a missing one means tcp.
SCHEMES = frozenset({"tcp", "tls", "ws", "wss", "ucx"})


class ExecutionError(KgsynthError, ConnectionError):
    """The Dask cluster or the Prefect API cannot be reached, or the cluster lost the work given to it."""


def split_address(address: str) -> tuple[str, str, int]:
    """`tcp://host:8786` (or `host:8786`) → (scheme, host, port); ValueError naming what is wrong."""
    scheme, sep, location = address.strip().partition("://")
    if not sep:
        scheme, location = "tcp", address.strip()
    scheme = scheme.lower()
    if scheme in {"http", "https"}:
        raise ValueError(
            f"{address!r} is a web address (the dashboard?); the scheduler's address looks like tcp://HOST:8786"
        )
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r} in {address!r}; expected one of {', '.join(sorted(SCHEMES))}")
    if location.startswith("["):  # [IPv6]:port
        host, _, rest = location[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = location.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in location:
        raise ValueError(f"expected SCHEME://HOST:PORT like tcp://10.0.0.5:8786, got {address!r}")
    return scheme, host, int(port)


def check_scheduler(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail at once, naming the address, when nothing listens there (before anything is written)."""
    scheme, host, port = split_address(address)
    if scheme == "ucx":
        return  # not a TCP socket: the client's own connection attempt reports it
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ExecutionError(
            f"execution.address {address}: no Dask scheduler reachable ({reason}); start one "
            f"(`dask scheduler`) and give its address, or set address: null to start a local cluster"
        ) from None


def api_problem(api_url: str, timeout: float = CONNECT_TIMEOUT_S) -> str | None:
    """Why the Prefect API at `api_url` does not answer from this machine, or None when it does.

    Run on every worker before a stage begins: a task on a worker reports its state there,
    and a worker on another machine cannot reach a server on this one's loopback address.
    """
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(api_url.rstrip("/") + "/health", timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None  # it answered (an API that wants a key for /health is still there)
    except OSError as exc:
        return str(getattr(exc, "reason", None) or exc)


def local_cluster_options(workers: int) -> dict[str, object]:
    """`distributed.LocalCluster` settings for `address: null`: one part at a time per worker process."""
    return {
        "n_workers": workers,
        "threads_per_worker": 1,  # `workers` parts at once, each in its own process
        "processes": True,
        # A stage that runs in one piece needs the memory it needs in process; dask's default
        # share of RAM per worker would have the nanny kill it instead.
        "memory_limit": 0,
        "dashboard_address": ":0",  # a free port: never clashes with another cluster on 8787
        "env": {
            "TTY_COMPATIBLE": "0",  # workers share the terminal: no progress bars from them
            "DASK_LOGGING__DISTRIBUTED": "warning",  # the workers' start-up chatter
        },
    }
