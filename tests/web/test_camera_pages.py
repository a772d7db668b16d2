"""The camera pages in a real browser, with a real camera: GStreamer's RTSP server plays a clip
of a face on the watchlist, the ingester watches it, the farm's workers analyse and draw its
segments. The camera page plays the annotated video (its clock advances, a few seconds behind
live) with the watchlist alert beside it; the list shows the camera's status and latency;
operators add and delete cameras (with a confirmation), viewers cannot. Both pages pass axe
and fit a phone, and leave their screenshots in build/screenshots/."""

from __future__ import annotations

import re
import time

import pytest

from tests.clipmaker import make_clip
from tests.rtsp_camera import RtspCamera, gstreamer_missing, running_ingest
from tests.waiting import wait_until
from tests.web.test_browser import CHROMIUM, browser, log_in, shots  # noqa: F401  (fixtures)
from tests.web.test_pages_fit_and_access import AXE, WIDTHS, check, problems_in

WAIT_S = 120
CAPTURED_FROM = 1_796_550_000.0

pytestmark = [pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent")]


@pytest.fixture(scope="module")
def registry(farm):
    from core.cameras import CameraRegistry

    return CameraRegistry.from_url(farm.redis_url)


@pytest.fixture(scope="module")
def live_camera(farm, registry, tmp_path_factory):
    """A camera on the watchlist's face, live and drawn: its id."""
    reason = gstreamer_missing()
    if reason:
        pytest.skip(reason)
    import cv2

    from services import gallery, runtime
    from tests.test_analytics import yao_in_players

    gallery.enroll(runtime.farm(), "Live Yao", [("yao.jpg", cv2.imencode(".jpg", yao_in_players())[1].tobytes())], largest_face=True)
    gallery.set_watchlist(runtime.farm(), "Live Yao", True)
    folder = tmp_path_factory.mktemp("camera")
    clip = make_clip(folder / "lobby.mp4", seconds=90, fps=15, gop=15, size=(640, 360), face_windows=[(0, 90)],
                     audio=False)
    with RtspCamera(clip.path) as camera, running_ingest(registry):
        camera_id = registry.add("Lobby camera", camera.url)["id"]
        try:
            wait_until(lambda: registry.state(camera_id)["latency_p50_s"] is not None, WAIT_S, "a processed segment")
            assert registry.view(camera_id) == []             # nobody watches: nothing is drawn
            yield camera_id
        finally:
            registry.delete(camera_id)
            gallery.delete_identity(runtime.farm(), "Live Yao")


def test_the_camera_page_plays_the_annotated_camera_behind_live_with_its_alerts(
        browser, live_server, accounts_by_role, live_camera):  # noqa: F811
    context = browser.new_context(viewport=WIDTHS["desktop"])
    page = context.new_page()
    try:
        log_in(page, live_server, accounts_by_role["viewer"].username)
        page.goto(f"{live_server}/cameras/{live_camera}")
        page.wait_for_function("() => document.getElementById('live-video').currentTime > 0.5",
                               timeout=WAIT_S * 1000)
        started = page.evaluate("document.getElementById('live-video').currentTime")
        # It keeps playing: later pieces come and are appended as the camera goes on.
        page.wait_for_function(f"() => document.getElementById('live-video').currentTime > {started} + 4",
                               timeout=WAIT_S * 1000)
        lag, lag_at, now = page.evaluate("[document.getElementById('live').dataset.lag, "
                                         "document.getElementById('live').dataset.lagAt, Date.now()]")
        assert now - int(lag_at) < 2000                # worked out for the picture on screen now
        assert 1 < float(lag) < 30, lag                # behind live (a segment is 2 s), but live
        assert page.evaluate("document.getElementById('live-video').videoWidth") == 640
        page.wait_for_selector("#live-alerts li", timeout=WAIT_S * 1000)
        assert "Live Yao" in page.inner_text("#live-alerts")
        # "live", or "live, N s behind" on a machine loaded enough that the segments queue up
        assert re.fullmatch(r"live(, \d+ s behind)?", page.inner_text("#live-status"))
        assert page.locator("form.danger").count() == 0        # a viewer may not delete it
    finally:
        context.close()


def raise_alert(registry, camera_id: str, track: int, alert_id: int, repeat_of: int | None = None) -> None:
    """An alert event as the ingester writes it (``segment_done``): one watchlist alert of a
    track in segment ``track``, captured 2 s a segment after a fixed moment."""
    line = {"segment": track, "first_frame": 30 * track, "frames": 30, "captured_at": CAPTURED_FROM + 2 * track,
            "ready_at": CAPTURED_FROM + 5 + 2 * track, "latency_s": 5.0, "faces": 1, "tracks": [],
            "alerts": [{"kind": "watchlist", "track": track, "frame": 30 * track, "t": 2.0 * track,
                        "detail": "Ada is on the watchlist", "captured_at": CAPTURED_FROM + 2 * track}]}
    assert registry.segment_done(camera_id, line, 15.0, folds=[{"id": alert_id, "repeat_of": repeat_of}])


def test_the_camera_page_folds_repeated_alerts_under_the_one_that_rang(browser, live_server, accounts_by_role,
                                                                      registry):  # noqa: F811
    """As the Alerts page does: a repeat (the same person again soon after, not sent) is shown
    under the alert that rang, whether it was raised before the page opened or while it is
    open; one whose alert is no longer listed stands alone, marked. The events are those the
    ingester writes (``segment_done``, with each alert's id and what it repeats)."""
    camera_id = registry.add("Repeating camera", "rtsp://127.0.0.1:9/repeats")["id"]

    def raised(track: int, alert_id: int, repeat_of: int | None) -> None:
        raise_alert(registry, camera_id, track, alert_id, repeat_of)

    def shown() -> list[tuple[str | None, int]]:
        """The listed alerts, newest first: (id, repeats folded under it)."""
        return page.evaluate("""() => [...document.querySelectorAll('#live-alerts > li')].map(li =>
            [li.dataset.alert || null, li.querySelectorAll('details.repeats li').length])""")

    context = browser.new_context(viewport=WIDTHS["desktop"])
    page = context.new_page()
    try:
        raised(1, 901, None)          # rang
        raised(2, 902, 901)           # its repeat
        raised(3, 903, 899)           # a repeat of one gone from the list
        log_in(page, live_server, accounts_by_role["viewer"].username)
        with page.expect_response(lambda response: "/events" in response.url):   # listening from here on
            page.goto(f"{live_server}/cameras/{camera_id}")
        assert shown() == [["903", 0], ["901", 1]]
        assert "(a repeat, not sent)" in page.inner_text("#live-alerts > li[data-alert='903']")
        assert page.inner_text("li[data-alert='901'] summary") == "repeated 1 time, not sent"
        raised(4, 904, 901)           # while the page is open: folded the same way
        raised(5, 905, None)
        raised(6, 906, 905)
        page.wait_for_function("() => document.querySelectorAll('#live-alerts details.repeats li').length === 3",
                               timeout=30_000)
        assert shown() == [["905", 1], ["903", 0], ["901", 2]]
        assert page.inner_text("li[data-alert='901'] summary") == "repeated 2 times, not sent"
        page.click("li[data-alert='901'] summary")
        assert "track 4" in page.inner_text("li[data-alert='901'] details ul")
    finally:
        context.close()
        registry.delete(camera_id)


def test_the_camera_page_shows_alerts_raised_before_its_stream_connected_in_one_time_format(
        browser, live_server, accounts_by_role, registry):  # noqa: F811
    """An alert raised after the page was rendered but before its event stream connected is
    shown (the stream resumes after the newest event the page was rendered with), none twice;
    the page and its script write capture times the same way. The browser's request for the
    events is held while the alert is raised, so the order is the one described, every run."""
    camera_id = registry.add("Gap camera", "rtsp://127.0.0.1:9/gap")["id"]

    def raised(track: int, alert_id: int) -> None:
        raise_alert(registry, camera_id, track, alert_id)

    def connect_after_an_alert(route) -> None:
        raised(2, 912)                # the page is rendered; its script has not connected yet
        route.continue_()

    context = browser.new_context(viewport=WIDTHS["desktop"])
    page = context.new_page()
    try:
        raised(1, 911)
        log_in(page, live_server, accounts_by_role["viewer"].username)
        page.route("**/events?*", connect_after_an_alert)
        page.goto(f"{live_server}/cameras/{camera_id}")
        page.wait_for_selector("li[data-alert='912']", timeout=30_000)
        raised(3, 913)                # and one while it is open
        page.wait_for_selector("li[data-alert='913']", timeout=30_000)
        listed = page.evaluate("[...document.querySelectorAll('#live-alerts > li')].map(li => li.dataset.alert)")
        assert listed == ["913", "912", "911"]
        # Rendered (911) and added by the script (912, 913): the same format, date and time, UTC.
        for alert_id, track in (("911", 1), ("912", 2), ("913", 3)):
            captured = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(CAPTURED_FROM + 2 * track))
            assert f"captured {captured}," in page.inner_text(f"li[data-alert='{alert_id}'] small"), alert_id
    finally:
        context.close()
        registry.delete(camera_id)


