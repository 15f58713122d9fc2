"""The HTML report in a real browser: Debian's headless Chromium driven by Playwright,
and axe-core (bundled by axe-playwright-python, injected by the test, never fetched)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from conftest import DIMENSIONS, columns_config, run_cli

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-quic"]
HOSTILE = ['<script>window.__pwned = 1</script>Buy now',
           '<img src=x onerror="window.__pwned = 2">Free shipping',
           '{{ 7 * 7 }} and {% raw %} and ${7*7}',
           '"><svg onload="window.__pwned = 3">']
SCREEN = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs chromium")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield instance
        instance.close()


def open_page(browser, report: Path, javascript: bool = True, viewport=SCREEN):
    context = browser.new_context(java_script_enabled=javascript, viewport=viewport)
    page = context.new_page()
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(report.as_uri())
    page.wait_for_load_state("load")
    return page, errors, requests


def top_and_bottom(page, selector: str) -> tuple[float, float]:
    box = page.locator(selector).first.bounding_box()
    return box["y"], box["y"] + box["height"]


@pytest.fixture(scope="module")
def default_report(default_run):
    result, out = default_run
    assert result.returncode in (0, 1), result.stderr
    return out


@pytest.fixture(scope="module")
def degraded_run(tmp_path_factory, scored_rows):
    tmp = tmp_path_factory.mktemp("report")
    frame = scored_rows.copy()
    for d in DIMENSIONS:
        shift = frame.content_type.eq("headline") * 0.6
        frame[f"{d}_cand"] = frame[f"{d}_ref"] + shift
    out = tmp / "run"
    point = {"metric": "exact_agreement", "max_drop": 1.0, "min_rows": 50,  # every drop fails
             "policy": "point", "correction": "none",  # identical 'same': slices too small
             "on_inconclusive": "warn"}                 # to rule out unseen flips only warn
    candidates = [{"name": "cand", "backend": "columns", "columns": "{dimension}_cand"},
                  {"name": "same", "backend": "columns", "columns": "{dimension}_ref"}]
    config = columns_config(tmp, frame, gate=point, candidates=candidates)
    result = run_cli("run", "--config", str(config), "--out", str(out), "--quiet")
    assert result.returncode == 1, result.stderr
    return out


OPEN_ALL = "document.querySelectorAll('details').forEach(d => d.open = true)"
# Boxes whose content is wider than they are (scrolled or clipped away, or spilling out),
# and boxes reaching past the viewport's right edge; SVG internals excluded.
OVERFLOWING = """() => {
  const width = document.documentElement.clientWidth, found = [];
  for (const e of document.querySelectorAll('body *')) {
    if (e.closest('svg') && e.tagName !== 'svg') continue;
    const style = getComputedStyle(e);
    if (style.display === 'none' || style.visibility === 'hidden') continue;
    const box = e.getBoundingClientRect();
    if (box.width <= 1 || box.height <= 1 || box.right <= 0) continue;
    const blockish = !style.display.startsWith('inline') || style.display === 'inline-block';
    const wider = e.scrollWidth > e.clientWidth + 1 && e.clientWidth > 0;
    if ((blockish && wider) || box.right > width + 1) {
      found.push(e.tagName + (e.id ? '#' + e.id : '') + '.' + e.className + ' ' +
                 Math.round(e.scrollWidth) + '/' + Math.round(e.clientWidth) + ' right ' +
                 Math.round(box.right));
    }
  }
  return found;
}"""
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
A4_CONTENT_PX = round((210 - 2 * 12) / 25.4 * 96)  # the print stylesheet's 12 mm margins


def bottom(page, selector: str) -> float:
    return top_and_bottom(page, selector)[1]


@pytest.mark.e2e
def test_default_report_decides_in_the_first_screen(browser, default_report):
    """At 1280x900 on the default run: the verdict, the provenance line, and per
    candidate its decision, what fails and the next command with the real run path."""
    summary = json.loads((default_report / "summary.json").read_text())
    page, errors, requests = open_page(browser, default_report / "report.html")
    assert page.locator("h1").inner_text() == f"Release gate: {summary['verdict'].upper()}"
    provenance = page.locator("#provenance").inner_text()
    for fact in (summary["run"]["id"], summary["sample"]["sha256"][:12],
                 summary["tool"]["version"], "no baseline given", "took"):
        assert fact in provenance, fact
    cards = page.locator("#cards article")
    assert cards.count() == len([s for s in summary["scorers"] if s["role"] == "candidate"])
    for selector in ("#provenance", "#plain-summary", "#cards h2", "#cards .blocking"):
        for i in range(page.locator(selector).count()):
            box = page.locator(selector).nth(i).bounding_box()
            assert box["y"] + box["height"] <= SCREEN["height"], (selector, i)
    text = page.locator("#cards").inner_text()
    assert "RUN_DIR" not in text and "validator recommend" in text
    assert str(default_report.name) in page.locator("#cards .next code").first.inner_text()
    for c in summary["checks"]:  # each candidate's most convincing failure, in words
        if c["verdict"] == "fail":
            assert f"{c['slice']} (" in text and c["dimension"] in text
            break
    assert "underpowered" in text and "rated rows" in text
    cores = summary["cpu"]["cores"]
    if any((s["load_average_1m"] or 0) > cores for s in summary["scorers"]):
        assert bottom(page, "#load-warning") <= SCREEN["height"]
        assert "provisional" in page.locator("#headline").inner_text()
    page.screenshot(path=str(default_report / "report.png"))
    phone, _, _ = open_page(browser, default_report / "report.html", viewport=PHONE)
    phone.screenshot(path=str(default_report / "report-mobile.png"))
    assert errors == [] and all(url.startswith("file://") for url in requests), (errors,
                                                                                 requests)


@pytest.mark.e2e
@pytest.mark.parametrize("viewport", [SCREEN, PHONE], ids=["1280", "390"])
def test_default_report_has_no_overflowing_box(browser, default_report, viewport):
    """Every detail opened: nothing wider than its box at 1280 or 390 (tables turn into
    cards on a phone), and at 1280x900 the page besides the checks table is at most 15
    screens, the table at most 45 px per check (its length grows with the checks: 408
    in the default, a figure and its reason each)."""
    page, _, _ = open_page(browser, default_report / "report.html", viewport=viewport)
    page.evaluate(OPEN_ALL)
    for index in range(1, page.locator(".heat-panel").count() + 1):
        page.locator(f"label[for=heat-tab-{index}]").click()
        assert page.evaluate(OVERFLOWING) == [], index
    assert page.evaluate("document.documentElement.scrollWidth") == viewport["width"]
    height = page.evaluate("document.documentElement.scrollHeight")
    (default_report / f"height-{viewport['width']}.txt").write_text(str(height))
    if viewport is SCREEN:
        table = page.evaluate("document.getElementById('checks').getBoundingClientRect()"
                              ".height")
        checks = page.locator("#checks tbody.check").count()
        assert checks > 100 and table <= 45 * checks, (table, checks)
        assert height - table <= 15 * SCREEN["height"], (height, table)


@pytest.mark.e2e
def test_default_report_prints_to_at_most_20_a4_pages_unclipped(browser, default_report):
    page, _, _ = open_page(browser, default_report / "report.html",
                           viewport={"width": A4_CONTENT_PX, "height": 1000})
    page.emulate_media(media="print")
    assert page.locator("#checks-fail").is_visible()
    assert not page.locator("#checks-inconclusive").is_visible()  # in summary.json, junit
    assert page.evaluate(OVERFLOWING) == []
    pdf = page.pdf(format="A4", print_background=True)
    (default_report / "report.pdf").write_bytes(pdf)
    pages = len(re.findall(rb"/Type\s*/Page(?![s\w])", pdf))
    assert 1 <= pages <= 20, pages


@pytest.mark.e2e
@pytest.mark.parametrize("viewport", [SCREEN, PHONE], ids=["1280", "390"])
def test_axe_wcag22_finds_nothing_serious_on_the_default_report(browser, default_report,
                                                                viewport):
    page, _, requests = open_page(browser, default_report / "report.html", viewport=viewport)
    page.evaluate(OPEN_ALL)
    assert_axe_finds_no_serious_violation(page)
    assert all(url.startswith("file://") for url in requests)


def assert_axe_finds_no_serious_violation(page) -> None:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": WCAG},
                                       "resultTypes": ["violations"]})
    serious = [v for v in results.response["violations"]
               if v["impact"] in ("critical", "serious")]
    assert serious == [], results.generate_report()


def test_axe_finds_no_serious_violation_with_every_detail_open(browser, degraded_run):
    page, _, requests = open_page(browser, degraded_run / "report.html")
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    assert_axe_finds_no_serious_violation(page)
    assert all(url.startswith("file://") for url in requests)


def test_opening_cites_failures_and_every_slice_is_there(browser, degraded_run):
    summary = json.loads((degraded_run / "summary.json").read_text())
    page, errors, requests = open_page(browser, degraded_run / "report.html")
    assert page.locator("h1").inner_text() == "Release gate: FAIL"
    opening = page.locator("#plain-summary").inner_text()
    strongest = max((c for c in summary["checks"] if c["verdict"] == "fail"),
                    key=lambda c: c["ci_low"])
    assert "FAILED" in opening and f"{strongest['slice']} / {strongest['dimension']}" in opening
    cards = page.locator("#cards article").all_inner_texts()
    assert cards[0].startswith("DO NOT SHIP cand") and "Do not ship cand:" in cards[0]
    assert cards[1].startswith("SHIP same") and "Ship same:" in cards[1]
    assert "headlines (574 rows) loses" in cards[0] and " pp, CI " in cards[0]
    for s in summary["slices"]:
        assert page.locator(f"#slice-{s['name']}").count() == 1
    assert page.locator("#table-checks-fail tbody.check").count() == summary["counts"]["fail"]
    losing = {c["dimension"] for c in summary["checks"] if c["candidate"] == "cand"
              and c["dimension"] != "_all" and (c["verdict"] == "fail" or (
                  c["verdict"] == "inconclusive" and c["ci_low"] > c["max_drop"]))}
    plots = page.locator("svg[role=img]")  # per candidate: pooled, then each losing dimension
    assert plots.count() == 2 + len(losing) and len(losing) > 0
    ticks = page.locator("svg[role=img]").first.locator(
        "text[text-anchor=middle]").all_text_contents()
    assert "percentage points" in ticks[-1]
    values = [float(t) for t in ticks[:-1]]
    steps = {round(b - a, 9) for a, b in zip(values, values[1:])}
    assert len(steps) == 1 and f"{steps.pop():.0e}"[0] in "125", ticks  # round ticks
    assert "headlines" in page.locator("#examples").text_content()
    assert errors == [] and all(url.startswith("file://") for url in requests)


def test_sorting_and_filtering_work(browser, degraded_run):
    page, errors, _ = open_page(browser, degraded_run / "report.html")
    table = page.locator("#table-checks-fail")
    assert table.is_visible()  # the failed group opens by default
    header = table.locator("th", has_text="degradation")
    header.click()
    header.click()  # descending
    assert header.get_attribute("aria-sort") == "descending"
    column = 1 + header.evaluate("th => th.cellIndex")
    cells = table.locator(f"tbody.check tr:first-child td:nth-child({column})")
    values = [float(v) for v in cells.all_inner_texts()]
    assert values == sorted(values, reverse=True) and len(values) > 1
    assert table.locator("tbody.check").first.locator("td.reason").count() == 1
    page.fill("#filter-checks", "headlines compliance")  # every word must match
    visible = page.locator(".checks-table tbody.check:not([hidden])")
    assert 0 < visible.count() < page.locator(".checks-table tbody.check").count()
    assert all("headlines" in t and "compliance" in t for t in visible.all_inner_texts())
    page.fill("#filter-checks", "pass same clarity")  # a verdict and terms together
    texts = visible.all_inner_texts()
    assert texts and all("PASS" in t and "same" in t and "clarity" in t for t in texts)
    assert page.locator("#checks-pass").evaluate("d => d.open")  # opened to show them
    assert errors == []


def test_report_is_complete_without_javascript_and_prints_open(browser, degraded_run):
    page, _, _ = open_page(browser, degraded_run / "report.html", javascript=False)
    summary = json.loads((degraded_run / "summary.json").read_text())
    assert page.locator(".checks-table tbody.check").count() == len(summary["checks"])
    panels = page.locator(".heat-panel")  # one heatmap per candidate, switched by CSS
    assert panels.count() == 2 and panels.nth(0).is_visible() and not panels.nth(1).is_visible()
    page.locator("label[for=heat-tab-2]").click()
    assert panels.nth(1).is_visible() and not panels.nth(0).is_visible()
    assert "same" in panels.nth(1).locator("caption").inner_text()
    assert not page.locator("#table-checks-pass").is_visible()  # closed on screen
    page.emulate_media(media="print")
    for selector in ("#table-checks-fail", "#table-evenness", "#table-data-checks",
                     "#table-speed", "#glossary"):
        assert page.locator(selector).is_visible(), selector


def test_hostile_text_is_shown_literally_and_runs_nothing(browser, tmp_path, scored_rows):
    frame = scored_rows.copy()
    headlines = frame.index[frame.content_type == "headline"][:len(HOSTILE)]
    frame.loc[headlines, "text"] = HOSTILE
    for d in DIMENSIONS:  # degrade headlines, the hostile rows most, so they lead the examples
        ref = frame[f"{d}_ref"]
        frame[f"{d}_cand"] = ref
        frame.loc[frame.content_type == "headline", f"{d}_cand"] += 1.0
        frame.loc[headlines, f"{d}_cand"] = ref[headlines].where(ref[headlines] >= 3,
                                                                 ref[headlines] + 4) - 2
    out = tmp_path / "run"
    run_cli("run", "--config", str(columns_config(tmp_path, frame)), "--out", str(out),
            "--quiet")
    page, errors, requests = open_page(browser, out / "report.html")
    assert page.evaluate("window.__pwned") is None
    page.locator("#examples summary").click()
    examples = page.locator("#examples").inner_text()
    for text in HOSTILE:
        assert text in examples
    assert "49 and" not in examples  # the template never evaluates data
    assert page.locator("#examples mark").count() > 0  # the changed dimensions
    assert errors == [] and all(url.startswith("file://") for url in requests)


def test_report_command_rerenders_from_the_run_files(degraded_run):
    rendered = {name: (degraded_run / name).read_text()
                for name in ("report.html", "summary.md", "junit.xml")}
    (degraded_run / "report.html").unlink()
    result = run_cli("report", str(degraded_run))
    assert result.returncode == 0, result.stderr
    assert {name: (degraded_run / name).read_text() for name in rendered} == rendered
    missing = run_cli("report", str(degraded_run / "nope"))
    assert missing.returncode == 2 and "summary.json: not found" in missing.stderr


def test_report_stays_readable_on_a_phone(browser, degraded_run):
    page, _, _ = open_page(browser, degraded_run / "report.html", viewport=PHONE)
    page.evaluate(OPEN_ALL)
    assert page.evaluate("document.documentElement.scrollWidth") == PHONE["width"]
    assert page.evaluate(OVERFLOWING) == []  # tables are cards, each value labelled
    cell = page.locator("#table-checks-fail tbody.check td[data-label=slice]").first
    assert cell.evaluate("td => getComputedStyle(td, '::before').content") == '"slice: "'
