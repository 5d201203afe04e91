"""Write an evaluation run up as a Markdown report and a self-contained HTML page.

:func:`write_report` takes a run (as :meth:`swarmrank.eval.store.EvalRuns.get` returns it) and its
result rows (:meth:`~swarmrank.eval.store.EvalRuns.results`), summarises them with
:func:`swarmrank.eval.summary.summarise`, and writes into ``out_dir``:

* ``report.md`` — the header, the systems table (protocols first, then single nodes), the oracle
  and best single node, peer-rank against majority (paired), the figures (linked as PNG files) and
  a per-item table (the first :data:`MD_ITEM_ROWS` items);
* ``report.html`` — the same content in one file, from the Jinja template ``templates/report.html``:
  inline CSS, figures embedded as base64 PNG data URIs, no scripts and no external URLs; the
  per-item table folds into ``<details>`` when it is long;
* ``accuracy_vs_cost.png`` and ``accuracy_by_system.png`` — the two figures every run gets;
  ``degradation.png`` and a degradation table when the run has injection variants; any
  :class:`Figure` the caller passes (``swarmrank report --simulate`` adds the regime map and the
  accuracy-vs-swarm-size curve from :mod:`swarmrank.eval.simulate`).

Callers may append Markdown sections (``extra_sections``, e.g. a regime map from simulation); they
go into the Markdown as they are and into the HTML through a small converter that knows headings,
paragraphs, bullet lists, pipe tables, fenced code blocks and inline code / bold / italics.

All text that reaches the HTML is escaped. The output depends only on the inputs (the embedded PNG
bytes aside); matplotlib is imported only when a figure is drawn, and never through pyplot, so no
global backend is switched.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from swarmrank.errors import ConfigError
from swarmrank.eval.summary import Summary, SystemSummary, summarise

__all__ = [
    "Figure",
    "ReportPaths",
    "markdown_to_html",
    "plot_regime_map",
    "plot_size_curve",
    "simulation_figures",
    "write_report",
]

#: Per-item rows shown in ``report.md``; the rest are counted in a note.
MD_ITEM_ROWS = 50
#: Per-item rows written into ``report.html`` at most.
HTML_ITEM_ROWS = 2000
#: Above this many items the HTML per-item table starts folded (``<details>`` without ``open``).
HTML_OPEN_ITEMS = 25
#: Answers longer than this are cut (with an ellipsis) in the per-item tables.
ANSWER_CHARS = 60
#: Where a round's trace is, by default: the dashboard of ``swarmrank serve`` on this machine.
ROUND_LINK = "http://127.0.0.1:8000/dashboard#round={round_id}"

_FIGURES = (("accuracy_vs_cost.png", "Accuracy against cost per question, by protocol"),
            ("accuracy_by_system.png", "Accuracy of every system with 95% CI"))
_NODE_COLOUR = "#9e9e9e"
_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
            "#bcbd22", "#7f7f7f")


@dataclass(frozen=True)
class Figure:
    """A PNG figure for the report: its file name, caption, and an optional Markdown body shown
    under it (a table with the same numbers, so the report reads without images)."""

    name: str
    caption: str
    png: bytes
    table: str = ""


@dataclass(frozen=True)
class ReportPaths:
    """Where :func:`write_report` put its files."""

    markdown: Path
    html: Path
    figures: list[Path]


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def _check_round_link(template: str) -> None:
    """A round-link template must name ``{round_id}`` and nothing else that ``str.format`` would fill."""
    if "{round_id}" not in template:
        raise ConfigError(f"the round link {template!r} needs a {{round_id}} placeholder")
    try:
        template.format(round_id="0")
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise ConfigError(f"the round link {template!r} is not a template with only {{round_id}} in it ({exc!r}); "
                          "write a literal brace as {{ or }}") from None


def write_report(run: dict[str, Any], rows: list[dict[str, Any]], out_dir: Path, *,
                 extra_sections: Sequence[tuple[str, str]] = (),
                 extra_figures: Sequence[Figure] = (), round_link: str | None = None) -> ReportPaths:
    """Write ``report.md``, ``report.html`` and the figures for one evaluation run into ``out_dir``.

    Each protocol's answer in the per-item tables links to its round's trace: ``round_link`` with
    ``{round_id}`` filled in, e.g. :data:`ROUND_LINK` (the dashboard of ``swarmrank serve`` on this machine,
    what ``swarmrank report`` uses); None (the default) writes no links, so the page names no URL at all.

    Raises :class:`~swarmrank.errors.ConfigError` when there are no rows or ``out_dir`` cannot be
    created or written.
    """
    run_id = str(run.get("run_id", "?"))
    if not rows:
        raise ConfigError(f"eval run {run_id} has no results to report")
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot write the report into {out_dir}: {_reason(exc)}") from None
    summary = summarise(rows)
    if round_link is not None:
        _check_round_link(round_link)
    view = _View.build(run, rows, summary, round_link)
    sections = [(str(title), str(body)) for title, body in extra_sections]

    figures = [Figure(name, caption, png) for (name, caption), png in
               zip(_FIGURES, (_plot_accuracy_vs_cost(view), _plot_accuracy_by_system(view)))]
    if summary.degradation:
        figures.append(Figure("degradation.png", "Accuracy on base items and on their injection variants",
                              _plot_degradation(summary), _degradation_table(summary)))
    figures += list(extra_figures)
    names = [f.name for f in figures]
    for f in figures:
        if names.count(f.name) > 1 or Path(f.name).name != f.name or not f.name.endswith(".png"):
            raise ConfigError(f"report figure names must be distinct plain .png file names, got {f.name!r}")
    markdown = _render_markdown(view, sections, figures)
    page = _render_html(view, sections, figures)

    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    fig_paths = [out_dir / f.name for f in figures]
    try:
        for path, f in zip(fig_paths, figures):
            path.write_bytes(f.png)
        md_path.write_text(markdown, encoding="utf-8")
        html_path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write the report into {out_dir}: {_reason(exc)}") from None
    return ReportPaths(markdown=md_path, html=html_path, figures=fig_paths)


def _reason(exc: OSError) -> str:
    return " ".join(str(exc.strerror or exc).split())


# --------------------------------------------------------------------------------------------
# What the report says, formatted once for both renderers
# --------------------------------------------------------------------------------------------

_SYSTEM_HEADERS = ["system", "accuracy", "95% CI", "correct", "calls/q", "judge calls/q", "tokens/q", "s/q"]


def _is_node(system: str) -> bool:
    return system.startswith("node:")


def _tokens(s: SystemSummary) -> float:
    return s.prompt_tokens + s.completion_tokens


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _cut(text: str, limit: int = ANSWER_CHARS) -> str:
    text = _one_line(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _date(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    return "unknown" if value is None else str(value)


@dataclass(frozen=True)
class _View:
    run_id: str
    title: str
    meta: list[tuple[str, str]]
    summary: Summary
    system_rows: list[list[str]]
    system_is_node: list[bool]
    oracle_line: str | None
    paired_line: str | None
    gap_line: str | None
    protocols: list[str]
    item_headers: list[str]
    item_rows: list[list[str]]
    item_marks: list[list[bool | None]]  # per protocol column: correct, wrong, or missing
    item_links: list[list[str | None]]  # per protocol column: where the round's trace is

    @classmethod
    def build(cls, run: dict[str, Any], rows: Sequence[dict[str, Any]], summary: Summary,
              round_link: str | None = None) -> _View:
        run_id = str(run.get("run_id", "?"))
        protocols_run = run.get("protocols") or []
        meta = [("Run", run_id), ("Suite", str(run.get("suite", "?"))), ("Swarm", str(run.get("swarm", "?"))),
                ("Date", _date(run.get("created_at"))), ("Status", str(run.get("status", "?"))),
                ("Items", str(summary.items)),
                ("Protocols", ", ".join(str(p) for p in protocols_run) or "-")]

        system_rows, is_node = [], []
        for s in summary.systems:
            a = s.accuracy
            system_rows.append([s.system, f"{a.mean:.1%}", f"{a.low:.1%}–{a.high:.1%}", f"{a.correct}/{a.total}",
                                f"{s.calls:.1f}", f"{s.judge_calls:.1f}", f"{_tokens(s):.0f}", f"{s.seconds:.2f}"])
            is_node.append(_is_node(s.system))

        oracle_line = None
        if summary.oracle is not None and summary.best_node is not None:
            o = summary.oracle
            oracle_line = (f"oracle (any node right): {o.mean:.1%} ({o.correct}/{o.total}; 95% CI "
                           f"{o.low:.1%}–{o.high:.1%}); best single node: {summary.best_node[0]} "
                           f"{summary.best_node[1]:.1%}")
        paired_line = gap_line = None
        p = summary.peer_vs_majority
        if p is not None:
            paired_line = (f"peer-rank − majority: {p.diff:+.1%} (95% CI {p.low:+.1%} to {p.high:+.1%}; "
                           f"McNemar p = {p.p_value:.3g}; {p.a_only} item(s) only peer-rank got, "
                           f"{p.b_only} only majority got; {p.n} item(s))")
            if summary.gap_closed is not None:
                gap = f"{summary.gap_closed:.0%}"
            elif summary.oracle is None:
                gap = "n/a (no single-node results)"
            else:
                gap = "n/a (oracle equals majority)"
            gap_line = f"majority→oracle gap closed by peer-rank: {gap}"

        protocols = [s.system for s in summary.systems if not _is_node(s.system)]
        nodes = [s.system for s in summary.systems if _is_node(s.system)]
        by_item: dict[str, dict[str, dict[str, Any]]] = {}
        for row in rows:
            by_item.setdefault(str(row["item_id"]), {})[str(row["system"])] = row
        item_headers = ["item", "gold", *protocols] + (["nodes right"] if nodes else [])
        item_rows, item_marks, item_links = [], [], []
        for item_id in sorted(by_item):
            per = by_item[item_id]
            gold = next(iter(per.values())).get("gold")
            cells = [item_id, _cut("" if gold is None else str(gold))]
            marks: list[bool | None] = []
            links: list[str | None] = []
            for system in protocols:
                result = per.get(system)
                round_id = result.get("round_id") if result is not None else None
                links.append(round_link.format(round_id=round_id) if round_link and round_id else None)
                if result is None:
                    cells.append("–")
                    marks.append(None)
                    continue
                answer = "(no answer)" if result.get("answer") is None else _cut(str(result["answer"]))
                ok = bool(result.get("correct"))
                cells.append(f"{answer} {'✓' if ok else '✗'}")
                marks.append(ok)
            if nodes:
                right = sum(1 for n in nodes if n in per and per[n].get("correct"))
                cells.append(f"{right}/{len(nodes)}")
            item_rows.append(cells)
            item_marks.append(marks)
            item_links.append(links)

        return cls(run_id=run_id, title=f"Evaluation report — run {run_id}", meta=meta, summary=summary,
                   system_rows=system_rows, system_is_node=is_node, oracle_line=oracle_line,
                   paired_line=paired_line, gap_line=gap_line, protocols=protocols,
                   item_headers=item_headers, item_rows=item_rows, item_marks=item_marks, item_links=item_links)

    def colour(self, system: str) -> str:
        if _is_node(system):
            return _NODE_COLOUR
        return _PALETTE[self.protocols.index(system) % len(_PALETTE)]


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return _one_line(text).replace("|", "\\|")


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, raw: bool = False) -> str:
    """A pipe table; with ``raw`` the cells are already Markdown (escaped, links written)."""
    lines = ["| " + " | ".join(_md_cell(h) for h in headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(c if raw and c.startswith("[") else _md_cell(c) for c in row) + " |"
              for row in rows]
    return "\n".join(lines)


def _render_markdown(view: _View, sections: Sequence[tuple[str, str]], figures: Sequence[Figure]) -> str:
    out = [f"# {view.title}", ""]
    out += [f"- **{k}:** {_one_line(v)}" for k, v in view.meta]
    out += ["", "## Systems", "", "Protocols first, then single nodes (`node:…`); costs are means per question.", ""]
    out += [_md_table(_SYSTEM_HEADERS, view.system_rows), ""]
    if view.oracle_line is not None or view.paired_line is not None:
        out += ["## Oracle and peer-rank vs majority", ""]
        out += [f"- {line}" for line in (view.oracle_line, view.paired_line, view.gap_line) if line is not None]
        out += [""]
    out += ["## Figures", ""]
    for f in figures:
        out += [f"![{f.caption}]({f.name})", ""]
        if f.table:
            out += [f.table.strip("\n"), ""]
    out += ["## Per-item results", ""]
    shown = view.item_rows[:MD_ITEM_ROWS]
    n_prot = len(view.protocols)
    linked = [[*cells[:2], *(f"[{_md_cell(c)}]({link})" if link else c
                             for c, link in zip(cells[2:2 + n_prot], links)), *cells[2 + n_prot:]]
              for cells, links in zip(shown, view.item_links)]
    out += [_md_table(view.item_headers, linked, raw=True), ""]
    if len(view.item_rows) > len(shown):
        out += [f"*First {len(shown)} of {len(view.item_rows)} items; the rest are in report.html.*", ""]
    for title, body in sections:
        out += [f"## {_one_line(title)}", "", body.strip("\n"), ""]
    return "\n".join(out).rstrip("\n") + "\n"


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


@lru_cache(maxsize=1)
def _template() -> Any:
    """The page template (``templates/report.html``), autoescaped."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("swarmrank.eval", "templates"), autoescape=True, trim_blocks=True,
                      lstrip_blocks=True, keep_trailing_newline=True, undefined=StrictUndefined)
    return env.get_template("report.html")


