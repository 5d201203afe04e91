"""The evaluation report: Markdown and a self-contained HTML page built from a real (scripted) run."""

from __future__ import annotations

import asyncio
import base64
import re

import pytest

from swarmrank.errors import ConfigError
from swarmrank.eval.report import markdown_to_html, write_report
from swarmrank.eval.runner import run_eval
from swarmrank.eval.store import EvalRuns
from swarmrank.eval.summary import summarise
from swarmrank.nodes.base import Node, Persona
from swarmrank.nodes.scripted import ScriptedBackend
from swarmrank.round import RoundOptions
from swarmrank.store import Store
from swarmrank.swarm import Swarm

from helpers import EvalTestItem

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DATA_URI = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


Item = EvalTestItem


ITEMS = [Item("q1", "What is 2 + 2?", "4"), Item("q2", "What is 3 + 3?", "6"), Item("q3", "What is 4 + 4?", "8")]


def scripted_swarm(store: Store) -> Swarm:
    """One always-right node, two mostly wrong; one judge that prefers '5', one that knows '6'."""
    nodes = [Node("right", ScriptedBackend(answers={"2 + 2": "4", "3 + 3": "6", "4 + 4": "8"}), Persona(),
                  frozenset({"answer"})),
             Node("wrong1", ScriptedBackend(answers={"*": "5"}), Persona(), frozenset({"answer"})),
             Node("wrong2", ScriptedBackend(answers={"2 + 2": "5", "3 + 3": "6", "*": "5"}), Persona(),
                  frozenset({"answer"})),
             Node("j1", ScriptedBackend(judge="prefer", prefer="5"), Persona(), frozenset({"judge"})),
             Node("j2", ScriptedBackend(judge="truth", truth="6"), Persona(), frozenset({"judge"}))]
    return Swarm(nodes, options=RoundOptions(k=2, rounds=1), store=store)


@pytest.fixture(scope="module")
def run_and_rows(tmp_path_factory):
    """One real run with scripted nodes in a temporary SQLite store, shared by the module's tests."""
    tmp = tmp_path_factory.mktemp("eval")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SWARMRANK_HOME", str(tmp / "home"))
        store = Store(f"sqlite:///{tmp / 'eval.db'}")
        try:
            result = asyncio.run(run_eval(scripted_swarm(store), ITEMS, ["peer-rank", "majority"], store=store,
                                          suite="test"))
            return EvalRuns(store).get(result.run_id), EvalRuns(store).results(result.run_id)
        finally:
            store.close()


REGIME_MAP = """A regime map from simulation.

| judges | accuracy | winner |
|---|---:|:---:|
| 3 | 0.71 | `peer-rank` |
| 5 | 0.80 | **majority** |

```
p_judge >= 0.6
```
"""


@pytest.fixture(scope="module")
def report(run_and_rows, tmp_path_factory):
    run, rows = run_and_rows
    return write_report(run, rows, tmp_path_factory.mktemp("report") / "out",
                        extra_sections=[("Regime map", REGIME_MAP)])


def test_markdown_lists_every_system_with_its_summary_accuracy_and_the_oracle_and_paired_lines(run_and_rows, report):
    run, rows = run_and_rows
    paths = report
    md = paths.markdown.read_text(encoding="utf-8")
    summary = summarise(rows)

    assert paths.markdown.name == "report.md" and paths.html.name == "report.html"
    assert f"# Evaluation report — run {run['run_id']}" in md
    assert "- **Suite:** test" in md and "- **Status:** done" in md
    table = [line for line in md.splitlines() if line.startswith("| ")]
    for s in summary.systems:
        assert any(line.startswith(f"| {s.system} | {s.accuracy.mean:.1%} |") for line in table), s.system
    assert "| majority | 33.3% |" in md
    assert "| node:right | 100.0% |" in md
    # protocols first, then single nodes
    order = [line.split(" | ")[0][2:] for line in table[: len(summary.systems) + 1]][1:]
    assert order == ["majority", "peer-rank", "node:right", "node:wrong1", "node:wrong2"]
    assert "oracle (any node right): 100.0% (3/3;" in md
    assert "best single node: node:right 100.0%" in md
    p = summary.peer_vs_majority
    assert p is not None
    assert (f"peer-rank − majority: {p.diff:+.1%} (95% CI {p.low:+.1%} to {p.high:+.1%}; "
            f"McNemar p = {p.p_value:.3g}; {p.a_only} item(s) only peer-rank got, {p.b_only} only majority got") in md
    assert "majority→oracle gap closed by peer-rank:" in md
    # per-item table: majority says 5 to q1 (wrong) and 6 to q2 (right); 1 of 3 nodes right on q1, 2 of 3 on q2
    assert re.search(r"^\| q1 \| 4 \| .* \| 5 ✗ \| 1/3 \|$", md, re.M)
    assert re.search(r"^\| q2 \| 6 \| .*6 ✓ \| 6 ✓ \| 2/3 \|$", md, re.M)
    assert "![Accuracy against cost per question, by protocol](accuracy_vs_cost.png)" in md
    assert [f.name for f in paths.figures] == ["accuracy_vs_cost.png", "accuracy_by_system.png"]
    assert all(f.read_bytes().startswith(PNG_SIGNATURE) for f in paths.figures)


