"""A browser camera end to end: Debian's Chromium publishes its fake camera (a y4m clip of a
real face that the test makes) over WebRTC from the publish page; the ingester receives the
track with aiortc and the farm analyses it like an RTSP camera. The API shows detections for
that camera, and its live view page plays the video; when the browser leaves, the camera waits
for it and takes the next one. Offers the ingester cannot answer, and offers to cameras that
are not browser cameras, are refused with one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clipmaker import make_clip
from tests.rtsp_camera import running_ingest
from tests.waiting import wait_until
from tests.web.test_browser import CHROMIUM, LAUNCH_ARGS, log_in
from tests.web.test_cameras_api import parse_events

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent")
WAIT_S = 120


def y4m_clip(folder: Path, seconds: float = 6, fps: int = 15) -> Path:
    """A face moving over a background, as raw YUV4MPEG (what Chromium's fake camera plays, looped)."""
    import av

    clip = make_clip(folder / "face.mp4", seconds=seconds, fps=fps, size=(480, 270), face_windows=[(0, seconds)],
                     audio=False)
    target = folder / "face.y4m"
    with av.open(str(clip.path)) as source, av.open(str(target), "w", format="yuv4mpegpipe") as out:
        stream = out.add_stream("rawvideo", rate=fps)
        stream.width, stream.height, stream.pix_fmt = clip.width, clip.height, "yuv420p"
        for frame in source.decode(video=0):
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return target


@pytest.fixture(scope="module")
def camera_browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    clip = y4m_clip(tmp_path_factory.mktemp("fake-camera"))
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS + [
            "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={clip}",
            "--use-fake-ui-for-media-stream"])
        yield chromium
        chromium.close()


@pytest.fixture
def registry(farm):
    from core.cameras import CameraRegistry

    return CameraRegistry.from_url(farm.redis_url)


@pytest.fixture
def ingest(registry):
    with running_ingest(registry) as ingester:
        yield ingester


def test_a_browser_publishes_its_camera_the_farm_analyses_it_and_shows_it_live(
        camera_browser, live_server, client, accounts_by_role, registry, ingest):
    operator, viewer = accounts_by_role["operator"], accounts_by_role["viewer"].auth
    context = camera_browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    camera_id = None
    try:
        log_in(page, live_server, operator.username)
        page.goto(f"{live_server}/cameras")
        page.fill("#browser-name", "Laptop")
        page.click("#add-browser-camera button")
        page.wait_for_url("**/publish")
        camera = next(c for c in registry.cameras() if c["name"] == "Laptop")
        camera_id = camera["id"]
        assert camera["url"] == "webrtc://browser"
        start = registry.last_event_id(camera_id)

        # Something that is not a usable offer: refused with the ingester's reason, and the
        # camera says so until a browser publishes.
        bad = client.post(f"/api/v1/cameras/{camera_id}/offer", headers=operator.auth,
                          json={"type": "offer", "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\n"})
        assert bad.status_code == 400 and "cannot be answered" in bad.json["error"], bad.json
        wait_until(lambda: registry.state(camera_id)["status"].startswith("reconnecting (an offer"), 10,
                   "the camera to say why")

        page.click("#publish-start")
        page.wait_for_function("() => document.getElementById('publish').dataset.state === 'publishing'",
                               timeout=WAIT_S * 1000)
        view = wait_until(lambda: (lambda v: v if v["latency_p50_s"] is not None else None)(
            client.get(f"/api/v1/cameras/{camera_id}", headers=viewer).json), WAIT_S, "a processed segment")
        assert view["status"] == "live" and view["fps"] == pytest.approx(15, abs=1)
        events = parse_events(client.get(f"/api/v1/cameras/{camera_id}/events?wait=1",
                                         headers={**viewer, "Last-Event-ID": start}).get_data(as_text=True))
        segments = [e["data"] for e in events if e["event"] == "segment"]
        assert segments and max(s["faces"] for s in segments) > 0, segments
        assert all(s["clock"] == "arrival" and s["reencoded"] is False for s in segments)

        # Its live view, in another tab, plays the annotated video.
        live = context.new_page()
        live.goto(f"{live_server}/cameras/{camera_id}")
        live.wait_for_function("() => document.getElementById('live-video').currentTime > 2", timeout=WAIT_S * 1000)
        assert live.evaluate("document.getElementById('live-video').videoWidth") == 480

        # The browser leaves: the camera waits for it again and says why; a new publisher is taken.
        page.close()
        wait_until(lambda: registry.state(camera_id)["status"].startswith("reconnecting ("), 30,
                   "the camera to notice the browser left")
        again = context.new_page()
        again.goto(f"{live_server}/cameras/{camera_id}/publish")
        again.click("#publish-start")
        again.wait_for_function("() => document.getElementById('publish').dataset.state === 'publishing'",
                                timeout=WAIT_S * 1000)
        wait_until(lambda: registry.state(camera_id)["status"] == "live", 30, "the camera to be live again")
    finally:
        context.close()
        if camera_id:
            registry.delete(camera_id)


