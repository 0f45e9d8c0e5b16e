"""The review app over HTTP: `kgsynth review` started as a user starts it, on a demo run.

These run without a browser; tests/test_review_browser.py drives the page itself.
"""

from __future__ import annotations

import json
import re
import socket
from html import unescape
from pathlib import Path

import httpx
import polars as pl
import pytest
from review_run import ReviewServer, copy_run, kgsynth, review_run, verified_items  # noqa: F401

from kgsynth.review.store import ReviewStore

TOKEN = "s3cret-token-for-the-tests"


@pytest.fixture()
def run(review_run: Path, tmp_path: Path) -> Path:  # noqa: F811
    return copy_run(review_run, tmp_path / "run")


@pytest.fixture(scope="module")
def shared_run(review_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    return copy_run(review_run, tmp_path_factory.mktemp("shared") / "run")


@pytest.fixture(scope="module")
def shared(shared_run: Path):
    """One server for the tests that read, or write each to items of their own."""
    with ReviewServer(shared_run, "--reviewer", "ann") as served:
        yield served


@pytest.fixture()
def server(run: Path):
    with ReviewServer(run, "--reviewer", "ann") as served:
        yield served


def graph_data(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="graph-data">(.*?)</script>', html, re.S)
    return json.loads(match.group(1))


def test_the_item_page_shows_the_item_its_path_its_distractors_proofs_verdicts_and_provenance(shared, shared_run: Path) -> None:
    server = shared
    items = verified_items(shared_run)
    accepted = items.filter((pl.col("status") == "accepted") & (pl.col("kind") == "mcq") & (pl.col("hops") == 3)).row(0, named=True)
    page = httpx.get(f"{server.url}/items/{accepted['id']}")
    assert page.status_code == 200
    html = unescape(page.text)
    for text in (accepted["question"], accepted["thinking"], accepted["answer"], accepted["provenance"]["prompt_name"],
                 accepted["path_id"], accepted["provenance"]["snapshot_hash"][:16], "verification: accepted"):
        assert text in html
    for option in accepted["options"]:
        assert option["text"] in html and option["node_id"] in html
    for verdict in accepted["verdicts"]:
        assert f"<td>{verdict['check']}</td><td>passed</td>" in page.text
    # the drawn graph: the path's nodes, and its edges in their stored direction
    graph = graph_data(page.text)
    assert [n["data"]["id"] for n in graph["nodes"]] == accepted["nodes"]
    assert [n["data"]["type"] for n in graph["nodes"]] == accepted["node_types"]
    stored = [(a, r, b) if f else (b, r, a) for a, b, r, f in
              zip(accepted["nodes"], accepted["nodes"][1:], accepted["relations"], accepted["forward"], strict=False)]
    assert [(e["data"]["source"], e["data"]["relation"], e["data"]["target"]) for e in graph["edges"]] == stored
    # every distractor has a proof, and on an accepted item none is reachable
    rows = re.findall(r'<tr class="(proven|reached|unknown)">', page.text)
    assert len(rows) == len(accepted["negatives"]) and set(rows) == {"proven"}
    assert "the first 2 hop(s) of the pattern reach" in html


def test_a_distractor_the_graph_reaches_is_flagged_with_its_witness(run: Path) -> None:
    """Swap a distractor of an accepted item for another end of its pattern: the page must say so."""
    import numpy as np

    from kgsynth.graph.engine import open_engine
    from kgsynth.graph.snapshot import read_snapshot

    engine = open_engine(read_snapshot(run / "snapshot"))
    accepted = pl.read_parquet(run / "verified" / "accepted.parquet")
    n_rel = len(engine.relation_names)
    for row, item in enumerate(accepted.iter_rows(named=True)):
        if item["kind"] != "mcq" or item["hops"] != 2:
            continue
        bridge = engine.index_of(item["nodes"][1])
        key = engine.relation_index[item["relations"][1]] + (0 if item["forward"][1] else n_rel)
        lo, hi = engine.key_ranges(np.array([bridge]), np.array([key]))
        ends = [engine.node_ids[i] for i in np.asarray(engine.indices)[lo[0]:hi[0]]
                if engine.type_names[engine.node_type[i]] == item["node_types"][2] and engine.node_ids[i] != item["answer_id"]]
        if ends:
            break
    else:
        pytest.fail("no 2-hop item whose bridge reaches a second end")
    wrong, right = item["negatives"][0], ends[0]
    item["negatives"] = [right, *item["negatives"][1:]]
    item["options"] = [{**o, "node_id": right} if o["node_id"] == wrong else o for o in item["options"]]
    changed = pl.concat([accepted.slice(0, row), pl.DataFrame([item], schema=accepted.schema), accepted.slice(row + 1)])
    changed.write_parquet(run / "verified" / "accepted.parquet")

    with ReviewServer(run, "--reviewer", "ann") as served:
        html = unescape(httpx.get(f"{served.url}/items/{item['id']}").text)
    claims = re.findall(r'<tr class="(proven|reached|unknown)">', html)
    assert claims == ["reached"] + ["proven"] * (len(item["negatives"]) - 1)
    witness = re.search(r"the graph reaches it: the anchor's pattern arrives at (.*?) \((\S+)\), which is linked to it", html)
    assert witness, html[html.index("Distractors"):][:3000]
    # the witness is a node the first hop reaches from the anchor, linked to the distractor by the last relation
    node = engine.index_of(witness.group(2))
    assert engine.has_edge(engine.index_of(item["nodes"][0]), node, engine.relation_index[item["relations"][0]], item["forward"][0])
    assert engine.has_edge(node, engine.index_of(right), engine.relation_index[item["relations"][1]], item["forward"][1])


def test_reviews_are_saved_edited_and_kept(server, run: Path) -> None:
    items = verified_items(run)
    first, second = items["id"][0], items["id"][1]
    with httpx.Client(base_url=server.url) as client:
        assert client.post("/api/reviews", json={"item_id": first, "decision": "accept"}).status_code == 200
        saved = client.post("/api/reviews", json={"item_id": first, "decision": "reject", "reason": "fact_wrong",
                                                  "note": "HPO lists this under another parent"})
        assert saved.json()["saved"]["revision"] == 2
        client.post("/api/reviews", json={"item_id": second, "decision": "skip"})
        page = unescape(client.get(f"/items/{first}").text)
        assert 'data-decision="reject"' in page and "HPO lists this under another parent" in page and "revision 2" in page
        history = client.get(f"/api/reviews/{first}").json()["history"]
        assert [h["decision"] for h in history] == ["accept", "reject"]
    rest = server.stop()
    assert "ann: 1 reject, 1 skip" in rest or "ann: 1 skip, 1 reject" in rest
    store = ReviewStore.of_run(run)
    assert store.decisions("ann") == {first: "reject", second: "skip"}
    store.close()


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        (b'{"item_id": "X", "decision": "maybe"}', {"content-type": "application/json"}, 422, "decision must be one of accept, reject, skip"),
        (b'{"item_id": "X", "decision": "reject"}', {"content-type": "application/json"}, 422, "a rejection needs a reason"),
        (b'{"item_id": "X", "decision": "reject", "reason": "other"}', {"content-type": "application/json"}, 422, "needs a note"),
        (b'{"item_id": "X", "decision": "accept", "score": 5}', {"content-type": "application/json"}, 422, "field 'score': unknown field"),
        (b'{"decision": "accept"}', {"content-type": "application/json"}, 422, "field 'item_id': Field required"),
        (b'{"item_id": "X", "decision": ', {"content-type": "application/json"}, 422, "Invalid JSON"),
        (b"\xff\xfe not utf-8", {"content-type": "application/json"}, 422, "review not saved"),
        (b'{"item_id": "nope", "decision": "accept"}', {"content-type": "application/json"}, 404, "no item 'nope' in this run"),
        (b"item_id=X&decision=accept", {"content-type": "application/x-www-form-urlencoded"}, 415, "send the review as JSON"),
        (b'{"item_id": "X", "decision": "accept"}', {"content-type": "application/json", "origin": "http://elsewhere.example"}, 403, "cross-site request refused"),
    ],
    ids=lambda v: str(v)[:40] if isinstance(v, bytes) else None,
)
def test_a_malformed_review_post_gets_a_clear_message_and_nothing_changes(
    shared, shared_run: Path, body, headers, status, message, request: pytest.FixtureRequest
) -> None:
    case = request.node.callspec.indices["body"]
    item = verified_items(shared_run)["id"][10 + case]  # an item of its own on the shared server
    with httpx.Client(base_url=shared.url) as client:
        client.post("/api/reviews", json={"item_id": item, "decision": "accept"})
        response = client.post("/api/reviews", content=body.replace(b'"X"', f'"{item}"'.encode()), headers=headers)
        assert response.status_code == status
        assert message in response.json()["error"]
        assert [h["decision"] for h in client.get(f"/api/reviews/{item}").json()["history"]] == ["accept"]