def _render_html(view: _View, sections: Sequence[tuple[str, str]], figures: Sequence[Figure]) -> str:
    n_prot = len(view.protocols)
    item_rows = []
    for cells, marks, links in zip(view.item_rows[:HTML_ITEM_ROWS], view.item_marks, view.item_links):
        row: list[tuple[str, str, str | None]] = [(cells[0], "", None), (cells[1], "", None)]
        row += [(cell, "missing" if mark is None else "ok" if mark else "bad", link)
                for cell, mark, link in zip(cells[2:2 + n_prot], marks, links)]
        row += [(cell, "num", None) for cell in cells[2 + n_prot:]]
        item_rows.append(row)
    n = len(view.item_rows)
    return str(_template().render(
        view=view,
        system_headers=_SYSTEM_HEADERS,
        system_rows=list(zip(view.system_rows, view.system_is_node)),
        summary_lines=[line for line in (view.oracle_line, view.paired_line, view.gap_line) if line is not None],
        figures=[{"data": base64.b64encode(f.png).decode("ascii"), "caption": f.caption,
                  "table": markdown_to_html(f.table, min_heading=3) if f.table else ""} for f in figures],
        item_rows=item_rows, item_count=n, items_open=n <= HTML_OPEN_ITEMS, item_limit=HTML_ITEM_ROWS,
        sections=[(_one_line(title), markdown_to_html(body, min_heading=3)) for title, body in sections],
    ))


