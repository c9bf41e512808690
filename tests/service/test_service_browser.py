"""The web page in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright):
upload an image, see the verdict, override a region's type, find it in history as reviewed.
Screenshots go to test-artifacts/ (git-ignored)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_helpers import ARTIFACTS, TOKEN, Server, free_port

from defectlens.service.app import ServiceConfig, create_app
from defectlens.service.models import ModelPool

CHROMIUM = Path("/usr/bin/chromium")
# As root in a container, with no network: no sandbox, no background connections.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@contextlib.contextmanager
def _page_on_service(pool: ModelPool, tmp_path: Path, reviewer: str, under: str = "") -> Iterator[tuple[Any, Any, Server]]:
    """A served model, and the page open in headless Chromium with the token and a reviewer's name
    entered; yields (Playwright's sync API, the page, the server) and checks no script error was raised. ``under``: the
    path the service is mounted at, as a proxy with ``serve --root-path`` serves it."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    cfg = ServiceConfig((pool.models["plate"].path,), f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "data", TOKEN)
    app: Any = create_app(cfg, pool=pool)
    if under:
        from starlette.applications import Starlette
        from starlette.routing import Mount

        app = Starlette(routes=[Mount(under, app=app)])
    with Server(app, free_port()) as server, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.url + under + "/")
            page.fill("#token", TOKEN)
            page.dispatch_event("#token", "change")
            page.fill("#reviewer", reviewer)
            page.dispatch_event("#reviewer", "change")
            yield sync_api, page, server
            assert errors == []
        finally:
            browser.close()


