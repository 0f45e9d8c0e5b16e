"""A local stand-in for the Hugging Face Hub: a real HTTP server on a loopback port.

It implements the part of the Hub HTTP API that `huggingface_hub` 2.x uses for a
plain-HTTP push (`HF_HUB_DISABLE_XET=1`) and that `datasets.load_dataset` uses to
read a dataset back:

- `GET  /api/whoami-v2`, `POST /api/validate-yaml`, `POST /api/repos/create`
- `GET  /api/{type}s/{repo}[/revision/{rev}]`              repo info
- `POST /api/{type}s/{repo}/preupload/{rev}`               upload modes (regular/lfs)
- `POST /{prefix}{repo}.git/info/lfs/objects/batch`        LFS batch: upload + verify actions
- `PUT  /lfs-upload/{oid}?sig=…`                           the upload itself (signed URL, like S3)
- `POST /{prefix}{repo}.git/info/lfs/objects/verify`
- `POST /api/{type}s/{repo}/commit/{rev}`                  NDJSON commit
- `GET  /api/{type}s/{repo}/tree/{rev}[/{path}]`, `POST /api/{type}s/{repo}/paths-info/{rev}`
- `GET|HEAD /{prefix}{repo}/resolve/{rev}/{path}`          file download, with Range

Every request needs `Authorization: Bearer <token>` (401 otherwise, with the
Hub's error headers), except the LFS upload URL, which is authorized by the
signature the batch endpoint issued, as the Hub's presigned storage URLs are.
Repositories live in memory with a linear commit history per branch.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from fnmatch import fnmatch
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

LFS_PATTERNS = ("*.parquet", "*.arrow", "*.bin", "*.png", "*.jpg", "*.npy", "*.safetensors", "*.gz", "*.zip")
LFS_MIN_SIZE = 10 * 1024 * 1024
GITATTRIBUTES = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in LFS_PATTERNS).encode()
PREFIX = {"dataset": "datasets/", "space": "spaces/", "model": ""}
_INVALID = "Invalid credentials in Authorization header"


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Blob:
    size: int
    git_oid: str
    content: bytes | None = None  # regular files
    lfs_oid: str | None = None  # sha256 of LFS files (content in HubState.lfs)


@dataclass
class Commit:
    sha: str
    parent: str | None
    title: str
    date: str
    files: dict[str, Blob]


@dataclass
class Repo:
    type: str
    id: str
    private: bool
    created: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        sha = self.branches.get(revision, revision)
        return self.commits.get(sha)


@dataclass
class HubState:
    token: str
    user: str = "kgsynth-tester"
    repos: dict[tuple[str, str], Repo] = field(default_factory=dict)
    lfs: dict[str, bytes] = field(default_factory=dict)
    signing_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    log: list[tuple[str, str, int]] = field(default_factory=list)  # method, path, status
    lock: threading.Lock = field(default_factory=threading.Lock)

    def sign(self, oid: str) -> str:
        return hmac.new(self.signing_key, oid.encode(), hashlib.sha256).hexdigest()

    def stored_bytes(self) -> list[bytes]:
        """Every byte string the hub holds (for tests that look for leaked secrets)."""
        blobs = [b.content for r in self.repos.values() for c in r.commits.values() for b in c.files.values()]
        return [b for b in blobs if b] + list(self.lfs.values())


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


_REPO = r"(?P<ns>[^/]+)/(?P<name>[^/]+?)"
_API = rf"^/api/(?P<type>dataset|model|space)s/{_REPO}"
_GIT_PREFIX = r"^/(?:(?P<type>dataset|space)s/)?"
ROUTES: list[tuple[str, re.Pattern, str]] = [
    ("GET", re.compile(r"^/api/whoami-v2$"), "whoami"),
    ("POST", re.compile(r"^/api/validate-yaml$"), "validate_yaml"),
    ("POST", re.compile(r"^/api/repos/create$"), "create_repo"),
    ("POST", re.compile(_API + r"/preupload/(?P<rev>[^/]+)$"), "preupload"),
    ("POST", re.compile(_API + r"/commit/(?P<rev>[^/]+)$"), "commit"),
    ("GET", re.compile(_API + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$"), "tree"),
    ("POST", re.compile(_API + r"/paths-info/(?P<rev>[^/]+)$"), "paths_info"),
    ("GET", re.compile(_API + r"(?:/revision/(?P<rev>[^/]+))?$"), "repo_info"),
    ("POST", re.compile(_GIT_PREFIX + _REPO + r"\.git/info/lfs/objects/batch$"), "lfs_batch"),
    ("POST", re.compile(_GIT_PREFIX + _REPO + r"\.git/info/lfs/objects/verify$"), "lfs_verify"),
    ("PUT", re.compile(r"^/lfs-upload/(?P<oid>[0-9a-f]{64})$"), "lfs_upload"),
    ("GET", re.compile(_GIT_PREFIX + _REPO + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"), "resolve"),
    ("HEAD", re.compile(_GIT_PREFIX + _REPO + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"), "resolve"),
]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes; don't wait for ACKs
    server: LocalHubServer

    def log_message(self, format: str, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    # --- plumbing ---------------------------------------------------------------------
    @property
    def state(self) -> HubState:
        return self.server.state

    @property
    def base(self) -> str:
        return self.server.url

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        self.query = parse_qs(parts.query)
        self.body = self._read_body()
        status = 500
        try:
            for route_method, pattern, name in ROUTES:
                match = pattern.match(parts.path)
                if match and route_method == method:
                    if name != "lfs_upload":
                        self._authorize()
                    params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                    status = getattr(self, name)(**params)
                    break
            else:
                raise HubError(404, f"no route for {method} {parts.path}")
        except HubError as exc:
            status = exc.status
            self._send_json({"error": exc.message}, status, error_code=exc.code, error_message=exc.message)
        finally:
            with self.state.lock:
                self.state.log.append((method, parts.path, status))

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _authorize(self) -> None:
        header = self.headers.get("Authorization", "")
        if not header:
            raise HubError(401, "Unauthorized: a token is required")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), self.state.token.encode()):
            raise HubError(401, _INVALID)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> int:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return status

    def _send_json(self, data, status: int = 200, *, error_code: str | None = None,
                   error_message: str | None = None, content_type: str = "application/json") -> int:
        headers = {}
        if error_code:
            headers["X-Error-Code"] = error_code
        if error_message:
            headers["X-Error-Message"] = error_message
        return self._send(status, json.dumps(data).encode(), content_type, headers)

    def _repo(self, type: str, ns: str, name: str) -> Repo:
        repo = self.state.repos.get((type, f"{ns}/{name}"))
        if repo is None:
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def _commit(self, repo: Repo, rev: str) -> Commit:
        commit = repo.resolve(rev)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return commit

    def _repo_url(self, repo: Repo) -> str:
        return f"{self.base}/{PREFIX[repo.type]}{repo.id}"

    # --- account and repositories ---------------------------------------------------------
    def whoami(self) -> int:
        return self._send_json({"type": "user", "name": self.state.user, "orgs": [],
                                "auth": {"type": "access_token", "accessToken": {"role": "write"}}})

    def validate_yaml(self) -> int:
        content = json.loads(self.body or b"{}").get("content", "")
        match = re.match(r"^---\n(.*?)\n---\n", content, flags=re.DOTALL)
        try:
            metadata = yaml.safe_load(match.group(1)) if match else {}
        except yaml.YAMLError as exc:
            return self._send_json({"errors": [{"message": f"invalid YAML: {exc}"}]}, 400)
        if metadata is not None and not isinstance(metadata, dict):
            return self._send_json({"errors": [{"message": "metadata must be a mapping"}]}, 400)
        return self._send_json({"errors": [], "warnings": []})

    def create_repo(self) -> int:
        payload = json.loads(self.body or b"{}")
        type_ = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or self.state.user}/{payload['name']}"
        with self.state.lock:
            if (type_, repo_id) in self.state.repos:
                raise HubError(409, "You already created this repo")
            now = _now()
            repo = Repo(type=type_, id=repo_id, private=payload.get("visibility") == "private" or bool(payload.get("private")),
                        created=now)
            files = {".gitattributes": Blob(len(GITATTRIBUTES), git_blob_oid(GITATTRIBUTES), GITATTRIBUTES)}
            _add_commit(repo, "main", "initial commit", files)
            self.state.repos[(type_, repo_id)] = repo
        return self._send_json({"url": self._repo_url(repo), "name": repo_id, "id": repo_id})

    def repo_info(self, type: str, ns: str, name: str, rev: str = "main") -> int:
        repo = self._repo(type, ns, name)
        commit = self._commit(repo, rev)
        with_blobs = self.query.get("blobs", ["false"])[0].lower() == "true"
        siblings = []
        for path, blob in sorted(commit.files.items()):
            entry = {"rfilename": path}
            if with_blobs:
                entry |= {"size": blob.size, "blobId": blob.git_oid}
                if blob.lfs_oid:
                    entry["lfs"] = {"sha256": blob.lfs_oid, "size": blob.size, "pointerSize": 134}
            siblings.append(entry)
        readme = commit.files.get("README.md")
        card_data = None
        if readme is not None and readme.content:
            match = re.match(r"^---\n(.*?)\n---\n", readme.content.decode(), flags=re.DOTALL)
            card_data = yaml.safe_load(match.group(1)) if match else None
        return self._send_json({
            "_id": hashlib.sha1(repo.id.encode()).hexdigest()[:24], "id": repo.id, "author": repo.id.split("/")[0],
            "sha": commit.sha, "lastModified": commit.date, "createdAt": repo.created, "private": repo.private,
            "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": [], "cardData": card_data,
            "siblings": siblings,
        })

    # --- uploads ---------------------------------------------------------------------------
    def preupload(self, type: str, ns: str, name: str, rev: str) -> int:
        repo = self._repo(type, ns, name)
        commit = repo.resolve(rev)
        files = []
        for f in json.loads(self.body)["files"]:
            lfs = f["size"] >= LFS_MIN_SIZE or any(fnmatch(f["path"], p) for p in LFS_PATTERNS)
            existing = commit.files.get(f["path"]) if commit else None
            oid = None
            if existing is not None:
                oid = existing.lfs_oid if lfs else (existing.git_oid if existing.lfs_oid is None else None)
            files.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        return self._send_json({"files": files, "commitOid": commit.sha if commit else None})

    def lfs_batch(self, ns: str, name: str, type: str = "model") -> int:
        self._repo(type, ns, name)
        payload = json.loads(self.body)
        if payload.get("operation") != "upload":
            raise HubError(400, "only the upload operation is supported")
        objects = []
        for obj in payload["objects"]:
            oid, size = obj["oid"], obj["size"]
            entry = {"oid": oid, "size": size, "authenticated": True}
            if oid not in self.state.lfs:
                entry["actions"] = {
                    "upload": {"href": f"{self.base}/lfs-upload/{oid}?sig={self.state.sign(oid)}", "expires_in": 900},
                    "verify": {"href": f"{self.base}/{PREFIX[type]}{ns}/{name}.git/info/lfs/objects/verify",
                               "expires_in": 900},
                }
            objects.append(entry)
        return self._send_json({"transfer": "basic", "objects": objects}, content_type="application/vnd.git-lfs+json")

    def lfs_upload(self, oid: str) -> int:
        signature = self.query.get("sig", [""])[0]
        if not hmac.compare_digest(signature.encode(), self.state.sign(oid).encode()):
            raise HubError(403, "invalid or missing upload signature")
        if hashlib.sha256(self.body).hexdigest() != oid:
            raise HubError(400, "uploaded content does not match its sha256 oid")
        with self.state.lock:
            self.state.lfs[oid] = self.body
        return self._send(200, b"", "text/plain")

    def lfs_verify(self, ns: str, name: str, type: str = "model") -> int:
        self._repo(type, ns, name)
        payload = json.loads(self.body)
        stored = self.state.lfs.get(payload["oid"])
        if stored is None or len(stored) != payload["size"]:
            raise HubError(404, f"object {payload['oid']} was not uploaded")
        return self._send_json({"message": "ok"})

    def commit(self, type: str, ns: str, name: str, rev: str) -> int:
        repo = self._repo(type, ns, name)
        if self.query.get("create_pr"):
            raise HubError(400, "pull requests are not supported by the local hub")
        lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
        header = next((line["value"] for line in lines if line["key"] == "header"), {})
        with self.state.lock:
            head = self._commit(repo, rev)
            parent = header.get("parentCommit")
            if parent and parent != head.sha:
                raise HubError(412, f"parent commit {parent} is not the head of {rev}")
            files = dict(head.files)
            for line in lines:
                key, value = line["key"], line["value"]
                if key == "file":
                    data = base64.b64decode(value["content"])
                    files[value["path"]] = Blob(len(data), git_blob_oid(data), content=data)
                elif key == "lfsFile":
                    data = self.state.lfs.get(value["oid"])
                    if data is None:
                        raise HubError(400, f"LFS object {value['oid']} of {value['path']} was never uploaded")
                    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{value['oid']}\nsize {len(data)}\n"
                    files[value["path"]] = Blob(len(data), git_blob_oid(pointer.encode()), lfs_oid=value["oid"])
                elif key == "deletedFile":
                    if files.pop(value["path"], None) is None:
                        raise HubError(404, "A file with this name doesn't exist", "EntryNotFound")
                elif key == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    files = {p: b for p, b in files.items() if not p.startswith(prefix)}
                elif key != "header":
                    raise HubError(400, f"unknown commit operation {key!r}")
            commit = _add_commit(repo, rev, header.get("summary") or "commit", files)
        return self._send_json({"success": True, "commitOid": commit.sha, "pullRequestUrl": None,
                                "commitUrl": f"{self._repo_url(repo)}/commit/{commit.sha}", "hookOutput": ""})

    # --- reading -----------------------------------------------------------------------------
    def tree(self, type: str, ns: str, name: str, rev: str, path: str = "") -> int:
        commit = self._commit(self._repo(type, ns, name), rev)
        path = path.strip("/")
        recursive = self.query.get("recursive", ["false"])[0].lower() == "true"
        prefix = f"{path}/" if path else ""
        if path and path not in commit.files and not any(p.startswith(prefix) for p in commit.files):
            raise HubError(404, f"{path} does not exist at {rev}", "EntryNotFound")
        entries: dict[str, dict] = {}
        for file_path, blob in commit.files.items():
            if not file_path.startswith(prefix):
                continue
            rest = file_path[len(prefix):].split("/")
            for depth in range(1, len(rest)):
                folder = prefix + "/".join(rest[:depth])
                if recursive or depth == 1:
                    entries.setdefault(folder, _folder_entry(folder))
                if not recursive:
                    break
            if recursive or len(rest) == 1:
                entries[file_path] = _file_entry(file_path, blob)
        return self._send_json([entries[k] for k in sorted(entries)])

    def paths_info(self, type: str, ns: str, name: str, rev: str) -> int:
        commit = self._commit(self._repo(type, ns, name), rev)
        form = parse_qs(self.body.decode())
        result = []
        for path in form.get("paths", []):
            path = path.strip("/")
            if path in commit.files:
                result.append(_file_entry(path, commit.files[path]))
            elif any(p.startswith(path + "/") for p in commit.files):
                result.append(_folder_entry(path))
        return self._send_json(result)

    def resolve(self, ns: str, name: str, rev: str, path: str, type: str = "model") -> int:
        repo = self._repo(type, ns, name)
        commit = self._commit(repo, rev)
        blob = commit.files.get(path)
        if blob is None:
            raise HubError(404, f"{path} does not exist at {rev}", "EntryNotFound")
        data = self.state.lfs[blob.lfs_oid] if blob.lfs_oid else blob.content or b""
        etag = blob.lfs_oid or blob.git_oid
        headers = {"ETag": f'"{etag}"', "X-Repo-Commit": commit.sha, "Accept-Ranges": "bytes"}
        if blob.lfs_oid:
            headers |= {"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(blob.size)}
        status = 200
        range_header = self.headers.get("Range")
        if range_header and (m := re.fullmatch(r"bytes=(\d*)-(\d*)", range_header.strip())):
            total = len(data)
            if m[1]:
                start, end = int(m[1]), min(int(m[2]) if m[2] else total - 1, total - 1)
            else:
                start, end = max(total - int(m[2]), 0), total - 1
            if start >= total and total:
                raise HubError(416, "range not satisfiable")
            data = data[start:end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{total}"
            status = 206
        return self._send(status, data, "application/octet-stream", headers)


def _file_entry(path: str, blob: Blob) -> dict:
    entry = {"type": "file", "oid": blob.git_oid, "size": blob.size, "path": path}
    if blob.lfs_oid:
        entry["lfs"] = {"oid": blob.lfs_oid, "size": blob.size, "pointerSize": 134}
    return entry


def _folder_entry(path: str) -> dict:
    return {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0, "path": path}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def _add_commit(repo: Repo, branch: str, title: str, files: dict[str, Blob]) -> Commit:
    parent = repo.branches.get(branch)
    digest = hashlib.sha1(f"{parent}\n{title}\n{len(repo.commits)}\n".encode())
    for path in sorted(files):
        digest.update(f"{path}\0{files[path].git_oid}\n".encode())
    commit = Commit(sha=digest.hexdigest(), parent=parent, title=title, date=_now(), files=files)
    repo.commits[commit.sha] = commit
    repo.branches[branch] = commit.sha
    return commit


class LocalHubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, token: str) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = HubState(token=token)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self._thread = threading.Thread(target=self.serve_forever, name="local-hub", daemon=True)

    def __enter__(self) -> LocalHubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)

    def file_text(self, repo_id: str, path: str, *, type: str = "dataset", revision: str = "main") -> str:
        repo = self.state.repos[(type, repo_id)]
        blob = repo.resolve(revision).files[path]
        return (self.state.lfs[blob.lfs_oid] if blob.lfs_oid else blob.content).decode()

    def files(self, repo_id: str, *, type: str = "dataset", revision: str = "main") -> list[str]:
        return sorted(self.state.repos[(type, repo_id)].resolve(revision).files)