def test_the_queue_filters_and_walks_in_order(server, run: Path) -> None:
    items = verified_items(run)
    with httpx.Client(base_url=server.url, follow_redirects=False) as client:
        def total(**params) -> int:
            page = client.get("/", params=params)
            assert page.status_code == 200
            return int(re.search(r'id="queue-total">([\d,]+)<', page.text).group(1).replace(",", ""))

        assert total() == items.height
        assert total(verdict="rejected") == items.filter(pl.col("status") == "rejected").height
        assert total(hops=3) == items.filter(pl.col("hops") == 3).height
        assert total(config="open") == items.filter(pl.col("kind") == "open").height
        pattern = items.join(pl.read_parquet(run / "paths.parquet", columns=["path_id", "pattern"]), on="path_id")["pattern"][0]
        assert total(pattern=pattern, hops=2) == items.join(
            pl.read_parquet(run / "paths.parquet", columns=["path_id", "pattern"]), on="path_id"
        ).filter((pl.col("pattern") == pattern) & (pl.col("hops") == 2)).height
        reason = items.filter(pl.col("status") == "rejected")["reasons"][0][0]
        assert total(verdict=reason) == items.filter(pl.col("reasons").list.contains(reason)).height
        assert client.get("/", params={"hops": "two"}).status_code == 400

        # the unreviewed queue moves on as items are reviewed
        unreviewed = {"verdict": "accepted", "reviewed": "no"}
        first = client.get("/next", params=unreviewed).headers["location"]
        ids = items.filter(pl.col("status") == "accepted")["id"].to_list()
        assert first.startswith(f"/items/{ids[0]}?")
        page = client.get(first).text
        assert f'data-next="/items/{ids[1]}?' in page
        client.post("/api/reviews", json={"item_id": ids[0], "decision": "accept"})
        assert client.get("/next", params=unreviewed).headers["location"].startswith(f"/items/{ids[1]}?")
        assert total(**unreviewed) == len(ids) - 1
        assert total(reviewed="accept") == 1 and total(reviewed="yes") == 1