def test_upload_review_and_history_in_chromium(pool: ModelPool, images: dict[str, Path], tmp_path: Path) -> None:
    # A stored file name that is markup: the page must show it, not run it.
    hostile = tmp_path / "<img src=x onerror=window.pwned=1>.png"
    hostile.write_bytes(images["good"].read_bytes())
    with _page_on_service(pool, tmp_path, "Dana") as (sync_api, page, server):
        page.set_input_files("#file-input", str(images["bad"]))
        sync_api.expect(page.locator("#verdict")).to_have_text("DEFECTIVE", timeout=60_000)
        sync_api.expect(page.locator("#overlay")).to_have_js_property("complete", True)
        page.screenshot(path=str(ARTIFACTS / "1-inspected.png"), full_page=True)
        # The page's name says which inspection is open, and its tables have names and column headers (a11y probe 2026-12-06).
        assert page.title() == f"#{page.evaluate('current.id')} bad.png — defectlens"
        assert page.locator("table[aria-label]").count() == 2 and page.locator("th:not([scope=col])").count() == 0
        # The report pane: the report's prose (not its Markdown), and each of its notes once.
        shown = page.locator("#report").text_content() or ""
        assert shown.startswith(page.evaluate("current.report.text")) and "**" not in shown
        notes = page.evaluate("current.report.notes")
        assert notes and all(shown.count(n) == 1 for n in notes)
        # One line per file of the upload, linking to its inspection.
        sync_api.expect(page.locator("#batch li")).to_have_count(1)
        sync_api.expect(page.locator("#batch li a")).to_have_text(f"#{page.evaluate('current.id')}")

        # Override region 1's type and send the review.
        page.select_option("#region-type-1", "scratch")
        page.click("#confirm")
        sync_api.expect(page.locator("#review-state")).to_contain_text("reviewed by Dana", timeout=30_000)
        # What the reviewer changed, in words: a re-type is not an added defect (tablet probe 2026-12-06: "corrected" both).
        sync_api.expect(page.locator("#override")).to_contain_text("Reviewed by Dana, who re-typed region(s) #1: the report")
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

        # Until a time before every inspection: none; a page past the first: ⏭ and ⏮ jump to the
        # oldest and the newest (the oldest rows were a click per page away; no "until" at all).
        page.fill("#f-until", "2000-01-01T00:00")
        page.dispatch_event("#f-until", "change")
        sync_api.expect(page.locator("#history-msg")).to_have_text("no inspection matches these filters")
        page.fill("#f-until", "")
        page.dispatch_event("#f-until", "change")
        with httpx.Client(base_url=server.url, headers={"X-API-Token": TOKEN}) as client:
            for i in range(20):
                client.post("/inspections", files={"file": (f"more-{i}.png", images["good"].read_bytes(), "image/png")}).raise_for_status()
        # Posted by stations, not the page: the newest page follows without a press (every 15 s).
        page.evaluate("refreshHistory()")
        sync_api.expect(page.locator("#page-info")).to_have_text("1–20 of 22")
        page.click("#last")
        sync_api.expect(page.locator("#page-info")).to_have_text("21–22 of 22")
        sync_api.expect(page.locator("#history tr").last).to_contain_text("bad.png")
        sync_api.expect(page.locator("#last")).to_be_disabled()
        page.click("#first")
        sync_api.expect(page.locator("#page-info")).to_have_text("1–20 of 22")
        page.click("#last")
        # A link in the history opens that inspection, brought into view with its row marked
        # (the panel loaded 626 px above the screen and nothing seemed to happen).
        page.locator("#history tr").nth(1).locator("a").click()
        sync_api.expect(page.locator("#detail-file")).to_have_text("bad.png")
        assert page.evaluate("document.getElementById('detail').getBoundingClientRect().top") >= -1
        sync_api.expect(page.locator("#history tr").nth(1)).to_have_class("open")

        # Reviewed good, the false alarm's regions are rejected (they were kept as confirmed
        # defects and exported as examples of a defect on a good part).
        bad_id = page.evaluate("current.id")
        page.click("#mark-good")
        # The verdict said with "saved" (a11y probe 2026-12-06: after a key press, "saved" alone did not tell g from d).
        sync_api.expect(page.locator("#review-msg")).to_have_text(f"review of #{bad_id} saved: GOOD (machine: defective)", timeout=30_000)
        assert set(page.evaluate("current.regions.map(r => r.type)")) == {"not-a-defect"}
        # The person's verdict stands over the machine's report and overlay, and says so.
        sync_api.expect(page.locator("#override")).to_contain_text("Reviewed GOOD by Dana: the report and the overlay are the machine's")
        # Confirm keeps a person's verdict (it sent the machine's, undoing theirs).
        page.click("#confirm")
        sync_api.expect(page.locator("#review-msg")).to_have_text(re.compile(rf"^review of #{bad_id} saved: "), timeout=30_000)
        assert page.evaluate("current.final_verdict") == "good"
        # A missed defect and a comment outlive the next review, and do not follow to another inspection.
        page.select_option("#missed-type", "scratch")
        page.fill("#missed-box", "2,3,12,9")
        page.fill("#comment", "left edge")
        page.click("#mark-defective")
        sync_api.expect(page.locator("#review-msg")).to_have_text(re.compile(rf"^review of #{bad_id} saved: "), timeout=30_000)
        page.click("#confirm")
        sync_api.expect(page.locator("#review-msg")).to_have_text(re.compile(rf"^review of #{bad_id} saved: "), timeout=30_000)
        assert page.evaluate("current.regions.filter(r => r.missed).map(r => [r.type, r.bbox])") == [["scratch", [2, 3, 12, 9]]]
        assert page.evaluate("current.review.comment") == "left edge"
        # Reviewing it good would drop the missed defect: asked first; dismissed, nothing is sent.
        asked: list[str] = []
        page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
        page.click("#mark-good")
        page.wait_for_timeout(300)
        assert asked and "removes the 1 missed defect(s)" in asked[0]
        assert page.evaluate("current.final_verdict") == "defective" and page.evaluate("current.regions.filter(r => r.missed).length") == 1
        # One missed defect marked wrongly is removed alone; the other stays (each review had sent them all back).
        page.select_option("#missed-type", "scratch")
        page.fill("#missed-box", "20,20,30,30")
        page.check("#regions input[id^=missed-remove-]")
        page.click("#mark-defective")
        sync_api.expect(page.locator("#review-msg")).to_have_text(re.compile(rf"^review of #{bad_id} saved: "), timeout=30_000)
        assert page.evaluate("current.regions.filter(r => r.missed).map(r => r.bbox)") == [[20, 20, 30, 30]]
        page.locator("#history tr").first.locator("a").click()
        sync_api.expect(page.locator("#detail-file")).to_have_text(hostile.name)
        assert page.input_value("#comment") == "" and page.input_value("#missed-box") == ""
        # A bad box is said beside the buttons, in words; nothing is sent.
        page.select_option("#missed-type", "scratch")
        page.fill("#missed-box", "abc")
        page.click("#mark-defective")
        sync_api.expect(page.locator("#review-msg")).to_contain_text("give four whole numbers x0,y0,x1,y1")
        page.screenshot(path=str(ARTIFACTS / "5-review-message.png"), full_page=True)
        # Another part's image, or a bad frame: reviewed unusable, kept and found in the history, labelling nothing
        # (2026-12-06: reviewed good, another part's image went into this part's calibration set); a missed defect with it
        # is said, not sent.
        page.click("#mark-unusable")
        sync_api.expect(page.locator("#review-msg")).to_contain_text("an unusable image has no missed defect")
        page.select_option("#missed-type", "")
        page.fill("#missed-box", "")
        page.fill("#comment", "a gear, posted to the plate line")
        page.click("#mark-unusable")
        hostile_id = page.evaluate("current.id")
        sync_api.expect(page.locator("#review-msg")).to_have_text(re.compile(rf"^review of #{hostile_id} saved: "), timeout=30_000)
        sync_api.expect(page.locator("#verdict")).to_have_text(f"UNUSABLE (machine: {page.evaluate('current.verdict')})")
        page.click("#confirm")
        sync_api.expect(page.locator("#review-msg")).to_have_text(re.compile(rf"^review of #{hostile_id} saved: "), timeout=30_000)
        assert page.evaluate("current.final_verdict") == "unusable"
        page.select_option("#f-verdict", "unusable")
        sync_api.expect(page.locator("#page-info")).to_have_text("1–1 of 1")
        sync_api.expect(page.locator("#history tr").first).to_contain_text(hostile.name)
        # An unusable part with regions: its types in the history are the machine's, said so (regression probe round 5:
        # "scratch" in the row read as a label).
        page.evaluate("async (id) => show(await api(`/inspections/${id}`))", bad_id)
        sync_api.expect(page.locator("#detail-file")).to_have_text("bad.png")
        page.once("dialog", lambda d: d.accept())  # its missed defect goes with the review
        page.fill("#comment", "")
        page.click("#mark-unusable")
        sync_api.expect(page.locator("#review-msg")).to_have_text(re.compile(rf"^review of #{bad_id} saved: "), timeout=30_000)
        bad_row = page.locator("#history tr", has_text="bad.png")
        sync_api.expect(bad_row).to_contain_text("(machine: ")
        page.select_option("#f-verdict", "")
        # A missed defect's box is drawn on the original (typing pixel numbers was all there was).
        page.locator("#original").scroll_into_view_if_needed()
        box = page.locator("#original").bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.25)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.75, box["y"] + box["height"] * 0.75, steps=4)
        page.mouse.up()
        drawn = [int(v) for v in page.input_value("#missed-box").split(",")]
        assert all(abs(a - b) <= 3 for a, b in zip(drawn, [32, 24, 96, 72], strict=True)), drawn
        sync_api.expect(page.locator("#drawn")).to_be_visible()

        # A long file name, on a phone: the page stays as wide as the screen.
        long_name = tmp_path / ("x" * 170 + ".png")
        long_name.write_bytes(images["good"].read_bytes())
        page.set_viewport_size({"width": 390, "height": 844})
        page.set_input_files("#file-input", str(long_name))
        # Not over the box just drawn and not sent (a11y probe 2026-12-06: edits went without a word): the result waits in
        # the list, and opening it asks first.
        sync_api.expect(page.locator("#batch li a")).to_have_count(1, timeout=60_000)
        sync_api.expect(page.locator("#detail-file")).to_have_text("bad.png")

        def kept_after(move, edits: str, on: str) -> None:  # type: ignore[no-untyped-def]
            """``move`` asks about the edits not sent; dismissed, the page stays on ``on``."""
            asked.clear()
            page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
            move()
            page.wait_for_timeout(300)
            assert asked and f"has {edits} not sent. Leave it without saving?" in asked[0], asked
            sync_api.expect(page.locator("#detail-file")).to_have_text(on)

        kept_after(page.locator("#batch li a").click, "a missed defect", "bad.png")
        page.fill("#missed-box", "")
        page.select_option("#missed-type", "")
        page.locator("#batch li a").click()
        sync_api.expect(page.locator("#detail-file")).to_have_text(long_name.name, timeout=60_000)
        # Back over a comment not sent is asked about too; kept, Back still leads where it did (regression probe 2026-12-06:
        # the entry Back came from had been overwritten, and that inspection left the history).
        page.fill("#comment", "not sent")
        kept_after(page.go_back, "a comment", long_name.name)
        page.fill("#comment", "")
        page.go_back()
        sync_api.expect(page.locator("#detail-file")).to_have_text("bad.png")
        page.go_forward()
        sync_api.expect(page.locator("#detail-file")).to_have_text(long_name.name)
        # Forward over edits, kept, keeps what lies ahead too (regression probe 2026-12-06: it had dropped it).
        page.go_back()
        sync_api.expect(page.locator("#detail-file")).to_have_text("bad.png")
        page.fill("#comment", "not sent either")
        kept_after(page.go_forward, "a comment", "bad.png")
        page.fill("#comment", "")
        page.go_forward()
        sync_api.expect(page.locator("#detail-file")).to_have_text(long_name.name)
        # A click that opens another tab asks nothing and leaves no "leave" behind for a later Back (regression probe).
        page.fill("#comment", "kept here")
        asked.clear()
        def dismissed(d):  # type: ignore[no-untyped-def]
            asked.append(d.message)
            d.dismiss()

        page.on("dialog", dismissed)
        page.locator("#history tr").first.locator("a").click(modifiers=["Control"])
        page.wait_for_timeout(300)
        for other in page.context.pages[1:]:
            other.close()
        assert not asked
        page.go_back()
        page.wait_for_timeout(300)
        assert asked and "has a comment not sent" in asked[-1]
        sync_api.expect(page.locator("#detail-file")).to_have_text(long_name.name)
        page.remove_listener("dialog", dismissed)
        # A typed address over edits, kept, leaves the history counting right (regression probe 2026-12-06: a later kept
        # Forward had left the address on another inspection than the one shown).
        kept_after(lambda: page.evaluate(f"location.hash = '#/inspections/{bad_id}'"), "a comment", long_name.name)
        page.fill("#comment", "")
        page.go_back()
        sync_api.expect(page.locator("#detail-file")).to_have_text("bad.png")
        page.fill("#comment", "moving on")
        kept_after(page.go_forward, "a comment", "bad.png")
        assert page.evaluate("location.hash") == f"#/inspections/{bad_id}"
        page.fill("#comment", "")
        page.go_forward()
        sync_api.expect(page.locator("#detail-file")).to_have_text(long_name.name)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        # Tablet probe 2026-12-06: a comment with no spaces in the review history (a path, a serial number) made the page
        # 19,070 px wide, a long type name in a select wider than a phone, and a comment over the service's limit was
        # typed in full and refused on sending.
        from defectlens.service.schemas import MAX_COMMENT_LENGTH, MAX_REVIEWER_LENGTH

        assert page.get_attribute("#comment", "maxlength") == str(MAX_COMMENT_LENGTH)
        assert page.get_attribute("#reviewer", "maxlength") == str(MAX_REVIEWER_LENGTH)
        page.fill("#comment", "C:\\line4\\camera2\\" + "x" * 300)
        page.click("#mark-good")
        sync_api.expect(page.locator("#review-history li")).to_contain_text("xxxx", timeout=30_000)
        page.evaluate("$('missed-type').add(new Option('a defect type with a rather long name '.repeat(6), 'long'))")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=str(ARTIFACTS / "6-phone.png"), full_page=True)


