"""The report in a real browser (Debian's Chromium through playwright), offline: no request
leaves the page, no console error, every figure drawn. A full-page screenshot of each report
is kept in the test's tmp_path and, when $VARCAS_ARTIFACTS_DIR is set, copied there.

Skipped when playwright or Chromium is missing, unless VARCAS_REQUIRE_BROWSER=1 (CI): then it fails.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from varcas.report.write import write_report

CHROMIUM = "/usr/bin/chromium"
REQUIRED = os.environ.get("VARCAS_REQUIRE_BROWSER") == "1"
# per plot: drawn trace shapes (lines, bars) and points, each with real geometry
DRAWN = """el => [...el.querySelectorAll('svg.main-svg g.trace path, svg.main-svg path.point')]
               .filter(p => { const d = p.getAttribute('d'); return d && d !== 'M0,0Z'; }).length"""


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    return None if os.access(CHROMIUM, os.X_OK) else f"no Chromium at {CHROMIUM}"


@pytest.fixture(scope="module")
def browser():
    if why := _missing():
        if REQUIRED:
            pytest.fail(f"VARCAS_REQUIRE_BROWSER=1 but {why}")
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def _open(browser, html_file: Path, shot: Path) -> dict:
    """Load the page with the network cut off; what it tried to fetch, its errors, its plots."""
    context = browser.new_context(offline=True, viewport={"width": 1280, "height": 900})
    fetched, errors = [], []
    context.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort())
    tab = context.new_page()
    tab.on("request", lambda req: None if req.url.startswith(("file:", "data:")) else fetched.append(req.url))
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.goto(html_file.as_uri(), wait_until="load")
    plots = tab.locator(".js-plotly-plot")
    drawn = [plots.nth(i).evaluate(DRAWN) for i in range(plots.count())]
    tab.screenshot(path=str(shot), full_page=True)
    if out := os.environ.get("VARCAS_ARTIFACTS_DIR"):
        Path(out).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(out) / shot.name)
    context.close()
    return {"fetched": fetched, "errors": errors, "drawn": drawn}


@pytest.mark.parametrize("which, figures", [("sweep_dir", 9), ("pipeline_dir", 13), ("run_dir", 3),
                                            ("failed_sweep_dir", 0)])
def test_the_report_renders_offline_with_every_plot_drawn(browser, which, figures, request, tmp_path):
    directory = request.getfixturevalue(which)
    html_file, _ = write_report(directory, out_html=tmp_path / "report.html", out_md=tmp_path / "REPORT.md")
    assert html_file.read_text().count('class="plotly-graph-div"') == figures
    seen = _open(browser, html_file, tmp_path / f"report-{which.removesuffix('_dir')}.png")
    assert seen["fetched"] == [] and seen["errors"] == []
    assert len(seen["drawn"]) == figures and all(n > 0 for n in seen["drawn"]), seen["drawn"]
    assert (tmp_path / f"report-{which.removesuffix('_dir')}.png").stat().st_size > 10_000