def test_the_camera_page_plays_the_live_view_over_webrtc_too(
        browser, live_server, accounts_by_role, live_camera):  # noqa: F811
    """?player=webrtc: the ingester that holds the camera answers the page's offer (aiortc) and
    sends the drawn pieces as a WebRTC track; the page shows its frames and how far behind live."""
    context = browser.new_context(viewport=WIDTHS["desktop"])
    page = context.new_page()
    try:
        log_in(page, live_server, accounts_by_role["viewer"].username)
        page.goto(f"{live_server}/cameras/{live_camera}")
        page.click("#play-webrtc")
        page.wait_for_function("() => document.getElementById('live').dataset.webrtc === 'connected'",
                               timeout=WAIT_S * 1000)
        page.wait_for_function("() => Number(document.getElementById('live').dataset.frames || 0) > 15",
                               timeout=WAIT_S * 1000)
        frames, started = page.evaluate("[Number(document.getElementById('live').dataset.frames), "
                                        "document.getElementById('live-video').currentTime]")
        # Frames keep coming (requestVideoFrameCallback counts those presented) and time advances.
        page.wait_for_function(f"() => Number(document.getElementById('live').dataset.frames) > {frames} + 30 && "
                               f"document.getElementById('live-video').currentTime > {started} + 2",
                               timeout=WAIT_S * 1000)
        assert page.evaluate("document.getElementById('live-video').videoWidth") == 640
        lag = float(page.evaluate("document.getElementById('live').dataset.lag"))
        assert 1 < lag < 30, lag                       # behind live (drawn 2 s segments), but live
        # An offer the ingester cannot answer: refused with its reason, one line.
        refused = page.evaluate("""async () => {
            const root = document.getElementById('live');
            const response = await fetch(root.dataset.viewOfferUrl, {method: 'POST', headers: {
                'Content-Type': 'application/json', 'X-CSRFToken': root.dataset.csrf},
                body: JSON.stringify({type: 'offer', sdp: 'v=0\\r\\no=- 1 1 IN IP4 0.0.0.0\\r\\ns=-\\r\\n'})});
            return [response.status, (await response.json()).error];
        }""")
        assert refused[0] == 400 and "cannot be answered" in refused[1], refused
    finally:
        context.close()


