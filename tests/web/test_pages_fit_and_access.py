"""Every page in a real browser at desktop width and at a phone's (390x844): no horizontal
scroll on the phone, no table header word broken across lines, no serious or critical
accessibility violation from axe-core (the npm package `make test` installs into
build/node_modules, evaluated in the page by Playwright),
the timeline used from the keyboard, and a screenshot of each page at both widths in
build/screenshots/ (`make screenshots` copies them to docs/screenshots/)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import repo_root, wait_for_job
from tests.web.test_browser import CHROMIUM, browser, log_in, shots  # noqa: F401  (fixtures)

AXE = repo_root() / "build" / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = {"desktop": {"width": 1100, "height": 900}, "phone": {"width": 390, "height": 844}}
WAIT_MS = 180_000

pytestmark = [pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent"),
              pytest.mark.skipif(not AXE.exists(), reason=f"{AXE} is absent: `make test` installs it (npm)")]


@pytest.fixture(scope="module")
def recordings(farm, face_clip):
    """A recording of a stranger (matched against nobody, ``gallery_ids`` empty: unknown tracks
    to enrol, as they stay when the gallery changes and stored recordings are re-identified),
    then the same man enrolled and on the watchlist, and a recording naming him."""
    import cv2

    from services import gallery, runtime
    from services.submit import submit_file
    from tests.test_analytics import yao_in_players

    # A long name without a space, as camera exports have: it must wrap, not widen the page.
    stranger = submit_file(runtime.farm(), face_clip.path, name="corridor_camera_2_export_" * 6 + ".mp4",
                           options={"gallery_ids": []})
    assert wait_for_job(stranger)["status"] == "done"
    gallery.enroll(runtime.farm(), "Page Yao", [("yao.jpg", cv2.imencode(".jpg", yao_in_players())[1].tobytes())],
                   largest_face=True)
    gallery.set_watchlist(runtime.farm(), "Page Yao", True)
    named = submit_file(runtime.farm(), face_clip.path, name="lobby.mp4")
    assert wait_for_job(named)["status"] == "done"
    yield {"stranger": stranger, "named": named}
    gallery.delete_identity(runtime.farm(), "Page Yao")


def pages(recordings) -> dict[str, str]:
    return {"jobs": "/jobs", "upload": "/upload", "job": f"/jobs/{recordings['named']}",
            "job-unknown": f"/jobs/{recordings['stranger']}", "gallery": "/gallery", "person": "/people/Page Yao",
            "alerts": "/alerts", "account": "/account", "password": "/account/password", "users": "/users",
            "error": "/jobs/no-such-job"}


def small_png(png: bytes, path: Path) -> None:
    """A screenshot in 256 colours (a third of the bytes or less; the pages are mostly flat colour)."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)


# The words of table headers, badges and people's names in cells shown (not the headers hidden
# for the phone's cards) that a line break cuts in two ("Phot" / "os", a badge's "watchli" / "st",
# a name's "obam" / "a"): a word whose box takes more than one line.
BROKEN_HEADER_WORDS = """() => [...document.querySelectorAll('th, .badge, td a[href^="/people/"], td[data-label="Who"]')]
    .filter((el) => el.matches('.badge') ? el.getClientRects().length > 0
                                         : el.closest('thead, table').getBoundingClientRect().width > 1)
    .flatMap((th) => {
        const broken = [], walker = document.createTreeWalker(th, NodeFilter.SHOW_TEXT);
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            for (const word of node.textContent.matchAll(/\\S+/g)) {
                const range = document.createRange();
                range.setStart(node, word.index);
                range.setEnd(node, word.index + word[0].length);
                const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
                if (lines.size > 1) broken.push(word[0]);
            }
        }
        return broken;
    })"""


def check(page, name: str, width: str, shots) -> dict:  # noqa: F811
    """What is wrong with the page as it is shown now: its horizontal overflow (phone), table
    header words broken across lines, and axe's serious and critical violations. Saves its
    screenshot."""
    page.evaluate("document.querySelectorAll('details').forEach((d) => { d.open = true; })")
    if page.locator("#video").count():
        page.wait_for_function("() => document.getElementById('video').readyState >= 2", timeout=WAIT_MS)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    broken_headers = page.evaluate(BROKEN_HEADER_WORDS)
    page.evaluate(AXE.read_text())
    found = page.evaluate("""async () => {
        const result = await axe.run(document, {resultTypes: ['violations']});
        return result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
            .map((v) => v.id + ' (' + v.impact + '): ' + v.nodes.map((n) => n.target.join(' ')).join(', '));
    }""")
    small_png(page.screenshot(full_page=True), shots / f"{name}-{width}.png")
    return {"overflow_px": overflow if width == "phone" else 0, "broken_headers": broken_headers, "axe": found}


def problems_in(found: dict[str, dict]) -> dict[str, dict]:
    """The pages ``check`` found something wrong with."""
    return {name: what for name, what in found.items()
            if what["overflow_px"] > 0 or what["broken_headers"] or what["axe"]}


