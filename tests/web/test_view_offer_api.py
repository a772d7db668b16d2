"""The live view over WebRTC through the REST API (``POST /api/v1/cameras/{id}/view/offer``):
a real ingester (``CameraIngest``, in a thread) holds a browser camera and answers an offer
that aiortc makes here as an API client would; the peer connection then comes up, and the
ingester keeps the camera's view drawn while it plays. An offer the ingester cannot answer is
400 with its reason; a malformed one is refused before any ingester sees it; an unknown
camera is 404; nobody answering is 504; without a token it is 401 (a browser's session cookie
does not open the API's POSTs)."""

from __future__ import annotations

import asyncio

import pytest

from tests.rtsp_camera import running_ingest
from tests.waiting import wait_until

# Gathered ICE, as the route wants (no trickle); what a browser's offer looks like otherwise.
EMPTY_SDP = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\n"


@pytest.fixture
def registry(farm):
    from core.cameras import CameraRegistry

    return CameraRegistry.from_url(farm.redis_url)


async def _offer(peer) -> dict:
    peer.addTransceiver("video", direction="recvonly")
    peer.createDataChannel("clock")            # the page's channel for each picture's capture time
    await peer.setLocalDescription(await peer.createOffer())     # aiortc gathers ICE here
    return {"type": peer.localDescription.type, "sdp": peer.localDescription.sdp}


async def _connect(peer, answer: dict, timeout: float) -> str:
    from aiortc import RTCSessionDescription

    await peer.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
    deadline = asyncio.get_running_loop().time() + timeout
    while peer.connectionState not in ("connected", "failed") and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    return peer.connectionState


def test_an_api_client_plays_the_live_view_over_webrtc(client, accounts_by_role, registry):
    from aiortc import RTCConfiguration, RTCPeerConnection

    viewer = accounts_by_role["viewer"].auth
    loop = asyncio.new_event_loop()
    peer = RTCPeerConnection(RTCConfiguration(iceServers=[]))     # one host: no STUN, nothing outside
    with running_ingest(registry) as ingest:
        camera_id = registry.add("Laptop", "webrtc://browser")["id"]
        try:
            wait_until(lambda: camera_id in ingest.running, 30, "the ingester to hold the camera")
            # Not an offer the ingester can answer (no media in it): 400 with its reason.
            refused = client.post(f"/api/v1/cameras/{camera_id}/view/offer", json={"type": "offer", "sdp": EMPTY_SDP},
                                  headers=viewer)
            assert refused.status_code == 400, refused.json
            assert refused.json["error"].startswith("the offer cannot be answered ("), refused.json

            offer = loop.run_until_complete(_offer(peer))
            answered = client.post(f"/api/v1/cameras/{camera_id}/view/offer", json=offer, headers=viewer)
            assert answered.status_code == 200, answered.json
            answer = answered.json
            assert answer["type"] == "answer" and "m=video" in answer["sdp"]
            video = answer["sdp"].split("m=video", 1)[1].split("m=", 1)[0]
            assert "a=sendonly" in video                        # the ingester sends, the client receives
            assert loop.run_until_complete(_connect(peer, answer, 30)) == "connected"
            # While it plays, the ingester keeps the camera's view drawn for it.
            assert wait_until(lambda: registry.watched(camera_id), 10, "the camera to be marked watched")
            assert camera_id in ingest.viewers.watched()
        finally:
            loop.run_until_complete(peer.close())
            loop.close()
            registry.delete(camera_id)


def test_view_offers_are_checked_and_say_why_they_fail(web_app, client, accounts_by_role, registry, monkeypatch):
    import web.api_cameras
    from tests.web.conftest import logged_in_client

    viewer = accounts_by_role["viewer"].auth
    camera_id = registry.add("Viewed", "rtsp://cam/viewed")["id"]      # no ingester holds it here
    url = f"/api/v1/cameras/{camera_id}/view/offer"
    offer = {"type": "offer", "sdp": EMPTY_SDP}
    try:
        refused = client.post(url, json={"type": "answer", "sdp": EMPTY_SDP}, headers=viewer)
        assert refused.status_code == 400 and "type" in refused.json["error"]
        refused = client.post(url, json={"type": "offer", "sdp": "hello"}, headers=viewer)
        assert refused.status_code == 400 and "session description" in refused.json["error"]
        unknown = client.post("/api/v1/cameras/nope/view/offer", json=offer, headers=viewer)
        assert unknown.status_code == 404 and unknown.json["error"] == "no camera nope"
        # The API's POSTs take a token, never the cookie alone (they are exempt from CSRF).
        assert client.post(url, json=offer).status_code == 401
        assert client.post(url, json=offer, headers={"Authorization": "Bearer not-a-token"}).status_code == 401
        assert logged_in_client(web_app, accounts_by_role["viewer"]).post(url, json=offer).status_code == 401
        monkeypatch.setattr(web.api_cameras, "ANSWER_WAIT_S", 0.3)        # no ingester runs here
        silent = client.post(url, json=offer, headers=viewer)
        assert silent.status_code == 504 and "no ingester answered within 0.3 s" in silent.json["error"]
        # Any role may play it: viewer is the weakest, and every role includes it.
        assert client.post(url, json=offer, headers=accounts_by_role["operator"].auth).status_code == 504
    finally:
        registry.delete(camera_id)


