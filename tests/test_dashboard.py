"""The dashboard: its analysis of a round, its JSON endpoints over HTTP, and the page in headless Chromium.

The browser tests need Debian's chromium at /usr/bin/chromium and the ``playwright`` package (its
bundled driver only; no downloaded browser); they are skipped without them. CI installs both.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from swarmrank.config import load_config
from swarmrank.ledger import Ledger
from swarmrank.result import Answer, Candidate, Cost, Judgment, RoundResult
from swarmrank.server import create_key
from swarmrank.server.routes.dashboard import STATIC_TYPES, analyse, static_file
from swarmrank.settings import Settings
from swarmrank.store import Store
from swarmrank.swarm import Swarm

from helpers import node

XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = "<img src=x onerror=alert(2)>"

TRUSTED = """
[swarm]
name = "dash"
[round]
judges_per_pair = 2
[trust]
enabled = true
[models.says42]
backend = "scripted"
answers = { "*" = "42" }
[models.says41]
backend = "scripted"
answers = { "*" = "41" }
[models.says40]
backend = "scripted"
answers = { "*" = "40" }
[models.knows]
backend = "scripted"
judge = "truth"
truth = "42"
[models.biased]
backend = "scripted"
judge = "first"
[[nodes]]
id = "alice"
model = "says42"
roles = ["answer"]
[[nodes]]
id = "bob"
model = "says42"
roles = ["answer"]
[[nodes]]
id = "carol"
model = "says41"
roles = ["answer"]
[[nodes]]
id = "dan"
model = "says40"
roles = ["answer"]
[[nodes]]
id = "judy"
model = "knows"
roles = ["judge"]
[[nodes]]
id = "pat"
model = "biased"
roles = ["judge"]
"""
NODES = ("alice", "bob", "carol", "dan", "judy", "pat")


# -- the analysis ---------------------------------------------------------------------------------


def a_round(judgments: list[Judgment], *, schedule: str = "cluster",
            answers: list[Answer] | None = None) -> RoundResult:
    candidates = [Candidate(answer="42", text="42", nodes=["a", "b"], strength=0.6, log_strength=0.5, stderr=0.25),
                  Candidate(answer="41", text="41", nodes=["c"], strength=0.3, log_strength=-0.2, stderr=None),
                  Candidate(answer="40", text="40", nodes=["d"], strength=0.1)]
    answers = answers or [Answer(node=n, text=v, value=v, candidate=c)
                          for n, v, c in (("a", "42", 0), ("b", "42", 0), ("c", "41", 1), ("d", "40", 2))]
    return RoundResult(round_id="f" * 32, created_at=datetime.now(UTC), question="q", task_type="number",
                       protocol="peer-rank", schedule=schedule, answer="42", winner=0, confidence=0.6,
                       answers=answers, candidates=candidates, judgments=judgments, cost=Cost())


def verdict(judge: str, first: int, second: int, v: str, **kw: Any) -> Judgment:
    return Judgment(judge=judge, first=first, second=second, verdict=v, reasoning=f"{judge} says {v}", **kw)


def test_the_matrix_counts_verdicts_in_both_orders_from_the_rows_side():
    result = a_round([verdict("j1", 0, 1, "A"), verdict("j1", 1, 0, "B"), verdict("j2", 0, 1, "B"),
                      verdict("j2", 1, 0, "U"), verdict("j1", 1, 2, "A"), verdict("j2", 2, 1, "A", failed=True)])
    m = analyse(result).matrix
    assert (m[0][1].wins, m[0][1].losses, m[0][1].ties, m[0][1].total) == (2, 1, 1, 4)
    assert (m[1][0].wins, m[1][0].losses, m[1][0].ties, m[1][0].total) == (1, 2, 1, 4)
    assert m[0][1].share == 0.625 and m[1][0].share == 0.375  # a tie is half a win each way: the cells sum to 1
    assert (m[1][2].wins, m[1][2].total) == (1, 1) and m[2][1].share == 0.0  # the failed call is not counted
    assert m[0][2].total == 0 and m[0][2].share is None and m[0][0].total == 0


def test_strength_intervals_are_log_strength_plus_minus_1_96_stderr_where_known():
    bars = analyse(a_round([])).strengths
    assert bars[0].low == pytest.approx(0.5 - 1.96 * 0.25) and bars[0].high == pytest.approx(0.5 + 1.96 * 0.25)
    assert bars[1].low is None and bars[1].log_strength == -0.2
    assert bars[2].log_strength is None and bars[2].high is None


def test_the_judge_table_has_one_row_per_judge_and_one_column_per_ordered_pair():
    table = analyse(a_round([verdict("j2", 1, 0, "B"), verdict("j1", 0, 1, "A"),
                             verdict("j1", 1, 0, "U", failed=True)])).judges
    assert table.pairs == [(0, 1), (1, 0)]
    assert [r.judge for r in table.rows] == ["j1", "j2"]
    j1, j2 = table.rows
    assert j1.cells[0][0].preferred == 0 and j1.cells[0][0].reasoning == "j1 says A"
    assert j1.cells[1][0].failed and j1.cells[1][0].preferred is None
    assert j2.cells[0] == [] and j2.cells[1][0].preferred == 0


def test_under_the_fortytwo_schedule_items_are_usable_answers_and_strays_are_reported():
    answers = [Answer(node="a", text="42", value="42", candidate=0), Answer(node="x", text="", excluded="empty"),
               Answer(node="c", text="41", value="41", candidate=1)]
    analysis = analyse(a_round([verdict("j", 0, 1, "B"), verdict("j", 0, 5, "A")], schedule="fortytwo",
                               answers=answers))
    assert [(i.label, i.candidate, i.nodes) for i in analysis.items] == [("a: 42", 0, ["a"]), ("c: 41", 1, ["c"])]
    assert analysis.matrix[1][0].wins == 1
    assert analysis.problems == ["1 judgment(s) name items outside the round's 2 and are left out"]


# -- over HTTP ------------------------------------------------------------------------------------


def trusted_swarm(tmp_path: Path, store: Store) -> Swarm:
    """Four answerers (42, 42, 41, 40), a judge that knows 42 and one that always picks A; all admitted."""
    path = tmp_path / "swarm.toml"
    path.write_text(TRUSTED)
    swarm = Swarm.from_config(load_config(path), settings=Settings.from_env(), store=store)
    for node_id in NODES:
        swarm.registry.admit(node_id, passed=True, report={"exam": "skipped in tests"})
    return swarm


def xss_swarm(store: Store) -> Swarm:
    """Answers that are markup, and a judge that always picks the first shown (so there are verdicts)."""
    nodes = [node("evil", {"answer"}, answers={"*": XSS_SCRIPT}), node("worse", {"answer"}, answers={"*": XSS_IMG}),
             node("judge", {"judge"}, judge="first")]
    return Swarm(nodes, store=store, name="xss")


def ask(url: str, key: str | None, question: str, **extra: Any) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {"model": "swarmrank", "messages": [{"role": "user", "content": question}], **extra}
    response = httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["swarmrank"]


@pytest.fixture
def trusted(tmp_path, store, start) -> tuple[str, str, list[str]]:
    """A running server over the trusted swarm with two rounds done: (url, key, round ids oldest first)."""
    key = create_key(store, "dash")[0]
    url = start(trusted_swarm(tmp_path, store), store=store)
    ids = [ask(url, key, q)["round_id"] for q in ("What is 6 × 7?", "What is 40 + 2?")]
    return url, key, ids


def test_rounds_list_newest_first_and_reputation_has_a_series_per_node(trusted, store):
    url, key, ids = trusted
    auth = {"Authorization": f"Bearer {key}"}
    rounds = httpx.get(f"{url}/v1/rounds", params={"limit": 5}, headers=auth).json()["data"]
    assert [r["round_id"] for r in rounds] == ids[::-1]
    assert rounds[0]["question"] == "What is 40 + 2?" and rounds[0]["answer"] == "42" and rounds[0]["calls"] > 4
    assert [r["round_id"] for r in httpx.get(f"{url}/v1/rounds?limit=1", headers=auth).json()["data"]] == ids[-1:]

    rep = httpx.get(f"{url}/v1/reputation", headers=auth).json()
    assert rep["enabled"] is True
    assert [n["node"] for n in rep["nodes"]] == sorted(NODES)
    entries = Ledger(store).entries(kind="reputation")
    for n in rep["nodes"]:
        mine = [e for e in entries if e.payload["node"] == n["node"]]
        assert [(p["seq"], p["round_id"], p["after"]) for p in n["series"]] == \
            [(e.seq, e.payload["round_id"], e.payload["after"]) for e in mine]
        assert [p["round_id"] for p in n["series"]] == ids

    analysis = httpx.get(f"{url}/v1/rounds/{ids[0][:8]}/analysis", headers=auth).json()
    assert analysis["round"]["round_id"] == ids[0]
    assert [i["label"] for i in analysis["items"]] == ["42", "41", "40"]


def test_the_json_endpoints_need_a_key_but_the_page_does_not(trusted):
    url, key, _ = trusted
    for path in ("/v1/rounds", "/v1/reputation", "/v1/rounds/abcd/analysis"):
        response = httpx.get(f"{url}{path}")
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    auth = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{url}/v1/rounds?limit=0", headers=auth).status_code == 400
    missing = httpx.get(f"{url}/v1/rounds/0000000/analysis", headers=auth)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "round_not_found"
    page = httpx.get(f"{url}/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    for name, kind in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        response = httpx.get(f"{url}/dashboard/static/{name}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(kind)
    assert httpx.get(f"{url}/dashboard/static/..%2Fapp.py").status_code == 404
    assert httpx.get(f"{url}/dashboard/static/app.py").status_code == 404


def test_the_page_refers_to_nothing_outside_its_own_origin():
    for name in STATIC_TYPES:
        text = static_file(name).decode()
        urls = re.findall(r"""(?:https?:)?//[^\s"'`)]+""", text)
        assert urls == ["http://www.w3.org/2000/svg"] if name == "dashboard.js" else urls == [], (name, urls)
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text and "document.write" not in text


