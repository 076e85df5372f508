"""index.html, checked structurally with the standard library's HTML parser: one self-contained file (no
external URL, inline CSS and script, images as data: URIs), sortable tables with CI bars, the predicted
leaderboard score, the drill-down, and every untrusted text escaped."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest
from report_records import SHIPPED, compared, record, rows

from harness.report import render_html, write_reports
from harness.verdict import Comparison, PredictedScore

WHEN = datetime(2024, 4, 1, 12, 0, tzinfo=timezone.utc)
EVIL = "<script>document.body.innerHTML='PWNED'</script> Rewrite as a poem"
EVIL_NAME = 'mean:<img src=x onerror="alert(1)">'


class Page(HTMLParser):
    """Every start tag with its attributes, the text, and each table as rows of cell texts."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.tables: list[dict] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._table: dict | None = None
        self._head = False
        self._script = 0
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "script":
            self._script += 1
        elif tag == "table":
            self._table = {"class": attributes.get("class") or "", "head": [], "rows": [], "sort": []}
            self.tables.append(self._table)
        elif tag == "thead":
            self._head = True
        elif tag == "tr":
            self._row = []
            self._sort: list[str | None] = []
        elif tag in ("td", "th"):
            self._cell = []
            self._sort.append(attributes.get("data-sort"))

    def handle_endtag(self, tag):
        if tag == "script":
            self._script -= 1
        elif tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._table is not None and self._row is not None:
            if self._head:
                self._table["head"] = self._row
            else:
                self._table["rows"].append(self._row)
                self._table["sort"].append(self._sort)
            self._row = None
        elif tag == "thead":
            self._head = False

    def handle_data(self, data):
        if self._script:
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def table(self, css_class: str) -> dict:
        return next(t for t in self.tables if css_class in t["class"].split())


def history():
    gate = Comparison("no-difference", "not significant after holm", baseline_candidate="mean-prompt",
                      baseline_mean=0.61, delta=-0.021, delta_low=-0.040, delta_high=-0.002, raw_status="regression",
                      p_regression=0.012, p_adjusted=0.036, correction="holm", minimum_detectable_effect=0.0234,
                      wins=40, ties=2, losses=58, design_effect=2.5, small_sample="small suite: 10 rows (< 200)")
    predicted = PredictedScore(0.612, 0.598, 0.627, "isotonic", "probes.csv", 12, loo_mae=0.011)
    records = [record("mean-prompt", suite, mean, run_id=i + 1, predicted_lb=predicted if suite == "leaked" else None)
               for i, (suite, mean) in enumerate(zip(SHIPPED, (0.30, 0.40, 0.20)))]
    records += [record("challenger", suite, mean, run_id=i + 10, baseline=gate if suite == "public" else compared())
                for i, (suite, mean) in enumerate(zip(SHIPPED, (0.35, 0.45, 0.25)))]
    records.append(record(EVIL_NAME, "data/evil.csv", 0.05, run_id=20, suite_kind="file"))
    stored = {10: rows("public", [0.1, 0.6, 0.35], [0.3, 0.5, 0.35], truth=EVIL + " {i}"),
              20: rows("data/evil.csv", [0.05, 0.02], prediction="<marquee>{i}</marquee>")}
    return records, stored