def test_the_webrtc_player_says_why_it_failed_when_redis_is_away(browser, live_server, accounts_by_role,
                                                                  registry):  # noqa: F811
    """The farm's Redis gone after the page opened: the player's offer is answered 503 in JSON
    with the reason, and the page shows that reason as the player's state (it once showed the
    parse error of an HTML error page). The offer goes, through the browser's own request, to
    a web process of this farm whose Redis does not answer (same records and secret: the
    session holds there)."""
    import threading

    from werkzeug.serving import make_server

    from cli.redis_server import free_port
    from tests.web.conftest import make_app

    port = free_port()
    server = make_server("127.0.0.1", port, make_app(redis_url=f"redis://127.0.0.1:{free_port()}/0"), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    camera_id = registry.add("Player without Redis", "rtsp://127.0.0.1:9/no-redis")["id"]
    context = browser.new_context(viewport=WIDTHS["desktop"])
    page = context.new_page()
    try:
        log_in(page, live_server, accounts_by_role["viewer"].username)
        page.route("**/view-offer", lambda route: route.continue_(
            url=route.request.url.replace(live_server, f"http://localhost:{port}")))
        page.goto(f"{live_server}/cameras/{camera_id}?player=webrtc")
        page.wait_for_function("() => (document.getElementById('live').dataset.webrtc || '').startsWith('failed')",
                               timeout=30_000)
        state = page.inner_text("#webrtc-state")
        assert state.startswith("failed: the farm's Redis cannot be reached"), state
    finally:
        context.close()
        registry.delete(camera_id)
        server.shutdown()


@pytest.mark.skipif(not AXE.exists(), reason=f"{AXE} is absent: `make test` installs it (npm)")
@pytest.mark.parametrize("width", list(WIDTHS))
def test_camera_pages_fit_and_pass_axe(browser, live_server, accounts_by_role, live_camera, registry, shots,
                                      width):  # noqa: F811
    context = browser.new_context(viewport=WIDTHS[width])
    page = context.new_page()
    try:
        log_in(page, live_server, accounts_by_role["operator"].username)
        problems = {}
        page.goto(f"{live_server}/cameras")
        page.wait_for_function("() => document.querySelector('#cameras .latency').textContent.includes(' s')",
                               timeout=WAIT_S * 1000)
        problems["cameras"] = check(page, "cameras", width, shots)
        page.goto(f"{live_server}/cameras/{live_camera}")
        page.wait_for_function("() => document.getElementById('live-video').currentTime > 1 && "
                               "document.querySelector('#live-alerts li')", timeout=WAIT_S * 1000)
        problems["camera"] = check(page, "camera", width, shots)
        browser_camera = registry.add("Laptop", "webrtc://browser")["id"]
        try:
            page.goto(f"{live_server}/cameras/{browser_camera}/publish")
            problems["publish"] = check(page, "publish", width, shots)
        finally:
            registry.delete(browser_camera)
        assert problems_in(problems) == {}
    finally:
        context.close()


def test_the_camera_list_polls_on_after_the_network_drops_a_poll(browser, live_server, accounts_by_role,  # noqa: F811
                                                                 registry):
    """A poll that failed (Wi-Fi gone a moment, the web server restarting) threw and ended the
    list's polling: every camera's status froze where it was. It polls on."""
    camera_id = registry.add("Blip camera", "rtsp://127.0.0.1:9/blip")["id"]
    context = browser.new_context(viewport=WIDTHS["phone"])
    page = context.new_page()
    try:
        log_in(page, live_server, accounts_by_role["viewer"].username)
        with page.expect_response(lambda r: r.url.endswith("/api/v1/cameras")):
            page.goto(f"{live_server}/cameras")
        with page.expect_event("requestfailed", lambda r: r.url.endswith("/api/v1/cameras"), timeout=10_000):
            context.set_offline(True)
        context.set_offline(False)
        page.wait_for_event("response", lambda r: r.url.endswith("/api/v1/cameras") and r.ok, timeout=10_000)
    finally:
        context.close()
        registry.delete(camera_id)


def test_operators_add_and_delete_cameras_with_a_confirmation(browser, live_server, accounts_by_role, registry):  # noqa: F811
    context = browser.new_context(viewport=WIDTHS["desktop"])
    page = context.new_page()
    try:
        log_in(page, live_server, accounts_by_role["operator"].username)
        page.goto(f"{live_server}/cameras")
        page.fill("#add-camera input[name=name]", "Back door")
        page.fill("#add-camera input[name=url]", "file:///etc/passwd")
        with page.expect_response(lambda r: r.request.method == "POST") as refused:
            page.click("#add-camera button")
        assert refused.value.status == 400 and "invalid url" in page.inner_text(".flash.error")
        assert not [c for c in registry.cameras() if c["name"] == "Back door"]
        page.fill("#add-camera input[name=url]", "rtsp://admin:secret@192.0.2.7/stream")
        page.click("#add-camera button")
        page.wait_for_selector("#live")                          # its page, straight away
        camera = next(c for c in registry.cameras() if c["name"] == "Back door")
        assert "secret" not in page.content()
        page.goto(f"{live_server}/cameras")
        # The same stream again (a second click, a new password): refused, naming the camera,
        # as the API refuses it: 409 and the same message.
        page.fill("#add-camera input[name=name]", "Back door 2")
        page.fill("#add-camera input[name=url]", "rtsp://admin:changed@192.0.2.7:554/stream")
        with page.expect_response(lambda r: r.request.method == "POST") as refused:
            page.click("#add-camera button")
        api = page.request.post(f"{live_server}/api/v1/cameras",
                                data={"name": "Back door 3", "url": "rtsp://192.0.2.7/stream"},
                                headers={"Authorization": f"Bearer {accounts_by_role['operator'].token}"})
        assert (refused.value.status, api.status) == (409, 409)
        assert page.inner_text(".flash.error") == api.json()["error"]
        assert "already registered as camera 'Back door'" in api.json()["error"]
        assert [c["id"] for c in registry.cameras() if c["name"].startswith("Back door")] == [camera["id"]]
        # Its page edits it, keeping its id: the address is shown with the password masked, and
        # saved as shown it keeps the password; another camera's stream is refused as the API does.
        page.goto(f"{live_server}/cameras/{camera['id']}")
        assert page.input_value("#edit-url") == "rtsp://admin:***@192.0.2.7/stream"
        page.fill("#edit-name", "Back door (rear)")
        page.click("#edit-camera button")
        page.wait_for_selector(".flash.info")
        assert registry.get(camera["id"]) == {**camera, "name": "Back door (rear)"}
        page.fill("#edit-url", "rtsp://admin:moved@192.0.2.8/stream")
        page.click("#edit-camera button")
        page.wait_for_selector(".flash.info")
        assert registry.get(camera["id"])["url"] == "rtsp://admin:moved@192.0.2.8/stream"
        other = registry.add("Front door", "rtsp://192.0.2.9/stream")
        try:
            page.fill("#edit-url", "rtsp://192.0.2.9:554/stream")
            with page.expect_response(lambda r: r.request.method == "POST") as refused:
                page.click("#edit-camera button")
            assert refused.value.status == 409 and "already registered as camera 'Front door'" in page.inner_text(
                ".flash.error")
            assert registry.get(camera["id"])["url"] == "rtsp://admin:moved@192.0.2.8/stream"
        finally:
            registry.delete(other["id"])
        page.goto(f"{live_server}/cameras")
        row = page.locator(f"tr[data-camera='{camera['id']}']")
        page.once("dialog", lambda dialog: dialog.dismiss())     # changed their mind: nothing happens
        row.locator("button").click()
        assert registry.get(camera["id"]) is not None
        page.once("dialog", lambda dialog: dialog.accept())
        row.locator("button").click()
        page.wait_for_selector(".flash.info")
        assert registry.get(camera["id"]) is None
    finally:
        context.close()
    # The viewer in a browser of their own: clearing this one's cookies raced the list page's
    # requests still in flight, whose responses set the operator's session cookie again.
    context = browser.new_context(viewport=WIDTHS["desktop"])
    page = context.new_page()
    try:
        log_in(page, live_server, accounts_by_role["viewer"].username)
        page.goto(f"{live_server}/cameras")
        assert page.url == f"{live_server}/cameras" and page.locator("#cameras").count() == 1
        assert page.locator("#add-camera").count() == 0
    finally:
        context.close()
