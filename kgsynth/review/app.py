"""The review web app: FastAPI over one run directory.

Pages are rendered on the server (Jinja2); one small script (`static/review.js`)
draws the path with the vendored Cytoscape.js and binds the keyboard. Reviews go to
`RUN_DIR/review/reviews.sqlite` through `ReviewStore`; items and verdicts are only
read.

Who reviews: the name given with `--reviewer`, or the one a browser chose on the
reviewer page (a cookie), so two reviewers can share one server. When a token is
set (required off loopback) every page asks for it once and keeps it in a cookie;
scripts may send `Authorization: Bearer TOKEN`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, ValidationError

from kgsynth.errors import ConfigError
from kgsynth.review.data import NO_SPLIT, QueueFilter, ReviewData
from kgsynth.review.store import DECISIONS, REJECT_REASONS, ReviewStore, check_decision, check_reviewer

HERE = Path(__file__).parent
TOKEN_ENV = "KGSYNTH_REVIEW_TOKEN"
TOKEN_COOKIE = "kgsynth_review_session"
REVIEWER_COOKIE = "kgsynth_reviewer"
PAGE_SIZE = 50
OPEN_PATHS = ("/static/", "/login")
CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'"


@dataclass(frozen=True)
class Settings:
    reviewer: str | None = None  # default reviewer (--reviewer)
    token: str | None = None  # required from every client when set


class ReviewIn(BaseModel):
    """A review as the page posts it (JSON)."""

    model_config = ConfigDict(extra="forbid")
    item_id: str
    decision: str
    reason: str | None = None
    note: str = ""


def create_app(data: ReviewData, store: ReviewStore, settings: Settings = Settings()) -> FastAPI:
    app = FastAPI(title="kgsynth review", docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=HERE / "templates")
    # static files change only with the package: link them with a content hash and let browsers keep them
    templates.env.globals["static_version"] = _static_version()
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    session = _session_value(settings.token) if settings.token else None

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if request.method == "POST" and not _same_origin(request):
            return _error(request, 403, "cross-site request refused: post from the review page itself")
        if session is not None and not request.url.path.startswith(OPEN_PATHS) and not _authorized(request, settings.token, session):
            if _wants_json(request):
                return JSONResponse({"error": f"a token is required (the value of ${TOKEN_ENV}); send it as 'Authorization: Bearer …'"}, status_code=401)
            return RedirectResponse(f"/login?{urlencode({'next': _local(str(request.url.path) + ('?' + request.url.query if request.url.query else ''))})}", status_code=303)
        response = await call_next(request)
        if request.url.path.startswith("/static/") and request.query_params.get("v"):
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")  # "no-referrer" makes browsers send Origin: null
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        return _error(request, 422, "review not saved: " + _validation_text(exc.errors()))

    def reviewer_of(request: Request) -> str | None:
        name = request.cookies.get(REVIEWER_COOKIE) or settings.reviewer
        try:
            return check_reviewer(name) if name else None
        except ConfigError:
            return None

    def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("reviewer", reviewer_of(request))
        context.setdefault("run", data.run.root)
        context.setdefault("sample", data.sample)
        return templates.TemplateResponse(request, template, context, status_code=status)

    def filter_of(request: Request) -> QueueFilter:
        return QueueFilter.parse(dict(request.query_params))

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = "/"):
        return render(request, "login.html", next=_local(next), failed=False)

    @app.post("/login")
    async def login(request: Request):
        form, target = await _posted_form(request)
        if session is None or not hmac.compare_digest(form.get("token", "").encode(), settings.token.encode()):
            return render(request, "login.html", status=401, next=target, failed=True)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(TOKEN_COOKIE, session, httponly=True, samesite="strict")
        return response

    @app.get("/reviewer", response_class=HTMLResponse)
    def reviewer_page(request: Request, next: str = "/"):
        return render(request, "reviewer.html", next=_local(next), problem=None)

    @app.post("/reviewer")
    async def choose_reviewer(request: Request):
        form, target = await _posted_form(request)
        try:
            name = check_reviewer(form.get("reviewer", ""))
        except ConfigError as exc:
            return render(request, "reviewer.html", status=422, next=target, problem=str(exc))
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(REVIEWER_COOKIE, name, samesite="strict", max_age=365 * 24 * 3600)
        return response

    @app.get("/", response_class=HTMLResponse)
    def queue_page(request: Request, page: int = 1):
        reviewer = reviewer_of(request)
        if reviewer is None:
            return RedirectResponse(f"/reviewer?{urlencode({'next': _local(str(request.url))})}", status_code=303)
        try:
            flt = filter_of(request)
        except ConfigError as exc:
            return _error(request, 400, str(exc))
        decisions = store.decisions(reviewer)
        queue = data.queue(flt, decisions)
        pages = max(1, -(-len(queue) // PAGE_SIZE))
        page = min(max(page, 1), pages)
        shown = queue[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        frame = data.items
        rows = [
            {**frame.row(int(p), named=True), "position": int(p), "mine": decisions.get(frame["id"][int(p)])}
            for p in shown
        ]
        return render(
            request, "queue.html",
            flt=flt, query=urlencode(flt.params()), choices=data.choices(), rows=rows, total=len(queue),
            page=page, pages=pages, page_size=PAGE_SIZE, counts=store.counts().get(reviewer, {}),
            items=frame.height, export_params=data.export_params, done=request.query_params.get("done"),
        )

    @app.get("/next")
    def first_in_queue(request: Request):
        reviewer = reviewer_of(request)
        if reviewer is None:
            return RedirectResponse(f"/reviewer?{urlencode({'next': _local(str(request.url))})}", status_code=303)
        flt = filter_of(request)
        queue = data.queue(flt, store.decisions(reviewer))
        query = urlencode(flt.params())
        if not len(queue):
            return RedirectResponse(f"/?{urlencode({**flt.params(), 'done': '1'})}", status_code=303)
        return RedirectResponse(_url(f"/items/{data.items['id'][int(queue[0])]}", query), status_code=303)

    @app.get("/items/{item_id}", response_class=HTMLResponse)
    def item_page(request: Request, item_id: str):
        started = time.perf_counter()
        reviewer = reviewer_of(request)
        if reviewer is None:
            return RedirectResponse(f"/reviewer?{urlencode({'next': _local(str(request.url))})}", status_code=303)
        try:
            flt = filter_of(request)
        except ConfigError as exc:
            return _error(request, 400, str(exc))
        position = data.ids.get(item_id)
        if position is None:
            return _error(request, 404, f"no item {item_id!r} in {data.run.root}")
        item = data.items.row(position, named=True)
        queue = data.queue(flt, store.decisions(reviewer))
        previous, following, at = data.neighbours(queue, position)
        query = urlencode(flt.params())
        ids = data.items["id"]
        link = lambda p: None if p is None else _url(f"/items/{ids[p]}", query)  # noqa: E731
        proof = data.graph.prove(item) if data.graph is not None else None
        response = render(
            request, "item.html",
            item=item, view=item_view(item, data), proof=proof, proof_by_id={c.node_id: c for c in proof.claims} if proof else {},
            graph=path_graph(item),
            mine=store.get(reviewer, item_id), history=store.history(reviewer, item_id),
            reasons=REJECT_REASONS, flt=flt, query=query,
            previous=link(previous), following=link(following), at=at, total=len(queue),
            done_url=f"/?{urlencode({**flt.params(), 'done': '1'})}", queue_url=_url("/", query),
        )
        response.headers["Server-Timing"] = f"render;dur={(time.perf_counter() - started) * 1000:.1f}"
        return response

    @app.post("/api/reviews")
    async def save_review(request: Request):
        reviewer = reviewer_of(request)
        if reviewer is None:
            return JSONResponse({"error": "review not saved: choose a reviewer name first (/reviewer)"}, status_code=409)
        if "application/json" not in request.headers.get("content-type", ""):
            return JSONResponse({"error": "review not saved: send the review as JSON (Content-Type: application/json)"}, status_code=415)
        body = await request.body()
        try:
            review = ReviewIn.model_validate_json(body)
        except ValidationError as exc:
            return JSONResponse({"error": "review not saved: " + _validation_text(exc.errors())}, status_code=422)
        if review.item_id not in data.ids:
            return JSONResponse({"error": f"review not saved: no item {review.item_id!r} in this run"}, status_code=404)
        try:
            check_decision(review.decision, review.reason, review.note)
        except ValueError as exc:
            return JSONResponse({"error": f"review not saved: {exc}"}, status_code=422)
        saved = store.save(reviewer, review.item_id, review.decision, review.reason, review.note,
                           sample=data.sample.label if data.sample is not None else None)
        return JSONResponse({"saved": asdict(saved)})

    @app.get("/api/reviews/{item_id}")
    def get_review(request: Request, item_id: str):
        reviewer = reviewer_of(request)
        if reviewer is None:
            return JSONResponse({"error": "no reviewer chosen"}, status_code=409)
        current = store.get(reviewer, item_id)
        return {"review": asdict(current) if current else None, "history": [asdict(r) for r in store.history(reviewer, item_id)]}

    app.state.data, app.state.store, app.state.settings = data, store, settings
    return app


def item_view(item: dict[str, Any], data: ReviewData) -> dict[str, Any]:
    """What the item page shows beyond the raw item: nodes with roles, distractors with names."""
    bridges = set(item["bridges"] or [])
    roles = ["anchor", *["bridge"] * (len(item["nodes"]) - 2), "answer"]
    nodes = [
        {"id": i, "name": n, "type": t, "role": role, "masked": i in bridges}
        for i, n, t, role in zip(item["nodes"], item["node_names"], item["node_types"], roles, strict=False)
    ]
    option_of = {o["node_id"]: o for o in item["options"] or []}
    graph = data.graph
    distractors = []
    for node_id in item["negatives"] or []:
        index = graph.engine.index_of(node_id) if graph is not None and graph.engine.has_index(node_id) else None
        option = option_of.get(node_id)
        distractors.append({
            "id": node_id,
            "label": option["label"] if option else None,
            "name": option["text"] if option else (graph.names[index] if index is not None else None),
            "type": graph.engine.type_names[int(graph.engine.node_type[index])] if index is not None else None,
        })
    return {
        "nodes": nodes,
        "distractors": distractors,
        "split": item["split"] if item["split"] != NO_SPLIT else None,
        "failed": [v for v in item["verdicts"] or [] if not v["passed"]],
    }


def path_graph(item: dict[str, Any]) -> dict[str, Any]:
    """Cytoscape elements: the path's nodes in order and its edges in their stored direction."""
    bridges = set(item["bridges"] or [])
    last = len(item["nodes"]) - 1
    nodes, seen = [], set()
    for i, (node_id, name, node_type) in enumerate(zip(item["nodes"], item["node_names"], item["node_types"], strict=False)):
        if node_id in seen:
            continue
        seen.add(node_id)
        role = "anchor" if i == 0 else "answer" if i == last else "bridge"
        nodes.append({"data": {"id": node_id, "name": name, "type": node_type, "role": role,
                               "masked": node_id in bridges, "order": i}})
    edges = []
    for hop, (relation, forward) in enumerate(zip(item["relations"], item["forward"], strict=True)):
        a, b = item["nodes"][hop], item["nodes"][hop + 1]
        source, target = (a, b) if forward else (b, a)
        edges.append({"data": {"id": f"hop{hop}", "source": source, "target": target, "relation": relation,
                               "hop": hop + 1, "direction": "forward" if forward else "inverse"}})
    return {"nodes": nodes, "edges": edges}