def test_the_page_for_keyboard_screen_reader_and_a_batch(pool: ModelPool, images: dict[str, Path], tmp_path: Path) -> None:
    # Page probe 2026-12-05: the verdicts were never announced, a review left the batch's line on the
    # machine's verdict and the keyboard's focus on the page, "send again" wiped the batch's other
    # lines, and a model with no types offered 'unknown' as a missed defect's type, which the API refuses.
    files = [tmp_path / f"part-{i}.png" for i in range(3)]
    for f, kind in zip(files, ["bad", "good", "bad"], strict=True):
        f.write_bytes(images[kind].read_bytes())
    with _page_on_service(pool, tmp_path, "Ines") as (sync_api, page, server):
        # The service does not answer the third file: refused, kept to send again.
        failing = {"n": 0}

        def drop_third(route):  # type: ignore[no-untyped-def]
            failing["n"] += 1
            return route.abort() if failing["n"] == 3 else route.continue_()

        page.route("**/inspections", drop_third)
        page.set_input_files("#file-input", [str(f) for f in files])
        status = page.locator("#upload-status")
        sync_api.expect(status).to_have_text("2 of 3 image(s) inspected: 1 defective, 1 good; 1 not (listed below)", timeout=90_000)
        assert page.get_attribute("#upload-status", "role") == "status"
        page.unroute("**/inspections")
        page.focus("#retry")
        page.keyboard.press("Enter")
        sync_api.expect(status).to_have_text("1 of 1 image(s) inspected: 1 defective, 0 good", timeout=60_000)
        lines = page.locator("#batch li")
        sync_api.expect(lines).to_have_count(3)  # the first two lines stay, the third is replaced in place
        assert [line.split()[1] for line in lines.all_inner_texts()] == [f.name for f in files]
        assert page.evaluate("document.activeElement.id") == "upload-status"
        # The batch's links say what they open.
        assert (page.get_attribute("#batch li a >> nth=0", "aria-label") or "").endswith("part-0.png, defective")

        # Reviewed from the keyboard: the focus stays on the pressed button, the batch's line follows.
        page.locator("#batch li a").first.click()
        sync_api.expect(page.locator("#detail-file")).to_have_text("part-0.png")
        first_id = page.evaluate("current.id")
        page.focus("#mark-good")
        page.keyboard.press("Enter")
        sync_api.expect(page.locator("#review-msg")).to_have_text(re.compile(rf"^review of #{first_id} saved: "), timeout=30_000)
        assert page.evaluate("document.activeElement.id") == "mark-good"
        # Who said what is listed; the comment box is not pre-filled with it for the next reviewer.
        sync_api.expect(page.locator("#review-history li")).to_have_count(1)
        sync_api.expect(page.locator("#review-history li").first).to_contain_text("Ines: good")
        first_line = page.locator(f'#batch li[data-id="{first_id}"]')
        sync_api.expect(first_line.locator(".badge")).to_have_text("good")
        sync_api.expect(first_line).to_contain_text("reviewed")
        # Its link's name too, starting with what it shows (a11y probe 2026-12-07: it went on saying the machine's verdict, and
        # "inspection 1" is no name a speech user says for "#1"); the list reachable by Tab where it scrolls; the open row
        # marked by more than a pale fill; the page counter not rewritten alike (a status region read out at each refresh).
        assert first_line.locator("a").get_attribute("aria-label") == f"#{first_id} inspection: part-0.png, good, reviewed"
        assert page.get_attribute("#batch", "tabindex") == "0"
        assert page.evaluate("getComputedStyle(document.querySelector('#history tr.open')).outlineStyle") == "solid"
        page.evaluate("() => { window.rewrites = 0; new MutationObserver(() => { window.rewrites++; })"
                      ".observe(document.getElementById('page-info'), {childList: true, characterData: true, subtree: true}); }")
        page.evaluate("() => loadHistory(0)")
        page.wait_for_timeout(500)
        assert page.evaluate("window.rewrites") == 0
        # A review made meanwhile elsewhere: this page's review is refused, and the newer one shown.
        with httpx.Client(base_url=server.url, headers={"X-API-Token": TOKEN}) as client:
            client.post(f"/inspections/{first_id}/review", json={"reviewer": "Jon", "verdict": "defective", "comment": "a crack after all"})
        page.click("#confirm")
        sync_api.expect(page.locator("#review-msg")).to_contain_text("it was reviewed or commented on meanwhile", timeout=30_000)
        sync_api.expect(page.locator("#review-history li").last).to_contain_text("Jon: defective — “a crack after all”")
        assert page.input_value("#comment") == ""
        # The next one to review: the upload's next line nobody reviewed — by its key, as the review (tablet probe
        # 2026-12-06: "Confirm" had been 72 Tab presses away); a key typed in a field is the field's.
        page.focus("#detail-heading")
        page.keyboard.press("n")
        sync_api.expect(page.locator("#detail-file")).to_have_text("part-1.png")
        # A screen reader landing on the heading hears the verdict, and each picture is named for its part.
        said = page.get_attribute("#detail-heading", "aria-label") or ""
        assert said.startswith("Inspection #") and "part-1.png:" in said and said.endswith(", unreviewed"), said
        assert page.get_attribute("#original", "alt") == "original image of part-1.png"
        second_id = page.evaluate("current.id")
        # The comment box has a name on screen, not only a placeholder that typing hides.
        assert page.locator("label[for=comment]").inner_text().strip().lower().startswith("comment")
        page.focus("#comment")
        page.keyboard.type("gd")
        assert page.input_value("#comment") == "gd" and page.evaluate("current.reviews.length") == 0
        page.fill("#comment", "")
        page.focus("#detail-heading")
        page.keyboard.press("Shift+U")  # not a shortcut (regression probe 2026-12-06: Shift+C had filed a review)
        page.uncheck("#keys-on")  # and they can be turned off (WCAG 2.1.4)
        page.focus("#detail-heading")
        page.keyboard.press("u")
        page.wait_for_timeout(500)  # what a review sent would have answered by now
        assert page.evaluate("current.reviews.length") == 0
        page.check("#keys-on")
        # Pressed with the focus still on the box just ticked: a box takes no letters (it had counted as a field, and the
        # keys did nothing until a click elsewhere).
        assert page.evaluate("document.activeElement.id") == "keys-on"
        page.keyboard.press("u")
        sync_api.expect(page.locator("#review-msg")).to_have_text(re.compile(rf"^review of #{second_id} saved: "), timeout=30_000)
        assert page.evaluate("current.final_verdict") == "unusable"
        page.locator(f'#batch li[data-id="{first_id}"] a').click()
        sync_api.expect(page.locator("#detail-file")).to_have_text("part-0.png")
        # Sizes and scores as the report writes them.
        assert page.locator("#score").inner_text() == f"{page.evaluate('current.score'):.2f}"
        assert "%" in page.locator("#regions tr >> nth=0").inner_text()
        # The review column beside the machine's type (it was off a phone's screen, last).
        assert page.locator("#regions").locator("xpath=..").locator("th").all_inner_texts()[:3] == ["#", "type", "review type"]

        # A link to the inspection on show brings it into view (nothing moved: the address was the same).
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        page.locator(f'#batch li[data-id="{first_id}"] a').click()
        assert page.evaluate("document.activeElement.id") == "detail-heading"
        assert page.evaluate("document.getElementById('detail').getBoundingClientRect().top") >= -1

        # The verdict's mark is not read out before it (it had been "check mark good"), and the first Tab stop skips the
        # header and the upload to the inspections without changing the address (Left in the 2026-12-06 note).
        assert page.locator("#verdict").aria_snapshot().strip().lower() == f"- text: {page.evaluate('current.final_verdict')}"
        address = page.evaluate("location.hash")
        page.focus("#model")  # the header's first field: the skip link is the one Tab stop before it
        page.keyboard.press("Shift+Tab")
        assert page.evaluate("document.activeElement.className") == "skip"
        assert page.locator("a.skip").is_visible()
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "history-heading"
        assert page.evaluate("location.hash") == address
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "f-verdict"

        # Missed defects: never 'unknown' or 'not-a-defect'; a model with no types says so instead.
        offered = page.eval_on_selector_all("#missed-type option", "os => os.map(o => o.value)")
        assert "unknown" not in offered and "not-a-defect" not in offered and "scratch" in offered
        page.evaluate("saved_types = models.plate.types; models.plate.types = ['unknown', 'not-a-defect']; show(current)")
        sync_api.expect(page.locator("#missed-type")).to_be_disabled()
        sync_api.expect(page.locator("#missed-none")).to_contain_text("this model names no defect types")
        page.screenshot(path=str(ARTIFACTS / "7-keyboard-batch.png"), full_page=True)
        # Which fit judged it, and a model no longer served (ops probe 2026-12-06): its regions offered only their
        # current type, a missed defect none, and its rows had no entry in the history's model filter.
        page.evaluate("models.plate.types = saved_types")  # put back (defined below, before the first use)
        sync_api.expect(page.locator("#detail-model")).to_contain_text("the fit served now")
        assert "judges at threshold" not in page.locator("#detail-model").inner_text()
        # Calibrated since (loop probe 2026-12-06): the same fit, another threshold, said.
        page.evaluate("served = models.plate; models.plate = {...served, thresholds: {...served.thresholds, image: current.threshold + 5}};"
                      " show(current)")
        sync_api.expect(page.locator("#detail-model")).to_contain_text(
            f"the fit served now, which judges at threshold {page.evaluate('current.threshold') + 5:.2f} since")
        page.evaluate("models.plate = {...served, fingerprint: 'another'}; show(current)")
        sync_api.expect(page.locator("#detail-model")).to_contain_text("another fit than the one served now")
        page.evaluate("delete models.plate; show(current)")
        sync_api.expect(page.locator("#detail-model")).to_contain_text("not served now")
        region_types = page.eval_on_selector_all("#region-type-1 option", "os => os.map(o => o.value)")
        assert "not-a-defect" in region_types and page.evaluate("current.regions[0].machine_type") in region_types
        page.evaluate("models.plate = served; show(current)")
        page.route("**/models", lambda route: route.fulfill(json={**page.evaluate("({default: 'plate', models: [models.plate]})"),
                                                                   "stored": ["gone", "plate"]}))
        page.evaluate("document.getElementById('f-model').replaceChildren(); loadModels()")
        sync_api.expect(page.locator("#f-model option")).to_have_count(2)
        assert page.eval_on_selector_all("#f-model option", "os => os.map(o => o.textContent)") == ["gone (not served)", "plate"]
        page.unroute("**/models")
        # Keys pressed while a review is on its way: said, not dropped, and "next" asks nothing about the comment being sent
        # (regression probe 2026-12-06: g after d was dropped unsaid, n asked to leave the comment as it was saved).
        on_its_way: list[Any] = []
        asked: list[str] = []

        def answer(dialog):  # type: ignore[no-untyped-def]
            asked.append(dialog.message)
            return dialog.accept() if dialog.message.startswith("No defect is marked") else dialog.dismiss()

        page.on("dialog", answer)
        page.route("**/review", lambda route: on_its_way.append(route))
        reviews = page.evaluate("current.reviews.length")
        page.fill("#comment", "seen at the rim")
        page.focus("#detail-heading")
        page.keyboard.press("d")
        page.wait_for_function("() => document.getElementById('confirm').disabled")  # a function: no eval under the CSP
        page.keyboard.press("g")
        sync_api.expect(page.locator("#review-msg")).to_have_text(re.compile(r"is on its way: press g again once it is saved$"))
        page.keyboard.press("n")
        sync_api.expect(page.locator("#review-msg")).to_have_text(re.compile(r"is on its way: press n again once it is saved$"))
        assert len(on_its_way) == 1 and not [m for m in asked if "not sent" in m], asked
        on_its_way[0].continue_()
        sync_api.expect(page.locator("#review-msg")).to_have_text(re.compile(r"^review of #\d+ saved: DEFECTIVE"), timeout=30_000)
        page.unroute("**/review")
        page.remove_listener("dialog", answer)
        assert page.evaluate("current.reviews.length") == reviews + 1
        # A service that stops answering is said at the top, and the banner goes when it is back.
        page.route("**/inspections?*", lambda route: route.abort())
        page.evaluate("loadHistory(0)")
        sync_api.expect(page.locator("#offline")).to_be_visible()
        sync_api.expect(page.locator("#offline")).to_contain_text("the service does not answer")
        page.unroute("**/inspections?*")
        sync_api.expect(page.locator("#offline")).to_be_hidden(timeout=15_000)
        # The reviewer's name outlives a reload typed before any review.
        page.reload()
        assert page.input_value("#reviewer") == "Ines"
        # A file refused alone: its reason in what is announced, not only a count (a11y probe 2026-12-06).
        notes = tmp_path / "notes.png"
        notes.write_text("line notes, not a picture")
        page.set_input_files("#file-input", str(notes))
        sync_api.expect(page.locator("#upload-status")).to_contain_text("0 of 1 image(s) inspected; 1 not (listed below) — ", timeout=60_000)
        sync_api.expect(page.locator("#upload-status")).to_contain_text("not a readable image")
        # The history's changes are announced too.
        assert page.get_attribute("#history-msg", "role") == page.get_attribute("#page-info", "role") == "status"