@pytest.mark.parametrize("width", list(WIDTHS))
def test_every_page_fits_and_passes_axe(browser, live_server, accounts_by_role, recordings, shots, width):  # noqa: F811
    context = browser.new_context(viewport=WIDTHS[width])
    page = context.new_page()
    try:
        problems = {}
        page.goto(f"{live_server}/login")
        problems["login"] = check(page, "login", width, shots)
        log_in(page, live_server, accounts_by_role["admin"].username)
        for name, path in pages(recordings).items():
            page.goto(live_server + path)
            page.wait_for_load_state("load")
            problems[name] = check(page, name, width, shots)
        assert problems_in(problems) == {}
    finally:
        context.close()


def test_badges_keep_their_words_whole_on_a_tablet(browser, live_server, accounts_by_role, recordings):  # noqa: F811
    """Cells break long values anywhere, and so the alerts table squeezed its Kind column
    until the red badge read "watchli" / "st" (seen at 1280 px with longer details). On a
    tablet's width, above the phone's cards, every badge keeps its words whole."""
    context = browser.new_context(viewport={"width": 768, "height": 1024})
    page = context.new_page()
    try:
        log_in(page, live_server, accounts_by_role["admin"].username)
        for path in ("/alerts", f"/alerts?job={recordings['named']}", "/jobs", "/people/Page Yao"):
            page.goto(live_server + path)
            assert page.locator(".badge").count() > 0, path
            assert page.evaluate(BROKEN_HEADER_WORDS) == [], path
    finally:
        context.close()


@pytest.mark.parametrize("width", [1100, 768])
def test_names_in_tables_keep_their_letters_together(browser, live_server, accounts_by_role, recordings,  # noqa: F811
                                                     width):
    """Cells break long values anywhere, and so the gallery and the alerts table squeezed the
    column of a person's name until a short name read "obam" / "a" (seen at 1100 px with three
    people enrolled), and an alert's "unknow" / "n". A name keeps its letters on one line."""
    import cv2

    from core.alerts import Alerts
    from services import gallery, runtime
    from tests.clipmaker import face_photo
    from tests.web.test_job_pages import done_job

    gallery.enroll(runtime.farm(), "Montgomery", [("m.jpg", cv2.imencode(".jpg", face_photo())[1].tobytes())])
    masked = done_job("a_person_on_the_watchlist_since_removed.mp4")
    Alerts(runtime.records()).raise_new(masked, 1, [{"kind": "no_mask", "track": 1, "frame": 0, "t": 0.0,
                                                     "detail": "face without a mask"}], {1: None}, (), True)
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    try:
        log_in(page, live_server, accounts_by_role["admin"].username)
        for path in ("/gallery", "/alerts", f"/alerts?job={masked}"):
            page.goto(live_server + path)
            assert page.locator('td a[href^="/people/"], td[data-label="Who"]').count() > 0, path
            assert page.evaluate(BROKEN_HEADER_WORDS) == [], path
    finally:
        context.close()
        gallery.delete_identity(runtime.farm(), "Montgomery")


def test_the_menu_wraps_on_a_phone_and_keeps_every_link_visible(browser, live_server, accounts_by_role):  # noqa: F811
    context = browser.new_context(viewport=WIDTHS["phone"])
    page = context.new_page()
    try:
        log_in(page, live_server, accounts_by_role["admin"].username)
        for link in ("Jobs", "Upload", "Gallery", "Alerts", "Cameras", "Users", "Log out"):
            box = page.get_by_role("link" if link != "Log out" else "button", name=link, exact=True).bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, link
        name = page.locator(f"nav a:has-text('{accounts_by_role['admin'].username}')").bounding_box()
        assert name["x"] + name["width"] <= 390
    finally:
        context.close()


def test_the_timeline_is_one_row_per_person_and_works_from_the_keyboard(browser, live_server, accounts_by_role,  # noqa: F811
                                                                       recordings):
    context = browser.new_context(viewport=WIDTHS["desktop"])
    page = context.new_page()
    try:
        log_in(page, live_server, accounts_by_role["viewer"].username)
        page.goto(f"{live_server}/jobs/{recordings['named']}")
        page.wait_for_function("() => document.getElementById('video').readyState >= 1", timeout=WAIT_MS)
        rows = page.locator("#timeline .tl-row")
        assert rows.count() == 1 and rows.first.get_attribute("data-kind") == "person"     # both tracks, one row
        # People seen: each link reads the name once (the face's alt of the name read it twice).
        assert page.locator(".identities").get_by_role("link", name="Page Yao", exact=True).count() == 1
        bars = rows.first.locator("rect.bar")
        assert bars.count() == 2 and len({b.get_attribute("fill") for b in bars.all()}) == 1
        later = float(bars.nth(1).get_attribute("data-t"))
        assert later > 1
        # Tab from the top of the page to the second bar, then Enter: the video goes there.
        for _ in range(80):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.dataset && document.activeElement.dataset.t") == \
                    bars.nth(1).get_attribute("data-t"):
                break
        else:
            pytest.fail("the second bar was never reached with Tab")
        page.keyboard.press("Enter")
        page.wait_for_function("t => Math.abs(document.getElementById('video').currentTime - t) < 0.1", arg=later)
        page.wait_for_function("() => parseFloat(document.querySelector('line.playhead').getAttribute('x1')) > 0")

        # ?t= opens the video at that moment (the person page's and the alerts page's links).
        page.goto(f"{live_server}/jobs/{recordings['named']}?t=5.00")
        page.wait_for_function("() => Math.abs(document.getElementById('video').currentTime - 5) < 0.1",
                               timeout=WAIT_MS)
        # The other recording's unknown face can be enrolled from its row.
        page.goto(f"{live_server}/jobs/{recordings['stranger']}")
        unknown = page.locator("#timeline .tl-row[data-kind='unknown']")
        assert unknown.count() == 2 and unknown.first.locator("img").get_attribute("src").endswith("/thumbnail")
        assert page.locator("details.enrol").count() == 0          # a viewer may not enrol
    finally:
        context.close()


