"""Publishing through a real `push_to_hub` to the local Hub stand-in, and reading it back.

`huggingface_hub` and `datasets` read HF_ENDPOINT and HF_HUB_DISABLE_XET when they
are imported, so the push (`kgsynth export --push`) and the read-back
(`load_dataset(repo_id, config)`) run in child processes with those variables set,
as a user's shell would have them.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import datasets
import httpx
import pytest
from hub_server import LocalHubServer
from test_export_rundir import export_run  # noqa: F401  (session fixture)

from kgsynth.errors import PublishError
from kgsynth.export import push_dataset

REPO = "tester/hpo-demo"
CONFIGS = ("default", "sft", "mcq")


@pytest.fixture()
def hub():
    with LocalHubServer(token=f"hf_test_{secrets.token_hex(12)}") as server:
        yield server


def _env(hub: LocalHubServer, home: Path, token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env |= {
        "HF_ENDPOINT": hub.url,
        "HF_TOKEN": token,
        "HF_HUB_DISABLE_XET": "1",
        "HF_HOME": str(home),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    return env


def _kgsynth(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from kgsynth.cli import main; main()", *args],
        env=env, capture_output=True, text=True, timeout=300,
    )


_LOAD_BACK = """
import sys
from datasets import load_dataset
repo, out = sys.argv[1], sys.argv[2]
for config in sys.argv[3:]:
    load_dataset(repo, config).save_to_disk(f"{out}/{config}")
"""


def test_export_push_and_load_back_from_the_hub(hub: LocalHubServer, export_run: Path, tmp_path: Path) -> None:  # noqa: F811
    env = _env(hub, tmp_path / "hf", hub.state.token)
    out = tmp_path / "dataset"
    pushed = _kgsynth(["export", str(export_run), "--out", str(out), "--push", REPO, "--private"], env)
    assert pushed.returncode == 0, pushed.stderr
    assert f"{hub.url}/datasets/{REPO}" in pushed.stderr
    assert hub.state.token not in pushed.stdout + pushed.stderr

    repo = hub.state.repos[("dataset", REPO)]
    assert repo.private is True
    local_parquet = sorted(str(p.relative_to(out)) for p in (out / "data").rglob("*.parquet"))
    assert hub.files(REPO) == sorted([".gitattributes", "README.md", *local_parquet])
    assert hub.file_text(REPO, "README.md") == (out / "README.md").read_text(encoding="utf-8")
    calls = {(method, path.split("/")[-1] if "lfs" in path else path) for method, path, _ in hub.state.log}
    assert ("POST", "batch") in calls and ("POST", "verify") in calls  # plain-HTTP LFS, no xet
    assert any(m == "PUT" and p.startswith("/lfs-upload/") for m, p, _ in hub.state.log)

    loaded = tmp_path / "loaded"
    back = subprocess.run([sys.executable, "-c", _LOAD_BACK, REPO, str(loaded), *CONFIGS],
                          env=env, capture_output=True, text=True, timeout=300)
    assert back.returncode == 0, back.stderr
    for config in CONFIGS:
        expected = datasets.load_from_disk(str(out / "disk" / config))
        actual = datasets.load_from_disk(str(loaded / config))
        assert set(actual) == set(expected)
        for split in expected:
            assert actual[split].features == expected[split].features
            assert actual[split].to_list() == expected[split].to_list()
    assert [m["role"] for m in datasets.load_from_disk(str(loaded / "sft"))["train"][0]["messages"]] == [
        "user", "assistant"]

    stored = b"\n".join(hub.state.stored_bytes())
    assert hub.state.token.encode() not in stored
    for path in out.rglob("*"):
        if path.is_file():
            assert hub.state.token.encode() not in path.read_bytes(), path

    # A second export with another seed updates the repository in place.
    commits = len(repo.commits)
    again = _kgsynth(["export", str(export_run), "--out", str(out), "--push", REPO, "--seed", "1", "-f", "parquet"], env)
    assert again.returncode == 0, again.stderr
    assert len(repo.commits) > commits
    assert hub.file_text(REPO, "README.md") == (out / "README.md").read_text(encoding="utf-8")
    assert json.loads((out / "export.json").read_text())["seed"] == 1


def test_push_with_a_wrong_token_fails_without_quoting_it(hub: LocalHubServer, export_run: Path, tmp_path: Path) -> None:  # noqa: F811
    wrong = f"hf_wrong_{secrets.token_hex(12)}"
    result = _kgsynth(["export", str(export_run), "--out", str(tmp_path / "dataset"), "--push", REPO],
                      _env(hub, tmp_path / "hf", wrong))
    assert result.returncode == 2
    assert "error:" in result.stderr and REPO in result.stderr and "401" in result.stderr
    assert wrong not in result.stdout + result.stderr
    assert hub.state.repos == {}
    assert any(status == 401 for _, _, status in hub.state.log)
    assert (tmp_path / "dataset" / "README.md").exists()  # the local export stands


def test_the_hub_refuses_requests_without_the_token(hub: LocalHubServer) -> None:
    with httpx.Client(base_url=hub.url, trust_env=False) as client:
        assert client.get("/api/whoami-v2").status_code == 401
        wrong = client.get("/api/whoami-v2", headers={"Authorization": "Bearer hf_nope"})
        assert wrong.status_code == 401 and wrong.headers["X-Error-Message"] == "Invalid credentials in Authorization header"
        ok = client.get("/api/whoami-v2", headers={"Authorization": f"Bearer {hub.state.token}"})
        assert ok.status_code == 200 and ok.json()["name"] == hub.state.user
        created = client.post("/api/repos/create", json={"name": "x", "organization": "tester", "type": "dataset"})
        assert created.status_code == 401 and hub.state.repos == {}
        upload = client.put("/lfs-upload/" + "0" * 64, content=b"data")
        assert upload.status_code == 403


def test_push_needs_a_token(export_run: Path, tmp_path: Path, monkeypatch) -> None:  # noqa: F811
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(PublishError, match="set HF_TOKEN"):
        push_dataset(tmp_path, REPO)
    with pytest.raises(PublishError, match="needs a namespace"):
        push_dataset(tmp_path, "no-namespace", token="hf_x")