def test_offers_are_checked_before_any_ingester_sees_them(client, accounts_by_role, registry, monkeypatch):
    import web.api_cameras

    operator = accounts_by_role["operator"].auth
    pulled = registry.add("Pulled", "rtsp://cam/pulled")["id"]
    browser = registry.add("Browser", "webrtc://browser")["id"]
    offer = {"type": "offer", "sdp": "v=0\r\n"}
    assert client.post(f"/api/v1/cameras/{pulled}/offer", json=offer, headers=operator).status_code == 409
    refused = client.post(f"/api/v1/cameras/{browser}/offer", json={"type": "answer", "sdp": "v=0"}, headers=operator)
    assert refused.status_code == 400 and "type" in refused.json["error"]
    refused = client.post(f"/api/v1/cameras/{browser}/offer", json={"type": "offer", "sdp": "hello"}, headers=operator)
    assert refused.status_code == 400 and "session description" in refused.json["error"]
    assert client.post(f"/api/v1/cameras/{browser}/offer", json=offer,
                       headers=accounts_by_role["viewer"].auth).status_code == 403
    monkeypatch.setattr(web.api_cameras, "ANSWER_WAIT_S", 0.3)        # no ingester runs here
    silent = client.post(f"/api/v1/cameras/{browser}/offer", json=offer, headers=operator)
    assert silent.status_code == 504 and "no ingester answered" in silent.json["error"]
    assert client.post("/api/v1/cameras/nope/offer", json=offer, headers=operator).status_code == 404
    registry.delete(pulled)
    registry.delete(browser)


def test_a_pages_webrtc_view_offer_is_checked_and_says_why_it_fails(web_app, accounts_by_role, registry, monkeypatch):
    """The camera page's WebRTC player posts its offer to /cameras/<id>/view-offer: a bad one is
    refused before any ingester sees it, an unknown camera is 404, and no ingester answering is
    504 with the reason (the ingester's own refusals: tests/web/test_camera_pages.py)."""
    import re

    import web.api_cameras
    from tests.web.conftest import logged_in_client

    browser = logged_in_client(web_app, accounts_by_role["viewer"])
    camera_id = registry.add("Viewed", "rtsp://cam/viewed")["id"]
    try:
        page = browser.get(f"/cameras/{camera_id}?player=webrtc").get_data(as_text=True)
        assert 'data-player="webrtc"' in page and "live_webrtc.js" in page
        csrf = {"X-CSRFToken": re.search(r'data-csrf="([^"]+)"', page).group(1)}
        url = f"/cameras/{camera_id}/view-offer"
        refused = browser.post(url, json={"type": "offer", "sdp": "hello"}, headers=csrf)
        assert refused.status_code == 400 and "session description" in refused.json["error"]
        assert browser.post(url, json={"type": "offer", "sdp": "v=0\r\n"}).status_code == 400     # no CSRF token
        assert browser.post("/cameras/nope/view-offer", json={"type": "offer", "sdp": "v=0\r\n"},
                            headers=csrf).status_code == 404
        monkeypatch.setattr(web.api_cameras, "ANSWER_WAIT_S", 0.3)        # no ingester runs here
        silent = browser.post(url, json={"type": "offer", "sdp": "v=0\r\n"}, headers=csrf)
        assert silent.status_code == 504 and "no ingester answered" in silent.json["error"]
    finally:
        registry.delete(camera_id)
