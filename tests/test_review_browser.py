"""The review page in a real browser: Debian's Chromium, driven by playwright.

Two reviewers walk items with the keyboard (accept, reject with a reason and a note,
skip, next, previous), reload and find their reviews kept; the drawn graph holds the
path's nodes and edges; then `kgsynth review export` and `kgsynth export` put their
figures on the dataset card. Without Chromium (apt-get install -y chromium) or the
playwright package these tests skip and say so; tests/test_review_app.py still runs.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from review_run import ReviewServer, copy_run, kgsynth, review_run, verified_items  # noqa: F401

from kgsynth.review.figures import cohen_kappa, wilson_interval
from kgsynth.review.store import REJECT_REASONS, ReviewStore

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
if CHROMIUM is None:
    pytest.skip(
        "no Chromium executable (`chromium`): install Debian's package with `apt-get install -y chromium` "
        "to run the browser tests", allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (pip install playwright)")

# Without the networking flags, Chromium's background connections are refused on a closed network.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture()
def browser(tmp_path: Path):
    """Launch a fresh Chromium profile per reviewer: `browser("carol")` → a page."""
    with sync_api.sync_playwright() as playwright:
        contexts = []

        def open_page(name: str):
            context = playwright.chromium.launch_persistent_context(
                str(tmp_path / f"profile-{name}"), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
                viewport={"width": 1400, "height": 1000},
            )
            contexts.append(context)
            page = context.new_page()
            page.set_default_timeout(60_000)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.errors = errors
            return page

        yield open_page
        for context in contexts:
            context.close()


def drawn_graph(page) -> tuple[list[str], list[tuple[str, str, str]]]:
    return page.evaluate(
        """() => {
            const cy = window.kgsynthReview.cy;
            return [cy.nodes().map(n => n.id()), cy.edges().map(e => [e.data('source'), e.data('relation'), e.data('target')])];
        }"""
    )


def stored_triples(item: dict) -> list[list[str]]:
    hops = zip(item["nodes"], item["nodes"][1:], item["relations"], item["forward"], strict=False)
    return [[a, r, b] if forward else [b, r, a] for a, b, r, forward in hops]


def press_and_leave(page, *keys: str) -> None:
    """Press keys on the item page and wait for the next item to load."""
    before = page.url
    for key in keys[:-1]:
        page.keyboard.press(key)
    with page.expect_navigation():
        page.keyboard.press(keys[-1])
    assert page.url != before


def test_two_reviewers_walk_items_with_the_keyboard_and_the_card_shows_their_figures(
    review_run: Path, tmp_path: Path, browser  # noqa: F811
) -> None:
    run = copy_run(review_run, tmp_path / "run")
    items = {row["id"]: row for row in verified_items(run).iter_rows(named=True)}
    reasons = list(REJECT_REASONS)
    with ReviewServer(run) as served:
        page = browser("carol")
        page.goto(served.url + "/")
        assert "/reviewer" in page.url  # no --reviewer: the page asks who is reviewing
        page.fill("input[name=reviewer]", "carol")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        with page.expect_navigation():
            page.keyboard.press("Enter")  # start the queue

        # walk ten items: accept, reject with a reason and a note, skip, next without deciding
        plan = ["a", "a", "reject", "a", "s", "a", "a", "reject", "a", "n"]
        expected: dict[str, tuple[str, str | None, str]] = {}
        walked = []
        for step, action in enumerate(plan):
            item_id = page.get_attribute("#item", "data-item-id")
            item = items[item_id]
            walked.append(item_id)
            assert page.inner_text("#question") == item["question"]
            nodes, edges = drawn_graph(page)
            assert nodes == item["nodes"]
            assert edges == stored_triples(item)
            assert page.locator("#graph canvas").count() > 0  # Cytoscape drew it
            if action == "reject":
                note = f"step {step}: the path's second fact is not in the literature"
                page.keyboard.press("r")
                assert page.is_visible("#reject-form")
                page.keyboard.press("3")  # third reason of the fixed list
                page.keyboard.type(note)
                press_and_leave(page, "Enter")
                expected[item_id] = ("reject", reasons[2], note)
            else:
                press_and_leave(page, action)
                if action in ("a", "s"):
                    expected[item_id] = ({"a": "accept", "s": "skip"}[action], None, "")
        # previous goes back one item
        with page.expect_navigation():
            page.keyboard.press("p")
        assert page.get_attribute("#item", "data-item-id") == walked[-1]

        # reload: every decision is still there
        for item_id, (decision, reason, note) in expected.items():
            page.goto(f"{served.url}/items/{item_id}")
            page.reload()
            assert page.get_attribute("#current-decision", "data-decision") == decision
            if note:
                assert note in page.inner_text("#current-decision")
        page.goto(f"{served.url}/items/{walked[-1]}")
        assert page.get_attribute("#current-decision", "data-decision") == ""
        # a reviewer changing their mind keeps the history
        page.goto(f"{served.url}/items/{walked[0]}")
        press_and_leave(page, "r", "1", "Enter")
        page.goto(f"{served.url}/items/{walked[0]}")
        assert "revision 2; earlier: accept" in page.inner_text("#current-decision")
        expected[walked[0]] = ("reject", reasons[0], "")

        # a second reviewer, at the same time, on the same items (with the mouse this time)
        other = browser("dave")
        other.goto(served.url + "/reviewer")
        other.fill("input[name=reviewer]", "dave")
        other.click("button[type=submit]")
        dave: dict[str, str] = {}
        for n, item_id in enumerate(walked[:6]):
            other.goto(f"{served.url}/items/{item_id}")
            with other.expect_navigation():
                if n == 3:
                    other.click("#reject")
                    other.check("input[value=wrong_answer]")
                    other.click("#reject-form button[type=submit]")
                else:
                    other.click("#accept")
            dave[item_id] = "reject" if n == 3 else "accept"
        assert page.errors == [] and other.errors == []
        page.screenshot(path=str(tmp_path / "item.png"), full_page=True)

    store = ReviewStore.of_run(run)
    saved = {r.item_id: (r.decision, r.reason, r.note) for r in map(lambda i: store.get("carol", i), expected) if r}
    assert saved == expected
    assert store.decisions("dave") == dave
    store.close()

    # the card's figures, computed here from the decisions the browsers made
    assert kgsynth("review", "export", str(run)).returncode == 0
    exported = kgsynth("export", str(run), "-f", "parquet")
    assert exported.returncode == 0, exported.stdout
    card = (run / "dataset" / "README.md").read_text()
    on_dataset = {i for i in set(expected) | set(dave) if items[i]["status"] == "accepted"}
    decided = {i for i in on_dataset if expected.get(i, ("skip",))[0] != "skip" or i in dave}
    rejected = {i for i in decided if expected.get(i, ("",))[0] == "reject" or dave.get(i) == "reject"}
    share = (len(decided) - len(rejected)) / len(decided)
    low, high = wilson_interval(len(decided) - len(rejected), len(decided))
    assert f"Domain experts reviewed **{len(decided)}** of the" in card
    assert f"**{share:.1%}** were accepted (95% Wilson interval {low:.1%}–{high:.1%})" in card
    both = sorted(i for i in decided if i in dave and expected.get(i, ("skip",))[0] in ("accept", "reject"))
    kappa = cohen_kappa([expected[i][0] for i in both], [dave[i] for i in both])
    row = re.search(r"\| carol / dave \| (\d+) \| ([\d.]+)% \| (.+?) \|", card)
    assert row and int(row.group(1)) == len(both)
    assert row.group(3) == ("undefined (one decision only)" if kappa is None else f"{kappa:.2f}")