def test_html_is_self_contained_with_embedded_png_figures(report):
    page = report.html.read_text(encoding="utf-8")

    for forbidden in ("http://", "https://", "<script", "<link", "@import"):
        assert forbidden not in page.lower()
    images = DATA_URI.findall(page)
    assert page.count('<img src="data:image/png;base64,') >= 2 and len(images) >= 2
    for data in images:
        assert base64.b64decode(data, validate=True).startswith(PNG_SIGNATURE)
    assert "<style>" in page and "node:right" in page and "oracle (any node right): 100.0%" in page


def test_html_escapes_item_ids_answers_and_run_fields(run_and_rows, tmp_path):
    run, rows = run_and_rows
    evil = {**rows[0], "item_id": "<b>x</b>", "gold": "a&b", "answer": '"><img src=x onerror=alert(1)>'}
    page = write_report({**run, "suite": "<i>suite</i>"}, [*rows, evil], tmp_path).html.read_text(encoding="utf-8")

    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "<i>suite</i>" not in page and "&lt;i&gt;suite&lt;/i&gt;" in page
    assert "a&amp;b" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_extra_sections_append_to_markdown_and_render_as_html_tables(report):
    md = report.markdown.read_text(encoding="utf-8")
    page = report.html.read_text(encoding="utf-8")

    assert md.rstrip().endswith("```") and "## Regime map\n\nA regime map from simulation." in md
    section = page[page.index("<h2>Regime map</h2>"):]
    assert "<p>A regime map from simulation.</p>" in section
    assert "<table>" in section and "<th>judges</th>" in section
    assert '<th style="text-align:right">accuracy</th>' in section
    assert '<td style="text-align:center"><code>peer-rank</code></td>' in section
    assert "<strong>majority</strong>" in section
    assert "<pre><code>p_judge &gt;= 0.6</code></pre>" in section


def test_report_is_deterministic_apart_from_the_figures(run_and_rows, report, tmp_path):
    run, rows = run_and_rows
    first = report
    second = write_report(run, list(reversed(rows)), tmp_path, extra_sections=[("Regime map", REGIME_MAP)])

    assert first.markdown.read_text(encoding="utf-8") == second.markdown.read_text(encoding="utf-8")
    strip = lambda p: DATA_URI.sub("IMG", p.read_text(encoding="utf-8"))  # noqa: E731
    assert strip(first.html) == strip(second.html)


def test_long_runs_collapse_the_per_item_table_and_cap_the_markdown(run_and_rows, tmp_path):
    run, rows = run_and_rows
    many = [{**r, "item_id": f"{r['item_id']}-{k:03d}"} for k in range(30) for r in rows]  # 90 items
    paths = write_report(run, many, tmp_path)
    md, page = paths.markdown.read_text(encoding="utf-8"), paths.html.read_text(encoding="utf-8")

    assert "*First 50 of 90 items; the rest are in report.html.*" in md
    assert "q3-029" not in md and "q3-029" in page
    assert "<details>\n<summary>90 item(s)" in page  # folded: no `open`


def test_empty_rows_or_an_unwritable_directory_raise_a_one_line_config_error(run_and_rows, tmp_path):
    run, rows = run_and_rows
    with pytest.raises(ConfigError, match="has no results to report"):
        write_report(run, [], tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="cannot write the report into") as info:
        write_report(run, rows, blocker / "out")
    assert "\n" not in str(info.value)


def test_markdown_converter_handles_headings_lists_and_keeps_html_out():
    out = markdown_to_html("# Top\n\n- one *a*\n- <two>\n\nplain <script>x</script> text", min_heading=3)
    assert out.splitlines()[0] == "<h3>Top</h3>"
    assert "<ul>\n<li>one <em>a</em></li>\n<li>&lt;two&gt;</li>\n</ul>" in out
    assert "<p>plain &lt;script&gt;x&lt;/script&gt; text</p>" in out


def test_injection_variants_add_a_degradation_figure_and_table(run_and_rows, tmp_path):
    run, rows = run_and_rows
    base = [r for r in rows if r["item_id"] == "q2"]
    # q2's variant: every system that was right on q2 is now wrong
    variant = [{**r, "item_id": "q2#inject-answer", "correct": False} for r in base]
    paths = write_report(run, [*rows, *variant], tmp_path)
    md = paths.markdown.read_text(encoding="utf-8")

    assert [f.name for f in paths.figures] == ["accuracy_vs_cost.png", "accuracy_by_system.png", "degradation.png"]
    assert paths.figures[2].read_bytes().startswith(PNG_SIGNATURE)
    right_on_q2 = {r["system"] for r in base if r["correct"]}
    assert right_on_q2, "the fixture must have a system that is right on q2"
    for r in base:
        drop = "+100.0" if r["system"] in right_on_q2 else "+0.0"
        was = "100.0%" if r["system"] in right_on_q2 else "0.0%"
        assert f"| inject-answer | {r['system']} | 1 | {was} | 0.0% | {drop} |" in md
    # the main table still covers base items only
    assert "- **Items:** 3" in md
    assert len(DATA_URI.findall(paths.html.read_text(encoding="utf-8"))) == 3


