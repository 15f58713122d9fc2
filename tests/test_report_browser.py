"""The HTML report in a real browser: Debian's headless Chromium driven by Playwright."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
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

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs chromium")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield instance
        instance.close()


def open_page(browser, report: Path, javascript: bool = True):
    context = browser.new_context(java_script_enabled=javascript,
                                  viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(report.as_uri())
    page.wait_for_load_state("load")
    return page, errors, requests


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
    result = run_cli("run", "--config", str(columns_config(tmp, frame, gate=point)), "--out",
                     str(out), "--quiet")
    assert result.returncode == 1, result.stderr
    return out


def test_report_leads_with_the_verdict_and_shows_every_slice(browser, degraded_run):
    summary = json.loads((degraded_run / "summary.json").read_text())
    page, errors, requests = open_page(browser, degraded_run / "report.html")
    assert page.locator("h1").inner_text() == "Release gate: FAIL"
    assert "FAILED" in page.locator("#plain-summary").inner_text()
    body = page.locator("body").inner_text()
    for s in summary["slices"]:
        assert page.locator(f"#slice-{s['name']}").count() == 1
    assert page.locator("svg[role=img]").count() == 1  # one forest plot per candidate
    assert page.locator("#table-examples tbody tr").count() > 0
    assert "headlines" in page.locator("#table-examples").inner_text()
    page.screenshot(path=str(degraded_run / "report.png"), full_page=True)
    assert (degraded_run / "report.png").stat().st_size > 10_000
    assert errors == [] and all(url.startswith("file://") for url in requests), (errors,
                                                                                 requests)
    assert "FAIL" in body


def test_sorting_and_filtering_work(browser, degraded_run):
    page, errors, _ = open_page(browser, degraded_run / "report.html")
    table = page.locator("#table-problems")
    header = table.locator("th", has_text="degradation")
    header.click()
    header.click()  # descending
    values = [float(v) for v in table.locator("tbody tr td:nth-child(9)").all_inner_texts()]
    assert values == sorted(values, reverse=True) and len(values) > 1
    page.fill("#filter-problems", "compliance")
    visible = table.locator("tbody tr:not([hidden])")
    assert 0 < visible.count() < table.locator("tbody tr").count()
    assert all("compliance" in t for t in visible.all_inner_texts())
    assert errors == []


def test_report_is_complete_without_javascript(browser, degraded_run):
    page, _, _ = open_page(browser, degraded_run / "report.html", javascript=False)
    assert page.locator("#table-problems tbody tr").count() > 0
    assert page.locator("svg[role=img]").count() == 1
    assert page.locator(".heat").count() == 1


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
    examples = page.locator("#table-examples").inner_text()
    for text in HOSTILE:
        assert text in examples
    assert "49 and" not in examples  # the template never evaluates data
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
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto((degraded_run / "report.html").as_uri())
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400  # wide tables scroll inside their wrappers, the page does not
    assert pd.notna(width)