def test_on_a_tablet_the_review_buttons_stay_in_reach(pool: ModelPool, images: dict[str, Path], tmp_path: Path) -> None:
    # Tablet probe 2026-12-06: at 1024 x 768 the review buttons began at y = 1086, below the picture: a scroll away for
    # every part. On a touch screen they now keep to the screen's foot while the inspection is on show.
    from PIL import Image

    tall = tmp_path / "tall.png"  # a part photographed as large as the probe's (its picture fills the screen's height)
    with Image.open(images["bad"]) as im:
        im.resize((im.width * 4, im.height * 4)).save(tall)
    with _page_on_service(pool, tmp_path, "Tia") as (sync_api, page, server):
        page.set_input_files("#file-input", str(tall))
        sync_api.expect(page.locator("#verdict")).to_have_text("DEFECTIVE", timeout=60_000)
        hash_ = page.evaluate("location.hash")
        context = page.context.browser.new_context(viewport={"width": 1024, "height": 768}, has_touch=True, is_mobile=True)
        try:
            tablet = context.new_page()
            tablet.goto(server.url + "/" + hash_)
            sync_api.expect(tablet.locator("#verdict")).to_have_text("DEFECTIVE", timeout=30_000)
            tablet.locator("#detail-heading").scroll_into_view_if_needed()
            box = tablet.locator("#mark-good").bounding_box()
            assert box is not None and box["y"] + box["height"] <= 768 and box["height"] >= 44, box
            assert tablet.evaluate("document.documentElement.scrollWidth") <= 1024
            # The keys' box wherever the keys work (a11y probe 2026-12-06: hidden on a tablet, whose keyboard cover filed a review
            # with a stray letter and no switch to find), and the bar kept to a third of the screen with it.
            assert tablet.locator("#review-keys").is_visible()
            assert tablet.locator("#review-bar").bounding_box()["height"] <= 768 / 3
            # A review keeps the page where it was (it had jumped 500 px, the pictures out of view).
            tablet.fill("#reviewer", "Dana")
            tablet.locator("#detail-heading").scroll_into_view_if_needed()
            tablet.locator("#confirm").focus()
            before = tablet.evaluate("window.scrollY")
            tablet.keyboard.press("Enter")
            sync_api.expect(tablet.locator("#review-msg")).to_contain_text("saved", timeout=30_000)
            assert tablet.evaluate("window.scrollY") == before
            # Portrait, where the bar wraps to three lines: a field focused is scrolled clear of it by its height as laid out
            # (a11y probe 2026-12-07: 9rem had left the missed defect's box under a 200 px bar).
            tablet.set_viewport_size({"width": 768, "height": 1024})
            tablet.wait_for_function("() => getComputedStyle(document.documentElement).getPropertyValue('--review-bar') === "
                                     "`${document.getElementById('review-bar').offsetHeight}px`")
            tablet.evaluate("window.scrollTo(0, 0)")
            tablet.locator("#missed-box").focus()
            field, bar = tablet.locator("#missed-box").bounding_box(), tablet.locator("#review-bar").bounding_box()
            assert field is not None and bar is not None and field["y"] + field["height"] <= bar["y"], (field, bar)
            # Not on a phone, where the buttons wrap to three lines (regression probe: a bar of 38 % of the screen).
            tablet.set_viewport_size({"width": 360, "height": 740})
            assert tablet.evaluate("getComputedStyle(document.getElementById('review-bar')).position") == "static"
        finally:
            context.close()