def test_sample_mode_serves_a_stratified_slice_and_records_it(run: Path) -> None:
    with ReviewServer(run, "--reviewer", "ann", "--sample", "40", "--seed", "7") as served:
        assert "sample of 40 (n=40 seed=7)" in "".join(served.output)
        with httpx.Client(base_url=served.url) as client:
            page = client.get("/").text
            assert 'id="queue-total">40<' in page and "sample n=40 seed=7" in page
            first = client.get("/next", follow_redirects=False).headers["location"]
            item = first.split("/")[2].split("?")[0]
            client.post("/api/reviews", json={"item_id": item, "decision": "accept"})
    store = ReviewStore.of_run(run)
    assert store.table()["sample"].to_list() == ["n=40 seed=7"]
    store.close()
    with ReviewServer(run, "--reviewer", "ben", "--sample", "40", "--seed", "7") as again:
        assert httpx.get(f"{again.url}/next", follow_redirects=False).headers["location"] == first


def test_two_reviewers_at_once_on_two_servers_and_on_one(run: Path) -> None:
    ids = verified_items(run)["id"].to_list()[:20]
    with ReviewServer(run, "--reviewer", "ann") as one, ReviewServer(run, "--reviewer", "ben") as two:
        with httpx.Client(base_url=one.url) as a, httpx.Client(base_url=two.url) as b:
            for i, item in enumerate(ids):
                assert a.post("/api/reviews", json={"item_id": item, "decision": "accept"}).status_code == 200
                body = {"item_id": item, "decision": "reject", "reason": "question_unclear"} if i % 4 == 0 else {"item_id": item, "decision": "accept"}
                assert b.post("/api/reviews", json=body).status_code == 200
            # a third reviewer on the first server picks a name in the browser (a cookie)
            chosen = a.post("/reviewer", data={"reviewer": "cleo", "next": "/"}, follow_redirects=False)
            assert chosen.status_code == 303
            assert a.post("/api/reviews", json={"item_id": ids[0], "decision": "skip"}).status_code == 200
            assert a.post("/reviewer", data={"reviewer": "<script>", "next": "/"}).status_code == 422
    store = ReviewStore.of_run(run)
    counts = store.counts()
    assert counts == {"ann": {"accept": 20}, "ben": {"accept": 15, "reject": 5}, "cleo": {"skip": 1}}
    store.close()


