"""The web page in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright):
upload an image, see the verdict, override a region's type, find it in history as reviewed.
Screenshots go to test-artifacts/ (git-ignored)."""

from __future__ import annotations

from pathlib import Path

import pytest
from service_helpers import ARTIFACTS, TOKEN, Server, free_port

from defectlens.service.app import ServiceConfig, create_app
from defectlens.service.models import ModelPool

CHROMIUM = Path("/usr/bin/chromium")
# As root in a container, with no network: no sandbox, no background connections.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_upload_review_and_history_in_chromium(pool: ModelPool, images: dict[str, Path], tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    cfg = ServiceConfig((pool.models["plate"].path,), f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data", TOKEN)
    # A stored file name that is markup: the page must show it, not run it.
    hostile = tmp_path / "<img src=x onerror=window.pwned=1>.png"
    hostile.write_bytes(images["good"].read_bytes())
    with Server(create_app(cfg, pool=pool), free_port()) as server, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.url + "/")
            page.fill("#token", TOKEN)
            page.dispatch_event("#token", "change")
            page.fill("#reviewer", "Dana")
            page.set_input_files("#file-input", str(images["bad"]))
            sync_api.expect(page.locator("#verdict")).to_have_text("DEFECTIVE", timeout=60_000)
            sync_api.expect(page.locator("#overlay")).to_have_js_property("complete", True)
            page.screenshot(path=str(ARTIFACTS / "1-inspected.png"), full_page=True)
            # The report pane: the report's text, then each of its notes.
            shown = page.locator("#report").text_content() or ""
            assert shown.startswith(page.evaluate("current.report_text"))
            notes = page.evaluate("current.report.notes")
            assert notes and all(f"note: {n}" in shown for n in notes)

            # Override region 1's type and send the review.
            page.select_option("#region-type-1", "scratch")
            page.click("#confirm")
            sync_api.expect(page.locator("#review-state")).to_contain_text("reviewed by Dana", timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "2-reviewed.png"), full_page=True)

            # History: filtered to reviewed, the inspection is there with its new type.
            page.select_option("#f-review", "reviewed")
            page.click("#f-apply")
            row = page.locator("#history tr").first
            sync_api.expect(row.locator("td.review")).to_contain_text("reviewed (Dana)")
            sync_api.expect(row).to_contain_text("scratch")
            page.screenshot(path=str(ARTIFACTS / "3-history.png"), full_page=True)

            # The hostile file name is shown as text.
            page.set_input_files("#file-input", str(hostile))
            sync_api.expect(page.locator("#detail-file")).to_have_text(hostile.name, timeout=60_000)
            page.select_option("#f-review", "")
            page.click("#f-apply")
            sync_api.expect(page.locator("#history tr").first).to_contain_text(hostile.name)
            assert page.evaluate("window.pwned") is None
            sync_api.expect(page.locator("#error")).to_have_text("")
            page.screenshot(path=str(ARTIFACTS / "4-escaped.png"), full_page=True)

            # A link in the history opens that inspection.
            page.locator("#history tr").nth(1).locator("a").click()
            sync_api.expect(page.locator("#detail-file")).to_have_text("bad.png")
            assert errors == []
        finally:
            browser.close()