def test_the_page_on_a_slow_or_broken_network(pool: ModelPool, images: dict[str, Path], tmp_path: Path) -> None:
    # Tablet probe 2026-12-07, on a slow network: a key pressed just after "next" was filed on the inspection before; the next
    # inspection's verdict stood over the previous part's pictures; the 15 s refresh's answer overwrote a filtered one; a row
    # tapped offline left an empty panel that the service's return did not fill; a review whose answer was lost stayed
    # "may have saved it", and sent again was said to be another inspector's; a reload went back to the history's first page.
    with (_page_on_service(pool, tmp_path, "Tab") as (sync_api, page, server),
          httpx.Client(base_url=server.url, headers={"X-API-Token": TOKEN}) as client):
        ids = [client.post("/inspections", files={"file": (f"{name}.png", images[name].read_bytes(), "image/png")}).json()["id"]
               for name in ("good", "bad", "good")]

        def reviews(inspection: int) -> list[tuple[str, str]]:
            return [(r["by"], r["verdict"]) for r in client.get(f"/inspections/{inspection}").json()["reviews"]]

        page.goto(f"{server.url}/#/inspections/{ids[0]}")
        sync_api.expect(page.locator("#detail-id")).to_have_text(f"#{ids[0]}", timeout=30_000)
        page.fill("#reviewer", "Tab")
        page.dispatch_event("#reviewer", "change")
        # Every inspection fetched slowly: "n", then "g" while the next one is on its way.
        page.evaluate("""() => { const real = api; window.slowInspections = true;
            api = async (path, opts) => { if (window.slowInspections && path.startsWith('/inspections/') && !(opts && opts.method))
              await new Promise((r) => setTimeout(r, 1500)); return real(path, opts); }; }""")
        held: list[Any] = []
        page.route("**/overlay.png*", lambda route: held.append(route))  # the next inspection's overlay held back
        page.locator("#detail-heading").focus()
        page.keyboard.press("n")
        page.keyboard.press("g")  # while the next one is looked for
        sync_api.expect(page.locator("#review-msg")).to_contain_text("is being opened: press g again once it is shown")
        page.wait_for_function(f"() => location.hash === '#/inspections/{ids[2]}'")
        page.keyboard.press("d")  # while it is fetched
        sync_api.expect(page.locator("#review-msg")).to_contain_text(f"#{ids[2]} is being opened: press d again once it is shown")
        assert page.locator("#mark-good").is_disabled()
        sync_api.expect(page.locator("#detail-id")).to_have_text(f"#{ids[2]}", timeout=30_000)
        assert reviews(ids[0]) == [] and reviews(ids[2]) == []
        # Its overlay not loaded yet: hidden, not the one before under this verdict.
        assert page.evaluate("document.getElementById('overlay').classList.contains('loading')")
        for route in held:
            route.continue_()
        page.unroute("**/overlay.png*")
        page.wait_for_function("() => !document.getElementById('overlay').classList.contains('loading')", timeout=30_000)
        page.evaluate("window.slowInspections = false")

        # The unfiltered refresh answering after a filter's answer does not overwrite it.
        client.post(f"/inspections/{ids[1]}/review", json={"reviewer": "Lu", "verdict": "defective"})
        page.evaluate("""() => { const real = api; api = async (path, opts) => {
            if (path.startsWith('/inspections?') && !path.includes('verdict=')) await new Promise((r) => setTimeout(r, 1500));
            return real(path, opts); }; }""")
        page.evaluate("() => { loadHistory(0); }")  # the refresh, not waited for
        page.select_option("#f-verdict", "defective")
        page.wait_for_timeout(2500)
        assert page.locator("#history tr").count() == 1 and page.locator("#page-info").text_content() == "1–1 of 1"

        # A reload keeps the history's filters and page.
        page.reload()
        sync_api.expect(page.locator("#page-info")).to_have_text("1–1 of 1", timeout=30_000)
        assert page.locator("#f-verdict").input_value() == "defective"
        page.select_option("#f-verdict", "")
        sync_api.expect(page.locator("#page-info")).to_have_text("1–3 of 3", timeout=30_000)

        # A row tapped offline: said in view; back online, the inspection opens by itself.
        page.context.set_offline(True)
        page.locator(f'#history a[href="#/inspections/{ids[1]}"]').click()
        sync_api.expect(page.locator("#error")).to_contain_text(f"inspection #{ids[1]}", timeout=30_000)
        assert page.locator("#error").is_visible() and page.evaluate(
            "(() => { const r = document.getElementById('error').getBoundingClientRect(); return r.bottom > 0 && r.top < innerHeight; })()")
        page.context.set_offline(False)
        sync_api.expect(page.locator("#detail-id")).to_have_text(f"#{ids[1]}", timeout=30_000)
        sync_api.expect(page.locator("#error")).to_have_text("")

        # A review that reached the service but whose answer was lost: looked up when the service answers again.
        def lost_answer(route: Any) -> None:
            route.fetch()  # the service stores it...
            route.abort()  # ...and the answer never arrives
        page.route("**/review", lost_answer)
        before = len(reviews(ids[1]))
        page.click("#mark-defective")
        sync_api.expect(page.locator("#review-msg")).to_contain_text("no answer", timeout=30_000)
        page.unroute("**/review")
        page.evaluate("setOffline(false)")  # as the next answer from the service does
        sync_api.expect(page.locator("#review-msg")).to_contain_text(f"review of #{ids[1]} saved (its answer had been lost): DEFECTIVE",
                                                                   timeout=30_000)
        assert len(reviews(ids[1])) == before + 1
        # Sent again from the view before it: said as this reviewer's own, not another inspector's.
        page.route("**/review", lost_answer)
        page.click("#mark-defective")
        sync_api.expect(page.locator("#review-msg")).to_contain_text("no answer", timeout=30_000)
        page.unroute("**/review")
        page.evaluate("unanswered = null")  # pressed again before the service's return was noticed
        page.click("#mark-defective")
        sync_api.expect(page.locator("#review-msg")).to_contain_text("your review was saved already", timeout=30_000)
        assert len(reviews(ids[1])) == before + 2
        # Regression probe 2026-12-07: another verdict sent over a lost one is not "saved already".
        page.route("**/review", lost_answer)
        page.click("#mark-good")
        sync_api.expect(page.locator("#review-msg")).to_contain_text("no answer", timeout=30_000)
        page.unroute("**/review")
        page.evaluate("unanswered = null")
        page.click("#mark-defective")
        sync_api.expect(page.locator("#review-msg")).to_contain_text(
            "not saved — your earlier review (GOOD, sent when its answer was lost) was saved and is shown now", timeout=30_000)
        # A lost answer is looked up though another inspection was opened meanwhile (it had been dropped unsaid).
        page.route("**/review", lost_answer)
        page.once("dialog", lambda dialog: dialog.accept())  # no defect left marked on it: asked first
        page.click("#mark-defective")
        sync_api.expect(page.locator("#review-msg")).to_contain_text("no answer", timeout=30_000)
        page.unroute("**/review")
        page.evaluate(f"location.hash = '#/inspections/{ids[0]}'")
        sync_api.expect(page.locator("#review-msg")).to_contain_text(f"review of #{ids[1]} saved (its answer had been lost): DEFECTIVE",
                                                                   timeout=30_000)
        sync_api.expect(page.locator("#detail-id")).to_have_text(f"#{ids[0]}")
        # "n", then a row tapped before the next one is found: the buttons stay off until the row's inspection is shown (its
        # "next" had turned them on under the row's route, and a key filed a review on the inspection still on show).
        page.evaluate("""() => { const real = api; api = async (path, opts) => {
            if (path.includes('review=unreviewed')) await new Promise((r) => setTimeout(r, 1000));
            if (path.startsWith('/inspections/') && !(opts && opts.method)) await new Promise((r) => setTimeout(r, 3000));
            return real(path, opts); }; }""")
        page.locator("#detail-heading").focus()
        page.keyboard.press("n")
        page.evaluate(f"location.hash = '#/inspections/{ids[2]}'")
        page.wait_for_timeout(1800)  # "next" has its answer; the row's inspection not yet
        assert page.locator("#mark-good").is_disabled() and page.evaluate("current.id") == ids[0]
        assert page.get_attribute("#detail", "aria-busy") == "true"
        sync_api.expect(page.locator("#detail-id")).to_have_text(f"#{ids[2]}", timeout=30_000)
        assert not page.locator("#mark-good").is_disabled() and page.get_attribute("#detail", "aria-busy") is None
        # A review's answer arriving while another inspection is being opened leaves the address to the one opened.
        page.evaluate("""() => { const real = api; api = async (path, opts) => {
            if (path.endsWith('/review')) await new Promise((r) => setTimeout(r, 1000));
            return real(path, opts); }; }""")
        page.click("#mark-good")
        page.evaluate(f"location.hash = '#/inspections/{ids[1]}'")
        page.wait_for_timeout(1800)  # the review answered, the inspection opened not yet
        assert page.evaluate("location.hash") == f"#/inspections/{ids[1]}" and reviews(ids[2])[-1] == ("Tab", "good")
        sync_api.expect(page.locator("#detail-id")).to_have_text(f"#{ids[1]}", timeout=30_000)
        # Back pressed while another inspection is opening: that opening is let go (regression probe 2026-12-07: its answer was
        # shown anyway, under the address Back had left, and the entry of the one on show was replaced).
        page.evaluate("""() => { const real = api; api = async (path, opts) => {
            if (path.startsWith('/inspections/') && !(opts && opts.method)) await new Promise((r) => setTimeout(r, 2000));
            return real(path, opts); }; }""")  # 5 s in all, with the delays above
        page.evaluate(f"location.hash = '#/inspections/{ids[0]}'")
        page.wait_for_timeout(300)
        page.go_back()
        page.wait_for_timeout(6000)  # the opening's answer is in
        assert page.evaluate("[location.hash, current.id]") == [f"#/inspections/{ids[1]}", ids[1]]
        sync_api.expect(page.locator("#detail-id")).to_have_text(f"#{ids[1]}")
        assert not page.locator("#mark-good").is_disabled() and page.get_attribute("#detail", "aria-busy") is None
        page.go_forward()  # the entry Back left is still there
        sync_api.expect(page.locator("#detail-id")).to_have_text(f"#{ids[0]}", timeout=30_000)
        # The row of the one on show clicked while another opens: that opening let go too (it had opened; regression probe).
        page.evaluate(f"location.hash = '#/inspections/{ids[2]}'")
        page.wait_for_timeout(300)
        page.locator(f'#history a[href="#/inspections/{ids[0]}"]').click()
        page.wait_for_timeout(6000)
        assert page.evaluate("[location.hash, current.id]") == [f"#/inspections/{ids[0]}", ids[0]]
        # Back to its own entry, the other's kept after it (followed as a link, the click had pushed an entry that left the
        # other's unnumbered, and Back then Forward showed one inspection under the other's address; regression probe).
        page.go_forward()
        sync_api.expect(page.locator("#detail-id")).to_have_text(f"#{ids[2]}", timeout=30_000)
        page.go_back()
        sync_api.expect(page.locator("#detail-id")).to_have_text(f"#{ids[0]}", timeout=30_000)
        assert page.evaluate("location.hash") == f"#/inspections/{ids[0]}"
        # Back pressed while "next unreviewed" looks: the look is let go (it had opened over Back, losing Forward's entry).
        fresh = client.post("/inspections", files={"file": ("fresh.png", images["good"].read_bytes(), "image/png")}).json()["id"]
        page.evaluate(f"location.hash = '#/inspections/{ids[1]}'")
        sync_api.expect(page.locator("#detail-id")).to_have_text(f"#{ids[1]}", timeout=30_000)
        page.locator("#detail-heading").focus()
        page.keyboard.press("n")
        page.wait_for_timeout(200)
        page.go_back()
        sync_api.expect(page.locator("#detail-id")).to_have_text(f"#{ids[0]}", timeout=30_000)
        page.wait_for_timeout(1500)  # the look's answer is in
        assert page.evaluate("[location.hash, current.id]") == [f"#/inspections/{ids[0]}", ids[0]] and fresh not in ids
        page.go_forward()
        sync_api.expect(page.locator("#detail-id")).to_have_text(f"#{ids[1]}", timeout=30_000)
        # An inspection that fails to open: its error takes the focus (it had fallen to the page's body).
        page.evaluate("location.hash = '#/inspections/99999'")
        sync_api.expect(page.locator("#error")).to_contain_text("inspection #99999", timeout=30_000)
        assert page.evaluate("document.activeElement.id") == "error"
        # "Next unreviewed" within the history's filters (regression probe 2026-12-07: it had opened any model's, any type's part).
        asked: list[str] = []
        page.route("**/inspections?*review=unreviewed*", lambda route: (asked.append(route.request.url), route.continue_()))
        page.fill("#f-type", "scratch")  # typed, not applied: not among the filters (regression probe 2026-12-07)
        page.evaluate("() => { nextUnreviewed(); }")
        page.wait_for_function("() => !busy.size && current && location.hash === `#/inspections/${current.id}`",
                               timeout=30_000)  # the part it found, opened
        assert asked and "type=" not in asked[-1], asked
        page.evaluate("() => loadHistory(0)")  # the 15 s refresh: the filters on show, not one half typed (regression probe)
        assert page.evaluate("shownFilters.toString()") == "" and page.locator("#page-info").text_content() != "0–0 of 0"
        page.press("#f-type", "Enter")
        sync_api.expect(page.locator("#page-info")).to_have_text("0–0 of 0", timeout=30_000)
        page.evaluate("() => { nextUnreviewed(); }")
        # The one on show is not among them: "no other" had been said of it (regression probe of 0.3.16).
        sync_api.expect(page.locator("#review-msg")).to_have_text("no inspection among those the history's filters show is waiting "
                                                                 "for a review", timeout=30_000)
        assert "type=scratch" in asked[-1], asked