def test_review_export_and_the_card_figures(run: Path) -> None:
    ids = verified_items(run).filter(pl.col("status") == "accepted")["id"].to_list()[:12]
    with (
        ReviewServer(run, "--reviewer", "ann") as served,
        httpx.Client(base_url=served.url) as ann,
        httpx.Client(base_url=served.url, cookies={"kgsynth_reviewer": "ben"}) as ben,
    ):
        for i, item in enumerate(ids):
            body = {"item_id": item, "decision": "reject", "reason": "wrong_answer"} if i < 3 else {"item_id": item, "decision": "accept"}
            assert ann.post("/api/reviews", json=body).status_code == 200
            body = {"item_id": item, "decision": "reject", "reason": "wrong_answer"} if i < 4 else {"item_id": item, "decision": "accept"}
            assert ben.post("/api/reviews", json=body).status_code == 200

    no_reviews = kgsynth("export", str(run), "--drop-rejected", "-f", "parquet")
    assert no_reviews.returncode == 2 and "has no review/reviews.parquet" in no_reviews.stdout
    done = kgsynth("review", "export", str(run))
    assert done.returncode == 0, done.stdout
    assert "24 review(s) of 12 item(s)" in done.stdout

    exported = kgsynth("export", str(run), "-f", "parquet", "--drop-rejected")
    assert exported.returncode == 0, exported.stdout
    assert "left out 4: rejected by an expert reviewer" in exported.stdout
    card = (run / "dataset" / "README.md").read_text()
    assert "Domain experts reviewed **12** of the" in card
    assert "**66.7%** were accepted (95% Wilson interval 39.1%–86.2%)" in card
    assert "| ann / ben | 12 | 91.7% | 0.80 |" in card
    assert "Those 4 rejected item(s) are not in this dataset" in card
    kept = pl.concat([pl.read_parquet(f, columns=["id"]) for f in (run / "dataset" / "data" / "default").glob("*.parquet")])
    assert not set(ids[:4]) & set(kept["id"].to_list())
    assert json.loads((run / "dataset" / "export.json").read_text())["drop_rejected"] is True

    # a later decision is noticed
    store = ReviewStore.of_run(run)
    store.save("ann", ids[5], "skip")
    store.close()
    again = kgsynth("export", str(run), "-f", "parquet")
    assert "has decisions that reviews.parquet lacks" in again.stdout
    assert "still in this dataset" in (run / "dataset" / "README.md").read_text()


