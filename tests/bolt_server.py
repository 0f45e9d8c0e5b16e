"""A real Bolt server for the Neo4j tests: ArcadeDB's server with its Neo4j Bolt plugin.

Neo4j itself cannot be installed here, so the tests talk Bolt to ArcadeDB (the
`arcadedb-embedded` wheel, bundled JRE). The server runs as a separate process
(this file run as a script) so a test can SIGKILL it mid-load and start it again
on the same root directory and ports. Databases are created over its HTTP API.

    python tests/bolt_server.py ROOT BOLT_PORT HTTP_PORT HTTPS_PORT   # password on stdin
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

USER = "root"  # ArcadeDB's administrator; the password is chosen by the test session
READY = "BOLT-SERVER-READY"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class BoltServer:
    root: Path
    password: str
    bolt_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    https_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"bolt://127.0.0.1:{self.bolt_port}"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def start(self, timeout: float = 180.0) -> None:
        """Start the server process and wait until Bolt accepts connections."""
        self.root.mkdir(parents=True, exist_ok=True)
        offset = self.log.stat().st_size if self.log.exists() else 0  # earlier runs' READY lines do not count
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, __file__, *map(str, (self.root, self.bolt_port, self.http_port, self.https_port))],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,  # ArcadeDB writes ./log relative to its working directory
            )
        assert self.process.stdin is not None
        self.process.stdin.write(self.password.encode() + b"\n")
        self.process.stdin.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ArcadeDB exited with {self.process.returncode}; see {self.log}")
            if READY in _read_from(self.log, offset) and _accepts(self.bolt_port):
                return
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"ArcadeDB did not start within {timeout:.0f}s; see {self.log}")

    def kill(self) -> None:
        """SIGKILL: the server dies mid-transaction, as in a crash or a lost machine."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)

    def create_database(self, name: str) -> None:
        self._command(f"create database {name}")

    def _command(self, command: str) -> None:
        token = base64.b64encode(f"{USER}:{self.password}".encode()).decode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}/api/v1/server",
            data=json.dumps({"command": command}).encode(),
            headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()


def _read_from(path: Path, offset: int) -> str:
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.read().decode(errors="replace")


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _serve(root: str, bolt_port: int, http_port: int, https_port: int) -> None:
    password = sys.stdin.readline().strip()  # not argv: the planted password must not show in `ps`
    from arcadedb_embedded import ArcadeDBServer

    server = ArcadeDBServer(
        root_path=root,
        root_password=password,
        config={
            "server_plugins": "Bolt:com.arcadedb.bolt.BoltProtocolPlugin",
            "bolt_port": bolt_port,
            "http_port": http_port,
            "server_httpsIncomingPort": https_port,
        },
        jvm_kwargs={"heap_size": "1g"},
    )
    server.start()
    print(READY, flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    server.stop()
    os._exit(0)  # the JVM's non-daemon threads would otherwise keep the process alive


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    _serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