# --------------------------------------------------------------------------------------------
# A tiny Markdown → HTML converter (for extra sections)
# --------------------------------------------------------------------------------------------

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_TABLE_SEP = re.compile(r"^\s*\|?\s*:?-{1,}:?\s*(\|\s*:?-{1,}:?\s*)*\|?\s*$")
_BULLET = re.compile(r"^\s*[-*+]\s+(.*)$")


def _inline(text: str) -> str:
    """Escape, then render `code`, **bold** and *italics* (nothing else, in particular no links)."""
    parts = re.split(r"(`[^`]+`)", text)
    out = []
    for part in parts:
        if len(part) >= 2 and part.startswith("`") and part.endswith("`"):
            out.append(f"<code>{_e(part[1:-1])}</code>")
            continue
        s = _e(part)
        s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
        s = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<em>\1</em>", s)
        out.append(s)
    return "".join(out)


def _split_row(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    cells = re.split(r"(?<!\\)\|", line)
    return [c.strip().replace("\\|", "|") for c in cells]


def _align(sep: str) -> str:
    sep = sep.strip()
    if sep.startswith(":") and sep.endswith(":"):
        return "center"
    if sep.endswith(":"):
        return "right"
    return ""


def markdown_to_html(text: str, *, min_heading: int = 1) -> str:
    """Convert simple Markdown to escaped HTML: ATX headings (levels below ``min_heading`` are
    raised to it), paragraphs, ``-``/``*`` bullet lists, pipe tables (with a ``|---|`` line under
    the header; ``:--:``/``--:`` alignment) and fenced code blocks. Inline: code, bold, italics."""
    lines = text.replace("\r\n", "\n").split("\n")
    out: list[str] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            out.append("<p>" + _inline(" ".join(s.strip() for s in para)) + "</p>")
            para.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            flush()
            marker, code = fence.group(1), []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(marker):
                code.append(lines[i])
                i += 1
            out.append("<pre><code>" + _e("\n".join(code)) + "</code></pre>")
            i += 1
            continue
        if not line.strip():
            flush()
            i += 1
            continue
        heading = _HEADING.match(line)
        if heading:
            flush()
            level = min(6, max(min_heading, len(heading.group(1))))
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
            i += 1
            continue
        if "|" in line and i + 1 < len(lines) and _TABLE_SEP.match(lines[i + 1]) and "-" in lines[i + 1]:
            flush()
            headers = _split_row(line)
            aligns = [_align(s) for s in _split_row(lines[i + 1])]
            aligns += [""] * (len(headers) - len(aligns))
            i += 2
            body = []
            while i < len(lines) and lines[i].strip() and "|" in lines[i]:
                cells = _split_row(lines[i])
                cells = (cells + [""] * len(headers))[: len(headers)]
                body.append(cells)
                i += 1

            def cell(tag: str, content: str, k: int, aligns: list[str] = aligns) -> str:
                style = f' style="text-align:{aligns[k]}"' if aligns[k] else ""
                return f"<{tag}{style}>{_inline(content)}</{tag}>"

            head = "<tr>" + "".join(cell("th", h, k) for k, h in enumerate(headers)) + "</tr>"
            rows = ["<tr>" + "".join(cell("td", c, k) for k, c in enumerate(r)) + "</tr>" for r in body]
            out.append(f"<table>\n<thead>{head}</thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>")
            continue
        if _BULLET.match(line):
            flush()
            items = []
            while i < len(lines) and (m := _BULLET.match(lines[i])):
                items.append(f"<li>{_inline(m.group(1))}</li>")
                i += 1
            out.append("<ul>\n" + "\n".join(items) + "\n</ul>")
            continue
        para.append(line)
        i += 1
    flush()
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# Figures (matplotlib, imported lazily; Agg canvas, no pyplot)
# --------------------------------------------------------------------------------------------


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _percent_axis(axis: Any) -> None:
    from matplotlib.ticker import PercentFormatter

    axis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))