def unknown_faces_results() -> dict:
    """Results of 3 s (10 fps) with no face crops stored: one unknown track of 2.5 s (a row of
    its own saying why it has no face) and four short ones (one row)."""
    tracks = [(1, 0, 25), (2, 26, 27), (3, 26, 28), (4, 27, 29), (5, 28, 29)]
    frames = [{"index": i, "t": i / 10, "faces": [
        {"box": [0, 0, 8, 8], "score": 0.9, "track": track, "identity": None, "similarity": None, "mask": None,
         "mask_score": None, "temperature_c": None} for track, first, last in tracks if first <= i <= last]}
        for i in range(30)]
    return {"frames": frames, "tracks": [
        {"track": track, "identity": None, "first_frame": first, "last_frame": last, "best_similarity": None,
         "mask": None, "max_temperature_c": None} for track, first, last in tracks]}


@pytest.mark.parametrize("width", list(WIDTHS))
def test_each_timeline_label_sits_beside_its_face(browser, live_server, accounts_by_role, farm, width):  # noqa: F811
    """A label longer than the column's room beside the 40 px face ("no face clear enough to
    recognise or enrol", "4 short unknown tracks") wrapped whole under the face at desktop
    width: every such row twice as tall, its name under an empty grey square, away from its bar."""
    from tests.web.test_job_pages import done_job

    job_id = done_job("label beside face.mp4", **unknown_faces_results())
    context = browser.new_context(viewport=WIDTHS[width])
    page = context.new_page()
    try:
        log_in(page, live_server, accounts_by_role["viewer"].username)
        page.goto(f"{live_server}/jobs/{job_id}")
        rows = page.locator("#timeline .tl-row")
        assert [row.get_attribute("data-kind") for row in rows.all()] == ["unknown", "short"]
        assert "no face clear enough" in rows.first.inner_text()
        for row in rows.all():
            face = row.locator(".tl-label .tl-noface, .tl-label img").first.bounding_box()
            name = row.locator(".tl-label > span:not(.tl-noface)").bounding_box()   # the name
            assert name["x"] >= face["x"] + face["width"], row.inner_text()   # beside it, not under it
            assert name["y"] < face["y"] + face["height"], row.inner_text()
    finally:
        context.close()


def test_a_repeated_alert_folds_under_the_one_that_rang_on_a_phone(browser, live_server, accounts_by_role,  # noqa: F811
                                                                    recordings):
    """The named recording shows the watch-listed man twice (two tracks, two alerts): the
    second is a repeat, folded under the first; opened, it links to its moment."""
    context = browser.new_context(viewport=WIDTHS["phone"])
    page = context.new_page()
    try:
        log_in(page, live_server, accounts_by_role["viewer"].username)
        page.goto(f"{live_server}/alerts?job={recordings['named']}")
        assert page.locator("tr[data-alert]").count() == 1
        repeats = page.locator("tr[data-alert] details.repeats")
        summary = repeats.locator("summary")
        assert summary.inner_text() == "repeated 1 time, not sent"
        link = repeats.locator("li[data-repeat] a")
        assert not link.is_visible()                      # folded until asked for
        summary.click()
        assert link.is_visible() and re.fullmatch(r"at \d+\.\d\d s", link.inner_text())
        box = link.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= WIDTHS["phone"]["width"]
        assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
        link.click()
        page.wait_for_url(re.compile(rf".*/jobs/{recordings['named']}\?t=\d+\.\d\d$"))
    finally:
        context.close()


def test_screenshots_are_small(shots):  # noqa: F811
    """The README shows them: every page's, at both widths, each well under 300 KB."""
    taken = sorted(Path(shots).glob("*-desktop.png")) + sorted(Path(shots).glob("*-phone.png"))
    if not taken:
        pytest.skip("no screenshots taken in this run")
    assert {p.name: p.stat().st_size for p in taken if p.stat().st_size > 300_000} == {}
    assert {re.sub(r"-(desktop|phone)\.png$", "", p.name) for p in taken} >= {"login", "jobs", "job", "gallery"}