def test_simulation_figures_carry_the_regime_map_and_size_curve_with_their_tables(run_and_rows, tmp_path):
    from swarmrank.eval import simulate as sim
    from swarmrank.eval.report import simulation_figures

    base = sim.SimParams(questions=12, n_answerers=3, n_judges=2)
    cells = sim.sweep(base, judge_discrimination=[0.5, 1.0], correlated_errors=[0.0, 0.9])
    sizes = sim.size_curve(base, [3, 5])
    figures = simulation_figures(cells, sizes)

    assert [f.name for f in figures] == ["regime_map.png", "size_curve.png"]
    assert all(f.png.startswith(PNG_SIGNATURE) for f in figures)
    assert figures[0].table == sim.regime_map(cells, "judge_discrimination", "correlated_errors")
    assert figures[1].table == sim.size_table(sizes)
    run, rows = run_and_rows
    paths = write_report(run, rows, tmp_path, extra_figures=figures)
    md = paths.markdown.read_text(encoding="utf-8")
    assert "![Simulation: where peer-rank beats majority (regime map)](regime_map.png)" in md
    assert "| correlated_errors \\ judge_discrimination | 0.5 | 1 |" in md
    assert (tmp_path / "size_curve.png").read_bytes() == figures[1].png
    page = paths.html.read_text(encoding="utf-8")
    assert len(DATA_URI.findall(page)) == 4
    assert "<th style=\"text-align:right\">answerers</th>" in page


@pytest.mark.parametrize("name", ["accuracy_vs_cost.png", "../escape.png", "plot.svg"])
def test_extra_figures_need_distinct_plain_png_names(run_and_rows, tmp_path, name):
    from swarmrank.eval.report import Figure

    run, rows = run_and_rows
    with pytest.raises(ConfigError, match="distinct plain .png"):
        write_report(run, rows, tmp_path, extra_figures=[Figure(name, "x", PNG_SIGNATURE)])
    assert not (tmp_path / "report.md").exists()


def test_each_items_answers_link_to_their_rounds_trace(run_and_rows, tmp_path):
    run, rows = run_and_rows
    from swarmrank.eval.report import ROUND_LINK

    paths = write_report(run, rows, tmp_path / "linked", round_link=ROUND_LINK)
    html, md = paths.html.read_text(), paths.markdown.read_text()
    for row in rows:
        if not row["system"].startswith("node:"):
            link = f"http://127.0.0.1:8000/dashboard#round={row['round_id']}"
            assert f'<a href="{link}"' in html and f"]({link})" in md
    custom = write_report(run, rows, tmp_path / "custom", round_link="https://swarm.example/dashboard#round={round_id}")
    assert "https://swarm.example/dashboard#round=" in custom.html.read_text()
    plain = write_report(run, rows, tmp_path / "plain", round_link=None)
    assert "#round=" not in plain.html.read_text() and "#round=" not in plain.markdown.read_text()
    with pytest.raises(ConfigError, match="needs a {round_id} placeholder"):
        write_report(run, rows, tmp_path / "bad", round_link="https://x/")
    for broken in ("https://x/{round_id}/{other}", "https://x/{round_id}{", "https://x/{round_id}/{0}"):
        with pytest.raises(ConfigError, match="is not a template with only {round_id} in it"):
            write_report(run, rows, tmp_path / "bad", round_link=broken)
    braces = write_report(run, rows, tmp_path / "braces", round_link="https://x/{{v}}/{round_id}")
    assert "https://x/{v}/" in braces.markdown.read_text()


def test_accuracy_vs_cost_labels_never_overlap_even_when_the_points_coincide(run_and_rows):
    from swarmrank.eval.metrics import accuracy
    from swarmrank.eval.report import _accuracy_vs_cost_figure, _View
    from swarmrank.eval.summary import Summary, SystemSummary

    # eight systems on nearly the same spot: the old fixed offset drew every label on top of the others
    systems = [SystemSummary(system=name, accuracy=accuracy([True, False, True]), calls=4.0, judge_calls=0.0,
                             prompt_tokens=100.0 + k, completion_tokens=20.0, seconds=1.0)
               for k, name in enumerate(["peer-rank", "majority", "weighted-vote", "ahead-by-k", "council", "debate",
                                         "node:a", "node:b"])]
    summary = Summary(items=3, systems=systems, oracle=None, best_node=None, peer_vs_majority=None, gap_closed=None)
    run, rows = run_and_rows
    view = _View.build(run, rows, summarise(rows))
    view = _View(**{**view.__dict__, "summary": summary, "protocols": [s.system for s in systems[:6]]})
    fig = _accuracy_vs_cost_figure(view)
    renderer = fig.canvas.get_renderer()
    (ax,) = fig.axes
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    assert len(boxes) == 8
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