def _whiskers(systems: Sequence[SystemSummary]) -> list[list[float]]:
    return [[max(0.0, s.accuracy.mean - s.accuracy.low) for s in systems],
            [max(0.0, s.accuracy.high - s.accuracy.mean) for s in systems]]


def _place_labels(fig: Any, ax: Any, points: Sequence[tuple[float, float, str, str]]) -> list[Any]:
    """Label each point where its label overlaps no label placed before it (nor leaves the axes):
    candidate offsets are tried nearest first, a short leader line joins a label set further away."""
    fig.canvas.draw()  # final layout, so display coordinates are right
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    placed: list[Any] = []
    texts = []
    offsets = [(6, 4), (6, -12), (-6, 4), (-6, -12)] + [(dx, dy) for r in (18, 30, 42, 54, 66)
                                                        for dx, dy in ((6, r), (6, -r - 8), (-6, r), (-6, -r - 8))]
    for x, y, label, colour in points:
        chosen = None
        for dx, dy in offsets:
            far = abs(dy) > 14
            text = ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=8, color=colour,
                               ha="left" if dx > 0 else "right",
                               arrowprops={"arrowstyle": "-", "color": "#bbb", "lw": 0.6} if far else None)
            box = text.get_window_extent(renderer)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if inside and not any(box.overlaps(other) for other in placed):
                chosen = (text, box)
                break
            text.remove()
        if chosen is None:  # nowhere free: the first place, clipped if it must be
            text = ax.annotate(label, (x, y), xytext=offsets[0], textcoords="offset points", fontsize=8, color=colour)
            chosen = (text, text.get_window_extent(renderer))
        placed.append(chosen[1])
        texts.append(chosen[0])
    fig.set_layout_engine("none")  # keep the layout the labels were placed in when the figure is saved
    return texts