def test_round_text_never_reaches_the_page_as_markup(tmp_path, store, start):
    url = start(xss_swarm(store), store=store, auth=False)
    info = ask(url, None, f"Repeat this tag {XSS_IMG}", swarmrank={"task_type": "free"})
    page = httpx.get(f"{url}/dashboard").text
    assert "alert" not in page  # the page is static: round text only ever arrives as JSON strings
    analysis = httpx.get(f"{url}/v1/rounds/{info['round_id']}/analysis")
    assert analysis.headers["content-type"] == "application/json"
    texts = [a["text"] for a in analysis.json()["round"]["answers"]]
    assert any(XSS_SCRIPT in t for t in texts) and any(XSS_IMG in t for t in texts)


# -- in the browser -------------------------------------------------------------------------------


def expected_cells(round_json: dict[str, Any]) -> dict[tuple[int, int], tuple[int, int]]:
    """(row, col) → (verdicts preferring row, verdicts on the pair), counted straight from the judgments."""
    out: dict[tuple[int, int], tuple[int, int]] = {}
    for j in round_json["judgments"]:
        if j["failed"]:
            continue
        winner = {"A": j["first"], "B": j["second"]}.get(j["verdict"])
        for row, col in ((j["first"], j["second"]), (j["second"], j["first"])):
            wins, total = out.get((row, col), (0, 0))
            out[(row, col)] = (wins + (winner == row), total + 1)
    return out