def _static_version() -> str:
    digest = hashlib.sha256()
    for path in sorted((HERE / "static").iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def _url(path: str, query: str) -> str:
    return f"{path}?{query}" if query else path


def _session_value(token: str) -> str:
    """What the cookie holds: derived from the token, so the cookie never is the token itself."""
    return hmac.new(token.encode(), b"kgsynth-review-session", hashlib.sha256).hexdigest()


def _authorized(request: Request, token: str, session: str) -> bool:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer ") and hmac.compare_digest(header[7:].strip().encode(), token.encode()):
        return True
    return hmac.compare_digest(request.cookies.get(TOKEN_COOKIE, "").encode(), session.encode())


def _same_origin(request: Request) -> bool:
    """POSTs must come from the app's own pages: a browser names the page's origin."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host")


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _local(target: str) -> str:
    """Only redirect within the app."""
    parts = urlsplit(target)
    path = parts.path if parts.path.startswith("/") and not parts.path.startswith("//") else "/"
    return path + (f"?{parts.query}" if parts.query else "")


async def _posted_form(request: Request) -> tuple[dict[str, str], str]:
    """A posted HTML form's fields, and the page to go to afterwards (within the app)."""
    try:
        parsed = parse_qs((await request.body()).decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        parsed = {}
    form = {k: v[-1] for k, v in parsed.items()}
    return form, _local(form.get("next", "/"))


def _validation_text(errors: list[dict[str, Any]]) -> str:
    parts = []
    for error in errors[:3]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        message = error.get("msg", "invalid")
        if error.get("type") == "extra_forbidden":
            message = "unknown field"
        parts.append(f"field '{where}': {message}" if where else message)
    return "; ".join(parts) + f" (expected JSON like {{\"item_id\": \"…\", \"decision\": \"{'|'.join(DECISIONS)}\", \"reason\": …, \"note\": …}})"


def _error(request: Request, status: int, message: str) -> Response:
    if _wants_json(request) or request.method == "POST":
        return JSONResponse({"error": message}, status_code=status)
    return HTMLResponse(
        f"<!doctype html><title>kgsynth review</title><link rel=stylesheet href=/static/review.css>"
        f"<main class=error><h1>{status}</h1><p>{_escape(message)}</p><p><a href='/'>back to the queue</a></p></main>",
        status_code=status,
    )


def _escape(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))