def _plot_accuracy_vs_cost(view: _View) -> bytes:
    return _png(_accuracy_vs_cost_figure(view))


def _accuracy_vs_cost_figure(view: _View) -> Any:
    """Accuracy (with 95% CI) against tokens per question for every protocol; single nodes as grey
    reference points; the oracle as a dashed line. Labels are placed so that none overlaps another."""
    summary = view.summary
    protocols = [s for s in summary.systems if not _is_node(s.system)]
    nodes = [s for s in summary.systems if _is_node(s.system)]
    fig = _figure(6.8, 4.4)
    ax = fig.add_subplot()
    for group, marker, size in ((nodes, "o", 5), (protocols, "D", 7)):
        for s in group:
            colour = view.colour(s.system)
            lo, hi = _whiskers([s])
            ax.errorbar([_tokens(s)], [s.accuracy.mean], yerr=[lo, hi], fmt=marker, color=colour,
                        markersize=size, capsize=3, elinewidth=1.2, alpha=0.75 if _is_node(s.system) else 1.0)
    if summary.oracle is not None:
        ax.axhline(summary.oracle.mean, color="#555", linestyle="--", linewidth=1,
                   label=f"oracle {summary.oracle.mean:.1%}")
        ax.legend(loc="best", fontsize=8, frameon=True)
    xs = [_tokens(s) for s in summary.systems]
    if xs and min(xs) > 0 and max(xs) / min(xs) > 10:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("tokens per question (log scale)")
    else:
        ax.set_xlabel("tokens per question")
        if max(xs, default=0.0) == 0:
            ax.set_xlim(-1, 1)
    ax.set_ylim(-0.03, 1.08)
    _percent_axis(ax.yaxis)
    ax.set_ylabel("accuracy (95% CI)")
    ax.set_title(f"Accuracy vs cost — {len(protocols)} protocol(s), {summary.items} item(s)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.margins(x=0.15)
    # protocols first: they get the nearest places
    _place_labels(fig, ax, [(_tokens(s), s.accuracy.mean, s.system, "#666" if _is_node(s.system) else "#222")
                            for s in (*protocols, *nodes)])
    return fig


def _plot_accuracy_by_system(view: _View) -> bytes:
    """Horizontal bars of accuracy with 95% CI whiskers; protocols on top, single nodes greyed."""
    systems = view.summary.systems
    n = len(systems)
    fig = _figure(6.8, max(2.2, 0.38 * n + 1.3))
    ax = fig.add_subplot()
    ys = list(range(n))[::-1]
    means = [s.accuracy.mean for s in systems]
    ax.barh(ys, means, color=[view.colour(s.system) for s in systems], height=0.65,
            xerr=_whiskers(systems), error_kw={"ecolor": "#333", "capsize": 3, "elinewidth": 1})
    for y, s in zip(ys, systems):
        ax.text(min(s.accuracy.high, 1.0) + 0.015, y, f"{s.accuracy.mean:.1%}", va="center", fontsize=8,
                color="#666" if _is_node(s.system) else "#222")
    ax.set_yticks(ys, [s.system for s in systems], fontsize=8)
    for label, s in zip(ax.get_yticklabels(), systems):
        if _is_node(s.system):
            label.set_color("#777")
    title = f"Accuracy by system — {view.summary.items} item(s)"
    if view.summary.oracle is not None:
        ax.axvline(view.summary.oracle.mean, color="#555", linestyle="--", linewidth=1)
        title += f"; dashed: oracle {view.summary.oracle.mean:.1%}"
    ax.set_xlim(0, 1.12)
    _percent_axis(ax.xaxis)
    ax.set_xlabel("accuracy (95% CI)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
    if n:
        ax.set_ylim(-0.6, n - 0.4)
    return _png(fig)


def _degradation_table(summary: Summary) -> str:
    lines = ["| variant | system | items | base | variant | drop (points) |", "|---|---|---:|---:|---:|---:|"]
    for d in summary.degradation:
        lines.append(f"| {d.kind} | {d.system} | {d.items} | {d.base:.1%} | {d.variant:.1%} | "
                     f"{round(100 * d.drop, 1) + 0.0:+.1f} |")
    return "\n".join(lines)


def _plot_degradation(summary: Summary) -> bytes:
    """Grouped bars per system: accuracy on the base items, then on each variant kind."""
    kinds = list(dict.fromkeys(d.kind for d in summary.degradation))
    systems = list(dict.fromkeys(d.system for d in summary.degradation))
    base = {d.system: d.base for d in summary.degradation}
    value = {(d.kind, d.system): d.variant for d in summary.degradation}
    series = [("base", [base[s] for s in systems])]
    series += [(k, [value.get((k, s), float("nan")) for s in systems]) for k in kinds]
    fig = _figure(max(5.0, 0.9 * len(systems) + 2.5), 4.0)
    ax = fig.add_subplot()
    width = 0.8 / len(series)
    for i, (label, values) in enumerate(series):
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(systems))]
        ax.bar(xs, values, width=width, label=label, color=_PALETTE[i % len(_PALETTE)])
    ax.set_xticks(range(len(systems)), systems, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    _percent_axis(ax.yaxis)
    ax.set_ylabel("accuracy")
    ax.set_title("Accuracy on base items and under injection / distraction", fontsize=10)
    ax.legend(fontsize=8, ncols=min(4, len(series)))
    ax.grid(True, axis="y", alpha=0.3)
    return _png(fig)


# --------------------------------------------------------------------------------------------
# Simulation figures (swarmrank report --simulate, benchmarks/bench_simulate.py)
# --------------------------------------------------------------------------------------------


def plot_regime_map(grid: Any, *, questions: int) -> bytes:
    """A heatmap of :class:`swarmrank.eval.simulate.RegimeGrid`: ``a`` minus ``b`` in points per
    cell, blue where ``a`` wins, red where it loses; ``*`` marks a 95% paired interval excluding 0."""
    diff = 100 * grid.diff
    sig = grid.significant
    limit = max(1.0, float(abs(diff).max()))
    fig = _figure(1.6 + 0.9 * len(grid.xs), 1.4 + 0.55 * len(grid.ys))
    ax = fig.add_subplot()
    image = ax.imshow(diff, cmap="RdBu", vmin=-limit, vmax=limit, origin="lower", aspect="auto")
    for i in range(len(grid.ys)):
        for j in range(len(grid.xs)):
            label = f"{round(diff[i, j]) + 0.0:+.0f}{'*' if sig[i, j] else ''}"  # + 0.0: no "-0"
            ax.text(j, i, label, ha="center", va="center", fontsize=8,
                    color="white" if abs(diff[i, j]) > 0.6 * limit else "black")
    ax.set_xticks(range(len(grid.xs)), [f"{v:g}" for v in grid.xs])
    ax.set_yticks(range(len(grid.ys)), [f"{v:g}" for v in grid.ys])
    ax.set_xlabel(grid.x.replace("_", " "))
    ax.set_ylabel(grid.y.replace("_", " "))
    ax.set_title(f"peer-rank − majority accuracy (points), {questions} q/cell\n* = 95% paired CI excludes 0",
                 fontsize=9)
    fig.colorbar(image, ax=ax, label="points")
    return _png(fig)


def plot_size_curve(results: Sequence[tuple[Any, Any]]) -> bytes:
    """Accuracy (95% CI) of each protocol against the number of answerers, with the oracle and the
    mean single node, from :func:`swarmrank.eval.simulate.size_curve`."""
    sizes = [p.n_answerers for p, _ in results]
    names = list(results[0][1].protocols) if results else []
    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot()
    for i, name in enumerate(names):
        acc = [r[name].accuracy for _, r in results]
        ax.errorbar(sizes, [a.mean for a in acc],
                    yerr=[[a.mean - a.low for a in acc], [a.high - a.mean for a in acc]],
                    marker="o", capsize=3, label=name, color=_PALETTE[i % len(_PALETTE)])
    ax.plot(sizes, [r.oracle.mean for _, r in results], linestyle="--", color="#555", label="oracle")
    ax.plot(sizes, [r.single for _, r in results], linestyle=":", color=_NODE_COLOUR, label="single node (mean)")
    ax.set_xticks(sizes)
    ax.set_ylim(0, 1.05)
    _percent_axis(ax.yaxis)
    ax.set_xlabel("answerers")
    ax.set_ylabel("accuracy (95% CI)")
    ax.set_title("Accuracy vs swarm size (simulation)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    return _png(fig)


def simulation_figures(regime: Sequence[tuple[Any, Any]], sizes: Sequence[tuple[Any, Any]], *,
                       x: str = "judge_discrimination", y: str = "correlated_errors") -> list[Figure]:
    """The regime-map heatmap and the size curve as report figures, each with its Markdown table."""
    from swarmrank.eval.simulate import regime_grid, regime_map, size_table

    out = []
    if regime:
        questions = regime[0][0].questions
        out.append(Figure("regime_map.png", "Simulation: where peer-rank beats majority (regime map)",
                          plot_regime_map(regime_grid(regime, x, y), questions=questions), regime_map(regime, x, y)))
    if sizes:
        out.append(Figure("size_curve.png", "Simulation: accuracy against swarm size", plot_size_curve(sizes),
                          size_table(sizes)))
    return out