def test_the_page_served_under_a_proxy_path_works_there(pool: ModelPool, images: dict[str, Path], tmp_path: Path) -> None:
    # Proxy probe 2026-12-07: served under /inspect/ by a proxy, the page called /models and /inspections at the host's root
    # (every call 404) and showed its pictures from there. Mounted under /inspect here, as a proxy with --root-path serves it.
    with _page_on_service(pool, tmp_path, "Pia", under="/inspect") as (sync_api, page, _server):
        page.set_input_files("#file-input", str(images["bad"]))
        sync_api.expect(page.locator("#verdict")).to_have_text("DEFECTIVE", timeout=60_000)
        assert page.locator("#overlay").get_attribute("src").startswith("/inspect/inspections/")
        page.wait_for_function("() => document.getElementById('overlay').naturalWidth > 0", timeout=30_000)  # a function: no eval under the CSP
        sync_api.expect(page.locator("#history tr").first).to_contain_text(images["bad"].name, timeout=30_000)
        # The proxy passes an upload on and answers 504 (the service stored it): not "nothing was saved", and sent again it
        # is answered with the inspection stored, not stored twice (regression probe 2026-12-07).
        first_id = page.evaluate("current.id")

        def gateway_timeout(route):  # type: ignore[no-untyped-def]
            route.fetch()  # reaches the service
            route.fulfill(status=504, body="<html>504 Gateway Time-out</html>", headers={"content-type": "text/html"})

        page.route("**/inspections", gateway_timeout)
        page.set_input_files("#file-input", str(images["good"]))
        sync_api.expect(page.locator("#batch li")).to_contain_text("it may have saved it: the history shows it", timeout=60_000)
        # Not "not inspected": it may have been (regression probe 2026-12-07).
        assert page.locator("#batch li").inner_text().startswith(f"{images['good'].name}: no answer — ")
        page.unroute("**/inspections")
        page.click("#retry")
        sync_api.expect(page.locator("#upload-status")).to_have_text(re.compile(r"^1 of 1 image\(s\) inspected"), timeout=60_000)
        again = page.evaluate("current.id")
        total = page.evaluate("async () => (await (await fetch(ROOT + '/inspections')).json()).total")
        assert again == first_id + 1 and total == 2


