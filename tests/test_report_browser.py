"""The HTML report in a real browser: Debian's headless Chromium driven by Playwright,
and axe-core (bundled by axe-playwright-python, injected by the test, never fetched)."""

from __future__ import annotations

import json
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
             "policy": "point", "correction": "none"}
    candidates = [{"name": "cand", "backend": "columns", "columns": "{dimension}_cand"},
                  {"name": "same", "backend": "columns", "columns": "{dimension}_ref"}]
    config = columns_config(tmp, frame, gate=point, candidates=candidates)
    result = run_cli("run", "--config", str(config), "--out", str(out), "--quiet")
    assert result.returncode == 1, result.stderr
    return out


@pytest.mark.e2e
def test_default_report_decides_in_the_first_screen(browser, default_report):
    """The issue's geometry at 1280x900, on the default run: decision and strip in the
    first screen, the first heatmap within two, at most 12 screens with details closed,
    and no page-level horizontal scroll at 1280 or 390 px."""
    summary = json.loads((default_report / "summary.json").read_text())
    page, errors, requests = open_page(browser, default_report / "report.html")
    assert page.locator("h1").inner_text() == f"Release gate: {summary['verdict'].upper()}"
    for selector in ("#plain-summary", "#decisions", "#strip", "#headline"):
        assert top_and_bottom(page, selector)[1] <= SCREEN["height"], selector
    assert page.locator("#strip tbody tr").count() == len([s for s in summary["scorers"]
                                                           if s["role"] == "candidate"])
    assert page.locator("#strip tbody td").first.inner_text().split()[0] in (
        "pass", "fail", "inconc.")  # the verdict in words, not only a colour
    assert top_and_bottom(page, "#heatmaps table.heat")[0] <= 2 * SCREEN["height"]
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height <= 12 * SCREEN["height"], height
    assert page.evaluate("document.documentElement.scrollWidth") == SCREEN["width"]
    page.screenshot(path=str(default_report / "report-1280.png"))
    page.screenshot(path=str(default_report / "report-full.png"), full_page=True)
    phone, _, _ = open_page(browser, default_report / "report.html", viewport=PHONE)
    assert phone.evaluate("document.documentElement.scrollWidth") == PHONE["width"]
    phone.screenshot(path=str(default_report / "report-390.png"))
    assert (default_report / "report-1280.png").stat().st_size > 10_000
    assert errors == [] and all(url.startswith("file://") for url in requests), (errors,
                                                                                 requests)


def assert_axe_finds_no_serious_violation(page) -> None:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    serious = [v for v in results.response["violations"]
               if v["impact"] in ("critical", "serious")]
    assert serious == [], results.generate_report()


@pytest.mark.e2e
def test_axe_finds_no_serious_violation_on_the_default_report(browser, default_report):
    page, _, requests = open_page(browser, default_report / "report.html")
    assert_axe_finds_no_serious_violation(page)  # as it opens (every detail on the smaller
    assert all(url.startswith("file://") for url in requests)  # report below: axe is slow)


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
    decisions = page.locator("#decisions li").all_inner_texts()
    assert decisions[0].startswith("DO NOT SHIP") and "Do not ship cand:" in decisions[0]
    assert decisions[1].startswith("SHIP") and "Ship same:" in decisions[1]
    for s in summary["slices"]:
        assert page.locator(f"#slice-{s['name']}").count() == 1
    assert page.locator("#table-top tbody tr").count() == min(10, summary["counts"]["fail"])
    assert page.locator("svg[role=img]").count() == 2  # one forest plot per candidate
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
    page.locator("#all-checks > summary").click()
    table = page.locator("#table-checks")
    header = table.locator("th", has_text="degradation")
    header.click()
    header.click()  # descending
    assert header.get_attribute("aria-sort") == "descending"
    column = 1 + header.evaluate("th => th.cellIndex")
    values = [float(v) for v in
              table.locator(f"tbody tr td:nth-child({column})").all_inner_texts()]
    assert values == sorted(values, reverse=True) and len(values) > 1
    page.fill("#filter-checks", "compliance")
    visible = table.locator("tbody tr:not([hidden])")
    assert 0 < visible.count() < table.locator("tbody tr").count()
    assert all("compliance" in t for t in visible.all_inner_texts())
    assert errors == []


def test_report_is_complete_without_javascript_and_prints_open(browser, degraded_run):
    page, _, _ = open_page(browser, degraded_run / "report.html", javascript=False)
    summary = json.loads((degraded_run / "summary.json").read_text())
    assert page.locator("#table-checks tbody tr").count() == len(summary["checks"])
    panels = page.locator(".heat-panel")  # one heatmap per candidate, switched by CSS
    assert panels.count() == 2 and panels.nth(0).is_visible() and not panels.nth(1).is_visible()
    page.locator("label[for=heat-tab-2]").click()
    assert panels.nth(1).is_visible() and not panels.nth(0).is_visible()
    assert "same" in panels.nth(1).locator("caption").inner_text()
    assert not page.locator("#table-checks").is_visible()  # closed on screen
    page.emulate_media(media="print")
    for selector in ("#table-checks", "#table-evenness", "#table-data-checks", "#table-speed"):
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
    report = degraded_run / "report.html"
    before = report.read_text()
    report.unlink()
    result = run_cli("report", str(degraded_run))
    assert result.returncode == 0, result.stderr
    assert report.read_text() == before
    missing = run_cli("report", str(degraded_run / "nope"))
    assert missing.returncode == 2 and "summary.json: not found" in missing.stderr


def test_report_stays_readable_on_a_phone(browser, degraded_run):
    page, _, _ = open_page(browser, degraded_run / "report.html", viewport=PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") == PHONE["width"]
    strip = page.locator("#strip").locator("xpath=..")  # the strip scrolls in its own box
    assert strip.evaluate("e => e.scrollWidth > e.clientWidth")