def test_the_dashboard_shows_rounds_verdicts_strengths_judges_and_reputation(trusted, page):
    url, key, ids = trusted
    page.goto(f"{url}/dashboard#key={key}")
    page.wait_for_selector("body[data-state=ready]")
    assert key not in page.url  # the key left the address bar for sessionStorage
    assert page.evaluate("sessionStorage.getItem('swarmrank.key')") == key
    rows = page.locator("#rounds tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).get_attribute("data-round") == ids[1]
    assert "What is 40 + 2?" in rows.nth(0).inner_text() and "peer-rank" in rows.nth(0).inner_text()

    rows.nth(1).click()
    page.wait_for_selector("#heatmap g.cell")
    assert page.locator("#round-id").inner_text() == ids[0]
    stored = httpx.get(f"{url}/v1/rounds/{ids[0]}", headers={"Authorization": f"Bearer {key}"}).json()
    assert page.locator("#answers tbody tr").count() == len(stored["answers"]) == 4

    expected = expected_cells(stored)
    assert expected[(0, 1)] == (3, 4) and expected[(1, 2)] == (1, 4)  # judy picks 42 twice; pat always picks A
    cells = page.locator("#heatmap g.cell")
    assert cells.count() == len(stored["candidates"]) ** 2 == 9
    for k in range(cells.count()):
        cell = cells.nth(k)
        row, col = int(cell.get_attribute("data-row")), int(cell.get_attribute("data-col"))
        wins, total = expected.get((row, col), (0, 0))
        assert (int(cell.get_attribute("data-wins")), int(cell.get_attribute("data-total"))) == (wins, total)
        if total:
            assert cell.locator("text.cell-count").text_content() == f"{wins}/{total}"
            ties = sum(1 for j in stored["judgments"] if not j["failed"] and j["verdict"] == "U"
                       and {j["first"], j["second"]} == {row, col})
            assert cell.locator("text.cell-share").text_content() == f"{round(100 * (wins + ties / 2) / total)}%"

    # mirror cells sum to 100% (ties count half each way)
    shares = {(int(c.get_attribute("data-row")), int(c.get_attribute("data-col"))):
              c.locator("text.cell-share").text_content() for c in cells.all() if c.locator("text.cell-share").count()}
    assert all(int(v[:-1]) + int(shares[(b, a)][:-1]) in (99, 100, 101) for (a, b), v in shares.items())
    assert page.locator("#strengths-help").inner_text().startswith("Bar: each candidate's posterior probability")
    assert "Bradley–Terry" not in page.locator("#round h3").all_inner_texts()
    bars = page.locator("#strengths g.strength")
    assert bars.count() == 3
    for k, cand in enumerate(stored["candidates"]):
        assert float(bars.nth(k).get_attribute("data-strength")) == pytest.approx(cand["strength"])
        assert bars.nth(k).locator("line.interval").count() == (cand["stderr"] is not None)
    # peer-rank's evidence aggregation fits no Bradley–Terry standard errors, so no interval is drawn
    assert stored["aggregation"] == "evidence" and page.locator("#strengths line.interval").count() == 0

    judges = page.locator("#judges tbody tr")
    assert sorted(judges.nth(k).get_attribute("data-judge") for k in range(judges.count())) == ["judy", "pat"]
    assert page.locator("#judges details.verdict").count() == len(stored["judgments"])
    first = page.locator("#judges details.verdict").first
    first.locator("summary").click()
    assert first.locator("pre").inner_text() == first.get_attribute("title") != ""

    assert sorted(page.locator("#reputation path.series").evaluate_all("ps => ps.map(p => p.dataset.node)")) == \
        sorted(NODES)
    assert page.locator("#reputation-legend li").count() == len(NODES)
    assert page.locator("#reputation-empty").is_hidden()
    assert page.problems == [] and page.dialogs == []


def test_without_auth_the_page_shows_model_output_as_text_and_explains_missing_reputation(store, start, page):
    url = start(xss_swarm(store), store=store, auth=False)
    info = ask(url, None, f"Repeat this tag {XSS_IMG}", swarmrank={"task_type": "free"})
    page.goto(f"{url}/dashboard#round={info['round_id']}")
    page.wait_for_selector("body[data-state=ready]")
    assert page.locator("#key-form").is_hidden()
    texts = page.locator("#answers pre").all_text_contents()
    assert any(XSS_SCRIPT in t for t in texts) and any(XSS_IMG in t for t in texts)
    assert XSS_IMG in page.locator("#round-facts").inner_text()
    assert page.locator("main script").count() == 0 and page.locator("main img").count() == 0
    assert "Trust is off" in page.locator("#reputation-empty").inner_text()
    assert page.locator("#reputation path.series").count() == 0
    page.wait_for_timeout(200)  # time for any injected handler to have fired
    assert page.dialogs == [] and page.problems == []


def test_with_auth_and_no_key_the_page_asks_for_one_and_a_wrong_one_is_refused(trusted, page):
    url, key, _ = trusted
    page.goto(f"{url}/dashboard")
    page.wait_for_selector("body[data-state=error]")
    assert page.locator("#key-form").is_visible() and page.locator("#rounds tbody tr").count() == 0
    page.fill("#key-input", "sr-wrong")
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#status.error:has-text('key refused')")
    assert page.locator("#key-form").is_visible()
    page.fill("#key-input", key)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("body[data-state=ready]")
    assert page.locator("#key-form").is_hidden() and page.locator("#rounds tbody tr").count() == 2
    # the refused request is the browser's only complaint
    assert page.problems and all("status of 401" in p for p in page.problems), page.problems


def test_the_chosen_round_shows_beside_the_list_not_below_it(trusted, page):
    url, key, ids = trusted
    page.set_viewport_size({"width": 1400, "height": 800})
    page.goto(f"{url}/dashboard#key={key}&round={ids[0]}")
    page.wait_for_selector("#heatmap g.cell")
    listing, detail = page.locator("#rounds-section").bounding_box(), page.locator("#round").bounding_box()
    assert detail["x"] >= listing["x"] + listing["width"] and detail["y"] < 200  # beside, at the top
    page.set_viewport_size({"width": 800, "height": 800})  # narrow: the round comes first, above the list
    listing, detail = page.locator("#rounds-section").bounding_box(), page.locator("#round").bounding_box()
    assert detail["y"] < listing["y"]
    assert page.problems == []