def test_the_file_is_self_contained() -> None:
    records, stored = history()
    page = Page(render_html(records, rows=stored, main_suites=SHIPPED, generated_at=WHEN,
                            histograms={"challenger": b"\x89PNG\r\n\x1a\nfake"}))
    assert [tag for tag, _ in page.tags if tag == "script"] == ["script"]  # the one inline sorting script
    assert all(attrs.get("src") is None for tag, attrs in page.tags if tag == "script")
    assert not [tag for tag, _ in page.tags if tag in ("link", "iframe", "object", "embed", "base")]
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            if name in ("src", "href", "action", "xlink:href"):
                assert value and (value.startswith("#") or value.startswith("data:")), (tag, name, value)
            assert "://" not in (value or "") or name in ("title", "aria-label", "alt", "data-sort"), (tag, name)
    images = [attrs["src"] for tag, attrs in page.tags if tag == "img"]
    assert images == ["data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()]


def test_untrusted_text_is_escaped_everywhere() -> None:
    records, stored = history()
    text = render_html(records, rows=stored, main_suites=SHIPPED, generated_at=WHEN)
    page = Page(text)
    # the prompt and the candidate name are text, never markup
    assert not [attrs for tag, attrs in page.tags if tag == "img" and attrs.get("src") == "x"]
    assert [tag for tag, _ in page.tags if tag == "script"] == ["script"]
    assert "marquee" not in [tag for tag, _ in page.tags]
    all_text = "".join(page.text)
    assert EVIL in all_text and EVIL_NAME in all_text and "<marquee>0</marquee>" in all_text
    assert "&lt;script&gt;document.body" in text and "onerror=&quot;alert(1)&quot;" in text


def test_leaderboard_table_is_sortable_ranked_and_has_ci_bars_and_predictions() -> None:
    records, stored = history()
    text = render_html(records, rows=stored, main_suites=SHIPPED, generated_at=WHEN)
    page = Page(text)
    board = page.table("board")
    assert "sortable" in board["class"].split()
    assert board["head"][:3] == ["#", "candidate", "version"]
    assert board["head"][3:6] == ["public (n=10)", "leaked (n=10)", "synthetic-hard (n=10)"]
    assert board["head"][6:] == ["mean over suites", "predicted LB [CI] ±LOO error"]
    assert [(row[0], row[1]) for row in board["rows"]] == [("1", "challenger"), ("2", "mean-prompt")]
    assert [row[6] for row in board["rows"]] == ["0.350", "0.300"]
    assert board["rows"][1][7] == "0.612 [0.598, 0.627] ±0.011 LOO (from leaked)"
    assert board["rows"][0][7] == "—"
    # numeric sort keys for the score columns, so sorting is by number, not text
    assert [float(row[6]) for row in board["sort"]] == [0.35, 0.3]
    # one SVG CI bar per score cell
    board_html = text[text.index('class="sortable board"'):]
    board_html = board_html[:board_html.index("</table>")]
    assert board_html.count("<svg") == 6
    # ad-hoc runs are in their own table, not in the ranking
    adhoc = next(t for t in page.tables if t["head"][:2] == ["suite", "candidate"])
    assert adhoc["rows"][0][:2] == ["data/evil.csv", EVIL_NAME]


def test_gate_statistics_are_in_the_baselines_table() -> None:
    records, stored = history()
    page = Page(render_html(records, rows=stored, main_suites=SHIPPED, generated_at=WHEN))
    gate = next(t for t in page.tables if "design effect" in t["head"])
    row = next(r for r in gate["rows"] if r[:2] == ["challenger", "public"])
    cells = dict(zip(gate["head"], row))
    assert cells["verdict"] == "≈ no significant difference (regression before holm) (small n)"
    assert cells["p (adjusted)"] == "0.012 → 0.036 (holm)"
    assert (cells["MDE"], cells["W/T/L"], cells["design effect"]) == ("0.023", "40/2/58", "2.50")


def test_drill_down_links_and_rows() -> None:
    records, stored = history()
    page = Page(render_html(records, rows=stored, main_suites=SHIPPED, generated_at=WHEN))
    links = {attrs["href"] for tag, attrs in page.tags if tag == "a"}
    details = {attrs["id"] for tag, attrs in page.tags if tag == "details"}
    assert {"#" + d for d in details} == links and len(details) == 3  # every candidate, every link resolves
    worst = [t for t in page.tables if "rows" in t["class"].split()]
    assert worst[0]["head"] == ["suite", "id", "group", "score", "Δ", "true prompt", "prediction"]
    assert [r[1] for r in worst[0]["rows"]] == ["public-0", "public-2", "public-1"]  # challenger's worst rows
    assert worst[0]["rows"][0][4] == "-0.200" and worst[0]["rows"][0][5] == EVIL + " 0"


def test_write_reports_embeds_the_written_histograms(tmp_path: Path) -> None:
    records, stored = history()
    write_reports(records, tmp_path, rows=stored, main_suites=SHIPPED)
    page = Page((tmp_path / "index.html").read_text(encoding="utf-8"))
    images = [attrs["src"] for tag, attrs in page.tags if tag == "img"]
    assert len(images) == 2  # the two candidates with stored rows
    for source in images:
        assert base64.b64decode(re.sub(r"^data:image/png;base64,", "", source)).startswith(b"\x89PNG\r\n\x1a\n")


# -- widths and accessibility (issue 16 item 8) ---------------------------------------------------------------
FIVE_SUITES = (*SHIPPED, "gemma-4483-public-probe-matched", "synthetic-hard-v2-with-a-long-name")
LONG_NAMES = ("mean:Rewrite the following text so that it sounds more formal and more professional, please",
              "retrieval-knn+mean+lucrarea-ensemble-with-an-unbreakable-descriptive-name", "mean-prompt")


def wide_history():
    """Five suites, long candidate names, differing n (so cells carry n), verdicts and a predicted LB."""
    predicted = PredictedScore(0.612, 0.598, 0.627, "isotonic", "probes.csv", 12, loo_mae=0.011,
                               loo_mae_mean_alone=0.009, extrapolating=True)
    records = [record(name, suite, 0.1 + i / 100 + j / 1000, run_id=10 * i + j, n=100 + i + j,
                      baseline=compared(), predicted_lb=predicted if j == 1 else None)
               for i, name in enumerate(LONG_NAMES) for j, suite in enumerate(FIVE_SUITES)]
    return records, {}


def test_every_table_scrolls_in_its_own_box_and_sortable_headers_carry_aria_sort() -> None:
    records, stored = history()
    text = render_html(records, rows=stored, main_suites=SHIPPED, generated_at=WHEN)
    assert text.count("<table") == text.count('<div class="wide"><table') > 0
    assert "div.wide{overflow-x:auto" in text
    page = Page(text)
    sortable_heads = [attrs for tag, attrs in page.tags if tag == "th"]
    assert sortable_heads and all(attrs.get("aria-sort") in ("none", None) for attrs in sortable_heads)
    board_heads = re.findall(r"<th[ >][^>]*>?", text[text.index('class="sortable board"'):].split("</thead>")[0])
    assert board_heads and all('aria-sort="none"' in head for head in board_heads)
    board = page.table("board")
    challenger = next(row for row in board["rows"] if row[1] == "challenger")
    assert challenger[3].endswith("no significant difference") and challenger[4].endswith("no significant difference")
    assert "the suites every ranked candidate was scored on" in "".join(page.text)


def chromium() -> str | None:
    return next((found for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
                 if (found := shutil.which(name))), None)


#: run in the page after it loads: the page's and each table box's widths, then a click on a sortable header
_MEASURE = """<script>window.addEventListener("load",function(){
var d=document.documentElement,out={page:d.scrollWidth,view:window.innerWidth,boxes:[]};
document.querySelectorAll("div.wide").forEach(function(b){out.boxes.push([b.scrollWidth,b.clientWidth]);});
var heads=Array.prototype.slice.call(document.querySelectorAll("table.board th"));heads[1].click();
out.clicked=heads[1].getAttribute("aria-sort");heads[1].click();out.again=heads[1].getAttribute("aria-sort");
out.others=heads.slice(2).map(function(h){return h.getAttribute("aria-sort");});
document.body.setAttribute("data-layout",JSON.stringify(out));});</script>"""


@pytest.mark.e2e  # a real browser: a few seconds per width
@pytest.mark.parametrize("width", [800, 1280])
def test_the_page_never_scrolls_sideways_in_a_real_browser(tmp_path: Path, width: int) -> None:
    browser = chromium()
    if browser is None:
        pytest.skip("no Chromium installed (apt-get install chromium): the page's layout is not checked in a browser")
    records, stored = wide_history()
    page = render_html(records, rows=stored, main_suites=FIVE_SUITES, generated_at=WHEN)
    path = tmp_path / "index.html"
    path.write_text(page.replace("</body>", _MEASURE + "</body>"), encoding="utf-8")
    dumped = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--window-size={width},900",
                             "--virtual-time-budget=3000", "--dump-dom", path.as_uri()],
                            capture_output=True, text=True, timeout=120, check=True).stdout
    layout = json.loads(html.unescape(re.search(r'data-layout="([^"]*)"', dumped).group(1)))
    assert layout["view"] == width
    assert layout["page"] <= layout["view"], f"the page scrolls sideways: {layout['page']} px in {width} px"
    assert any(scroll > client for scroll, client in layout["boxes"]) == (width == 800)  # the board's own box scrolls
    assert (layout["clicked"], layout["again"]) == ("ascending", "descending")
    assert set(layout["others"]) == {"none"}