def test_no_answer_for_longer_than_the_redis_socket_timeout_is_a_504(client, accounts_by_role, registry, monkeypatch):
    # redis-py's sockets time out after 5 s: one 15 s wait for the answer was a 500, not the 504.
    import web.api_cameras

    monkeypatch.setattr(web.api_cameras, "ANSWER_WAIT_S", 6.0)
    camera_id = registry.add("Unheard", "rtsp://cam/unheard")["id"]       # no ingester holds it here
    try:
        silent = client.post(f"/api/v1/cameras/{camera_id}/view/offer", json={"type": "offer", "sdp": EMPTY_SDP},
                             headers=accounts_by_role["viewer"].auth)
        assert silent.status_code == 504 and "no ingester answered within 6 s" in silent.json["error"]
    finally:
        registry.delete(camera_id)


@pytest.mark.parametrize("path", ["/api/v1/cameras/{}/view/offer", "/api/v1/cameras/{}/offer"])
def test_an_offer_past_the_body_limit_is_a_documented_413(client, accounts_by_role, registry, path):
    # Found by fuzzing: an sdp within its 64 Ki characters whose JSON passes the 64 KiB limit on
    # request bodies was answered 413, which the document did not list.
    camera_id = registry.add("Big offer", "webrtc://browser")["id"]
    try:
        sdp = "v=0\r\n" + "a=x\r\n" * 10000     # 50 k characters, 70 kB of JSON ("\r\n" is 4 bytes there)
        answer = client.post(path.format(camera_id), json={"type": "offer", "sdp": sdp},
                             headers=accounts_by_role["operator"].auth)
        assert answer.status_code == 413
        assert answer.json["error"] == "the request is larger than the 64 KiB allowed here"
        document = client.get("/api/v1/openapi.json", headers=accounts_by_role["viewer"].auth).json
        assert "413" in document["paths"][path.format("{camera_id}")]["post"]["responses"]
    finally:
        registry.delete(camera_id)


def test_the_route_is_in_the_api_document(client, accounts_by_role):
    document = client.get("/api/v1/openapi.json", headers=accounts_by_role["viewer"].auth).json
    operation = document["paths"]["/api/v1/cameras/{camera_id}/view/offer"]["post"]
    assert {"200", "400", "404", "504"} <= set(operation["responses"])
    assert "WebRTC" in operation["summary"] and "receive-only video" in operation["description"]
    assert operation["security"] == [{"BearerAuth": ["viewer"]}]


@pytest.mark.parametrize("route,role", [("view-offer", "viewer"), ("publish", "operator")])
def test_a_pages_offer_with_redis_away_is_answered_in_json_saying_so(farm, accounts_by_role, route, role):
    """The camera page's and the publish page's scripts post their offers with fetch and show the
    error they are answered (webrtc.js): with the farm's Redis away (a web process whose Redis
    does not answer), that is JSON with the reason, as the API answers, not an HTML page; so
    are a missing CSRF token and a session that ended."""
    import re

    from cli.redis_server import free_port
    from tests.web.conftest import logged_in_client, make_app

    def csrf(client) -> dict:
        return {"X-CSRFToken": re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                                         client.get("/account").get_data(as_text=True)).group(1)}

    app = make_app(redis_url=f"redis://127.0.0.1:{free_port()}/0")      # nothing listens there
    browser = logged_in_client(app, accounts_by_role[role])
    url, offer = f"/cameras/0123456789abcdef0123456789abcdef/{route}", {"type": "offer", "sdp": EMPTY_SDP}
    down = browser.post(url, json=offer, headers=csrf(browser))
    assert (down.status_code, down.mimetype) == (503, "application/json")
    assert down.json["error"].startswith("the farm's Redis cannot be reached") and "\n" not in down.json["error"]
    stale = browser.post(url, json=offer)
    assert (stale.status_code, stale.mimetype) == (400, "application/json") and "CSRF" in stale.json["error"]
    ended = app.test_client().post(url, json=offer, headers=csrf(browser))
    assert (ended.status_code, ended.mimetype) == (401, "application/json") and "log in" in ended.json["error"]
    if role == "operator":       # a viewer may not publish: said in JSON too
        viewer = logged_in_client(app, accounts_by_role["viewer"])
        refused = viewer.post(url, json=offer, headers=csrf(viewer))
        assert (refused.status_code, refused.mimetype) == (403, "application/json")