def test_bad_starts_are_one_line_errors(run: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty-run"
    empty.mkdir()
    result = kgsynth("review", str(empty))
    assert result.returncode == 2 and "verified/accepted.parquet: missing; the review app shows verified items" in result.stdout
    assert "Traceback" not in result.stdout

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = kgsynth("review", str(run), "--port", str(port))
    assert result.returncode == 2 and f"port {port} on 127.0.0.1 is in use" in result.stdout

    result = kgsynth("review", str(run), "--host", "0.0.0.0", env={"KGSYNTH_REVIEW_TOKEN": ""})
    assert result.returncode == 2 and "set $KGSYNTH_REVIEW_TOKEN to a secret" in result.stdout
    result = kgsynth("review", str(run), "--reviewer", "a;b")
    assert result.returncode == 2 and "reviewer name 'a;b'" in result.stdout


def test_off_loopback_every_page_needs_the_token(run: Path) -> None:
    item = verified_items(run)["id"][0]
    with ReviewServer(run, "--host", "0.0.0.0", "--reviewer", "ann", env={"KGSYNTH_REVIEW_TOKEN": TOKEN}) as served:
        assert TOKEN not in "".join(served.output)
        url = served.url.replace("0.0.0.0", "127.0.0.1")
        with httpx.Client(base_url=url, follow_redirects=False) as client:
            assert client.get(f"/items/{item}").headers["location"].startswith("/login?next=")
            assert client.post("/api/reviews", json={"item_id": item, "decision": "accept"}).status_code == 401
            assert client.post("/login", data={"token": "wrong", "next": "/"}).status_code == 401
            assert client.get("/static/cytoscape.min.js").status_code == 200  # static files are public
            login = client.post("/login", data={"token": TOKEN, "next": f"/items/{item}"})
            assert login.status_code == 303 and login.headers["location"] == f"/items/{item}"
            assert TOKEN not in login.headers["set-cookie"]
            assert client.get(f"/items/{item}").status_code == 200
            assert client.post("/api/reviews", json={"item_id": item, "decision": "accept"}).status_code == 200
        bearer = httpx.get(f"{url}/api/reviews/{item}", headers={"Authorization": f"Bearer {TOKEN}"})
        assert bearer.json()["review"]["decision"] == "accept"
        rest = served.stop()
    assert TOKEN not in rest


def test_the_vendored_cytoscape_is_served_with_its_licence(shared) -> None:
    server = shared
    script = httpx.get(f"{server.url}/static/cytoscape.min.js")
    assert script.status_code == 200 and "The Cytoscape Consortium" in script.text[:500]
    licence = Path(__file__).resolve().parents[1] / "kgsynth" / "review" / "static" / "cytoscape.LICENSE"
    assert "Permission is hereby granted" in licence.read_text()
    page = httpx.get(server.url + "/")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert not re.search(r"<script[^>]+src=\"https?://", page.text)


def test_a_run_without_its_snapshot_still_shows_its_items(run: Path) -> None:
    """Export needs only the verified items; so does review (the proofs then say why they are missing)."""
    from fastapi.testclient import TestClient

    from kgsynth.review.app import Settings, create_app
    from kgsynth.review.data import load_review_data

    (run / "snapshot").unlink()
    data = load_review_data(run)
    assert data.graph is None
    paths = dict(pl.read_parquet(run / "paths.parquet", columns=["path_id", "pattern"]).iter_rows())
    assert all(paths[p] == pattern for p, pattern in data.items.select("path_id", "pattern").iter_rows())
    store = ReviewStore.of_run(run)
    item = data.items.filter(pl.col("kind") == "mcq").row(0, named=True)
    with TestClient(create_app(data, store, Settings(reviewer="ann"))) as client:
        html = unescape(client.get(f"/items/{item['id']}").text)
    store.close()
    text = re.sub(r"<[^>]+>", "", html)
    assert item["question"] in text and "This run has no snapshot/, so the proofs cannot be shown here" in text
    assert [n["data"]["id"] for n in graph_data(html)["nodes"]] == item["nodes"]