def test_the_gallery_filters_its_cards_in_chromium(tmp_path: Path) -> None:
    """The static gallery, opened from disk: the verdict and type controls narrow the cards and say how many are shown
    (an inspector with 300 cards had scrolled for the cracks)."""
    import numpy as np

    from defectlens.explain.gallery import ResultRow, gallery_html
    from defectlens.io import png_bytes

    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    rows = [ResultRow("good.png", "good", False, 0.1, 0, (), "fine"),
            ResultRow("two.png", "two", True, 0.9, 2, ("crack", 'spot "x"?'), "two defects"),
            ResultRow("one.png", "one", True, 0.8, 1, ('spot "x"',), "one defect"),
            ResultRow("odd.png", "odd", True, 0.7, 1, ("unknown",), "a region of no known type")]
    page_file = tmp_path / "index.html"
    page_file.write_text(gallery_html(rows, "batch"), encoding="utf-8")
    for row in rows:  # the overlays the cards link to
        (tmp_path / f"{row.name}.png").write_bytes(png_bytes(np.zeros((4, 4, 3), np.uint8)))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_file.as_uri())
            visible = lambda: page.locator("article.card:visible h2").all_inner_texts()  # noqa: E731
            sync_api.expect(page.locator("#shown")).to_have_text("4 of 4 image(s) shown")
            options = lambda: page.locator("select[name=type] option").all_inner_texts()  # noqa: E731
            assert options() == ["any", "crack (1)", 'spot "x" (2)', "unknown (1)"]
            page.get_by_label("good (1)").check()
            assert visible() == ["good.png"]
            # The type counts follow the verdict chosen (they had stayed those of every card).
            assert options() == ["any", "crack (0)", 'spot "x" (0)', "unknown (0)"]
            page.get_by_label("defective (3)").check()
            page.select_option("select[name=type]", 'spot "x"')  # a guessed "spot?" counts with the named one
            assert visible() == ["two.png", "one.png"]
            sync_api.expect(page.locator("#shown")).to_have_text("2 of 4 image(s) shown")
            # ... and the verdict counts follow the type.
            assert [t.strip() for t in page.locator("form#filter label").all_inner_texts()[:3]] == ["all (2)", "defective (2)", "good (0)"]
            page.select_option("select[name=type]", "unknown")
            assert visible() == ["odd.png"]
            # Back from an overlay: the cards follow the controls the browser puts back (regression probe 2026-12-06: all had
            # shown under "defective / unknown").
            page.click("article.card:visible a[aria-label^='overlay']")
            page.go_back()
            assert page.locator("select[name=type]").input_value() == "unknown" and visible() == ["odd.png"]
            page.get_by_label("all (1)").check()
            page.select_option("select[name=type]", "")
            assert [t.strip() for t in page.locator("form#filter label").all_inner_texts()[:3]] == ["all (4)", "defective (3)", "good (1)"]
            assert len(visible()) == 4 and errors == []
        finally:
            browser.close()
