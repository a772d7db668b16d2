"""The camera registry and each camera's live state, in a real (private) Redis."""

from __future__ import annotations

import json
import threading
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cli.redis_server import RedisServer
from core.cameras import (BROWSER_URL, REGISTRY, URL_PATTERN, CameraError, CameraRegistry, DuplicateCamera,
                          check_camera, is_stream_address, percentile, redacted, same_stream, stream_key)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield CameraRegistry.from_url(server.url)


def line(latency: float, alerts=()) -> dict:
    return {"segment": 0, "first_frame": 0, "frames": 30, "captured_at": 100.0, "ready_at": 100.0 + latency,
            "latency_s": latency, "faces": 2, "alerts": list(alerts), "tracks": []}


def test_register_read_and_delete(registry):
    camera = registry.add("Lobby ", "rtsp://admin:secret@10.0.0.5/stream1")
    assert camera["name"] == "Lobby" and camera["url"] == "rtsp://admin:secret@10.0.0.5/stream1"
    assert registry.get(camera["id"]) == camera and camera in registry.cameras()
    assert registry.state(camera["id"]) == {"status": "connecting", "behind_s": None, "fps": None,
                                            "last_segment_at": None, "latency_p50_s": None, "latency_p95_s": None}
    assert registry.delete(camera["id"]) and registry.get(camera["id"]) is None
    assert not registry.delete(camera["id"])


@pytest.mark.parametrize("name,url,problem", [
    ("", "rtsp://cam/1", "invalid name"),
    ("x" * 65, "rtsp://cam/1", "invalid name"),
    ("Lobby", "file:///etc/passwd", "invalid url"),
    ("Lobby", "rtsp://", "invalid url"),
    ("Lobby", "rtsp:///path", "invalid url"),
    (" Lobby", "rtsp://cam/1", "invalid name"),
    ("Lobby", "rtsp://cam/a b", "invalid url"),
    ("Lobby", "not a url", "invalid url"),
    ("Lobby", "webrtc://]/\U0002909a", "invalid url"),        # urlsplit reads no host part of these
    ("Lobby", "rtsp://[cam.example]/a", "invalid url"),
    ("Lobby", "rtsp://[::1/a", "invalid url"),
    ("Lobby", "rtsp://b\xfcr\xf6\u2003x/a", "invalid url"),      # a space past ASCII in a host name
    ("Lobby", "rtsp://b\xfc:pw@cam/a", "invalid url"),          # past ASCII only in the host name
    ("Lobby", "rtsp://[b\xfc]/a", "invalid url"),
    ("Lobby", "rtsp://cam/a\n", "invalid url"),                # Python's "$" matches before a last newline
    ("Lobby\n", "rtsp://cam/a", "invalid name"),
])
def test_bad_cameras_are_refused(registry, name, url, problem):
    before = registry.cameras()
    with pytest.raises(CameraError, match=problem):
        registry.add(name, url)
    assert registry.cameras() == before


@pytest.mark.parametrize("url,stored", [
    ("http://kamera.m\xfcnchen.de/", "http://kamera.xn--mnchen-3ya.de/"),
    ("rtsp://u:p@\uff2b\uff41\uff4d.example:8554?x=1", "rtsp://u:p@kam.example:8554?x=1"),   # full-width: ASCII
    # Names IDNA refuses (a full-width "#", "#" under NFKC, which urlsplit refused; a symbol):
    # encoded as they are, names no DNS server knows, which the camera's status will say.
    ("rtsp://h\uff03x/a", "rtsp://xn--hx-0t3n/a"),
    ("rtsp://Cam.b\u2715r\xf6.example/a", "rtsp://Cam.xn--br-gka8410b.example/a"),     # ASCII labels as written
])
def test_a_host_name_past_ascii_is_stored_in_its_ascii_form(registry, url, stored):
    camera = registry.add("Abroad", url)
    try:
        assert camera["url"] == registry.get(camera["id"])["url"] == stored
        with pytest.raises(DuplicateCamera):
            registry.add("Abroad again", stored)
    finally:
        registry.delete(camera["id"])


def test_a_scheme_in_any_case_is_taken_and_stored_in_lower_case(registry):
    """RFC 3986: schemes are case-insensitive; FFmpeg's protocol lookup is not ("RTSP://" is
    "Protocol not found" there), so the registry keeps the scheme in lower case, the rest as written."""
    cameras = [registry.add("Upper", "RTSP://Admin:PW@Cam.example/Live"), registry.add("Mixed", "Rtsps://cam/x"),
               registry.add("Web", "HTTPS://cam/a.m3u8"), registry.add("Laptop", "WebRTC://browser")]
    try:
        assert [c["url"] for c in cameras] == ["rtsp://Admin:PW@Cam.example/Live", "rtsps://cam/x",
                                               "https://cam/a.m3u8", BROWSER_URL]
        assert [registry.get(c["id"])["url"] for c in cameras] == [c["url"] for c in cameras]
        with pytest.raises(DuplicateCamera):
            registry.add("Upper again", "rtsp://cam.example:554/Live")
    finally:
        for camera in cameras:
            registry.delete(camera["id"])


@pytest.mark.parametrize("again", [
    "rtsp://admin:secret@gate.example/stream1",        # as it was
    "RTSP://gate.example/stream1",                     # the scheme in upper case
    "rtsp://Gate.EXAMPLE/stream1",                    # host case, no credentials
    "rtsp://admin:new-password@gate.example:554/stream1",   # the password changed; the default port spelt out
    "rtsp://other@gate.example/stream1",
])
def test_a_stream_is_registered_once(registry, again):
    first = registry.add("Gate", "rtsp://admin:secret@gate.example/stream1")
    try:
        with pytest.raises(DuplicateCamera) as refused:
            registry.add("Gate again", again)
        assert refused.value.camera == first
        assert "'Gate'" in str(refused.value) and first["id"] in str(refused.value) and "edit that camera" in str(refused.value)
        assert "secret" not in str(refused.value)
        assert [c["id"] for c in registry.cameras() if same_stream(c["url"], again)] == [first["id"]]
    finally:
        registry.delete(first["id"])


@pytest.mark.parametrize("a,b,same", [
    ("rtsp://cam.example/live", "rtsp://CAM.Example:554/live", True),
    ("https://cam.example/live.m3u8", "https://cam.example:443/live.m3u8", True),
    ("rtsps://cam.example/live", "rtsps://cam.example:322/live", True),
    ("rtsp://cam.example", "rtsp://cam.example/", True),
    ("rtsp://[FE80::1]/a", "rtsp://[fe80::1]:554/a", True),
    ("rtsp://cam.example/live", "rtsp://cam.example/Live", False),         # paths are case-sensitive
    ("rtsp://cam.example/live?channel=1", "rtsp://cam.example/live?channel=2", False),
    ("rtsp://cam.example/live", "rtsp://cam.example:8554/live", False),
    ("rtsp://cam.example/live", "rtsps://cam.example/live", False),
    ("http://cam.example/live", "https://cam.example/live", False),
    (BROWSER_URL, BROWSER_URL, False),                  # each browser camera is its own publisher
    ("webrtc://s[x", "webrtc://s[x", False),            # an unclosed "[" urlsplit refuses (registered
    ("rtsp://cam[.example/a", "rtsp://cam[.example/a", True),       # before the form refused it): no error
    ("rtsp://cam[.example/a", "rtsp://cam[.example/b", False),
])
def test_what_the_same_stream_is(a, b, same):
    assert same_stream(a, b) is same and same_stream(b, a) is same


@given(url=st.from_regex(URL_PATTERN, fullmatch=True))
@settings(max_examples=300, derandomize=True, deadline=None, database=None)
def test_every_address_the_pattern_takes_is_stored_in_a_form_urlsplit_reads(url):
    # The API documents URL_PATTERN as the whole rule: an address it takes that urlsplit cannot
    # read was a 500 and then a 400 the document did not promise. As stored (a host name past
    # ASCII in its ASCII form), it is still one the pattern takes (a PATCH sends it back).
    stored = check_camera("Cam", url)[1]
    assert (urlsplit(stored).hostname or "").isascii() and is_stream_address(stored)
    assert stream_key(stored) is None or stream_key(stored).startswith(url.partition("://")[0].lower())


def test_browser_cameras_share_their_address(registry):
    cameras = [registry.add(f"Laptop {n}", BROWSER_URL)["id"] for n in range(3)]
    assert len({registry.get(c)["id"] for c in cameras}) == 3
    for camera_id in cameras:
        registry.delete(camera_id)


def test_delete_then_register_again(registry):
    first = registry.add("Yard", "rtsp://admin:old@10.0.0.10/yard")
    with pytest.raises(DuplicateCamera):
        registry.add("Yard", "rtsp://admin:new@10.0.0.10/yard")
    registry.delete(first["id"])                       # the path the refusal names
    second = registry.add("Yard", "rtsp://admin:new@10.0.0.10/yard")
    assert second["id"] != first["id"] and registry.cameras() == [second]
    registry.delete(second["id"])


def test_registrations_at_once_of_one_stream_make_one_camera(registry):
    """Threads register the same stream together: exactly one succeeds, every other is refused
    naming it (the check and the write are one transaction)."""
    barrier, results = threading.Barrier(8), []

    def register(n: int) -> None:
        barrier.wait()
        try:      # (each transaction takes a connection of its own from the client's pool)
            results.append(("added", registry.add(f"Race {n}", f"rtsp://user{n}:pw@10.0.0.11/race")))
        except DuplicateCamera as exc:
            results.append(("refused", exc.camera))

    try:
        for _ in range(5):     # a few rounds: the window between read and write is narrow
            threads = [threading.Thread(target=register, args=(n,)) for n in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            added = [camera for outcome, camera in results if outcome == "added"]
            assert len(added) == 1 and len(results) == 8
            assert all(camera["id"] == added[0]["id"] for _, camera in results)
            assert [c["id"] for c in registry.cameras()] == [added[0]["id"]]
            registry.delete(added[0]["id"])
            results.clear()
    finally:
        for camera in registry.cameras():
            registry.delete(camera["id"])


def test_a_registry_written_before_the_check_is_checked(registry):
    """A registry restored from an older AOF (written by a version that checked nothing, even
    holding one stream twice already) is checked as it stands."""
    old = [{"id": f"old{n}", "name": f"Old {n}", "url": "rtsp://10.0.0.12/old", "created_at": 1.0 + n}
           for n in range(2)]
    registry.redis.hset(REGISTRY, mapping={c["id"]: json.dumps(c) for c in old})
    try:
        with pytest.raises(DuplicateCamera) as refused:
            registry.add("New", "rtsp://admin:pw@10.0.0.12:554/old")
        assert refused.value.camera["id"] in {"old0", "old1"}
        assert registry.cameras() == old
    finally:
        for camera in old:
            registry.delete(camera["id"])


def test_state_and_events_follow_the_segments(registry):
    camera_id = registry.add("Door", "rtsp://cam/door")["id"]
    start = registry.last_event_id(camera_id)
    registry.set_status(camera_id, "live")
    for latency in (2.0, 3.0, 4.0, 10.0):
        registry.segment_done(camera_id, line(latency), fps=15.0)
    alerting = line(3.5, [{"kind": "watchlist", "track": 1, "frame": 0, "t": 0.0, "detail": "Ada is on the watchlist",
                           "captured_at": 100.0},
                          {"kind": "no_mask", "track": 2, "frame": 6, "t": 0.4, "detail": "face without a mask",
                           "captured_at": 100.4}])      # a watch's alerts carry their frame's capture time
    registry.segment_done(camera_id, alerting, fps=14.9, folds=[{"id": 7, "repeat_of": None},
                                                                {"id": 8, "repeat_of": None}])
    state = registry.state(camera_id)
    assert state["status"] == "live" and state["fps"] == 14.9 and state["last_segment_at"] == 103.5
    assert (state["latency_p50_s"], state["latency_p95_s"]) == (3.5, percentile([2, 3, 4, 10, 3.5], 95))
    events = registry.events(camera_id, start, block_ms=10)
    assert [kind for _, kind, _ in events] == ["status"] + ["segment"] * 5 + ["alert"] * 2
    alert, framed = events[-2][2], events[-1][2]
    assert alert["kind"] == "watchlist" and alert["captured_at"] == 100.0 and alert["latency_s"] == 3.5
    assert (alert["id"], alert["repeat_of"]) == (7, None)
    # Its own frame's capture time, not its segment's first frame's; raised 3.1 s after it.
    assert (framed["captured_at"], framed["ready_at"], framed["latency_s"]) == (100.4, 103.5, 3.1)
    # A listener that comes back with the last id it saw gets only what came after.
    assert registry.events(camera_id, events[2][0], block_ms=10) == events[3:]
    assert registry.events(camera_id, events[-1][0], block_ms=10) == []


def test_a_camera_that_falls_behind_says_how_far_until_it_catches_up(registry):
    from core.cameras import status_text

    camera_id = registry.add("Slow", "rtsp://cam/slow")["id"]
    start = registry.last_event_id(camera_id)
    registry.set_status(camera_id, "live", behind_s=52)
    assert registry.state(camera_id)["status"] == "live" and registry.state(camera_id)["behind_s"] == 52
    registry.set_status(camera_id, "live")
    assert registry.state(camera_id)["behind_s"] is None
    assert [data for _, _, data in registry.events(camera_id, start, block_ms=10)] == [
        {"status": "live", "behind_s": 52}, {"status": "live", "behind_s": None}]
    assert status_text("live", 52) == "live, 52 s behind" and status_text("live", None) == "live"


def test_a_deleted_camera_leaves_nothing_behind(registry):
    camera_id = registry.add("Gone", "rtsp://cam/gone")["id"]
    registry.segment_done(camera_id, line(2.0), fps=15.0)
    registry.delete(camera_id)
    registry.set_status(camera_id, "live")                  # a watch still finishing
    registry.segment_done(camera_id, line(2.0), fps=15.0)
    assert registry.redis.keys(f"*{camera_id}*") == []


def registry_reads(registry) -> int:
    """HGETs the server has answered (its own count: ``INFO commandstats``)."""
    return registry.redis.info("commandstats").get("cmdstat_hget", {}).get("calls", 0)


def test_each_write_reads_the_registry_once_in_its_transaction(registry):
    """An ingester's and a drawing worker's writes check that the camera is still registered
    inside their transaction (WATCH), and only there: a look before it and one after it (a
    delete that came between) are two more round trips that check nothing the WATCH does not."""
    camera_id = registry.add("Once", "rtsp://cam/once")["id"]
    for write in (lambda: registry.segment_done(camera_id, line(2.0), fps=15.0),
                  lambda: registry.set_status(camera_id, "live"),
                  lambda: registry.view_ready(camera_id, {"watch": "w", "segment": 0})):
        before = registry_reads(registry)
        write()
        assert registry_reads(registry) - before == 1
    registry.delete(camera_id)


def test_percentiles():
    assert percentile([], 50) is None and percentile([2.5], 95) == 2.5
    assert percentile([1, 2, 3, 4], 50) == 2.5


def test_statuses_never_show_a_password():
    assert redacted("rtsp://admin:secret@10.0.0.5:554/stream1") == "rtsp://admin:***@10.0.0.5:554/stream1"
    assert redacted("rtsp://10.0.0.5/stream1") == "rtsp://10.0.0.5/stream1"
    assert redacted("rtsp://[::1]:8554/a:b@c") == "rtsp://[::1]:8554/a:b@c"     # an @ in the path is no login
    assert redacted("rtsp://user:p@ss@cam/1") == "rtsp://user:***@cam/1"


def test_the_live_view_lists_the_newest_pieces_and_says_which_fell_off(registry):
    from core.cameras import VIEW_KEPT

    camera_id = registry.add("View", "rtsp://cam/view")["id"]
    start = registry.last_event_id(camera_id)
    dropped = [registry.view_ready(camera_id, {"watch": "w", "segment": n}) for n in range(VIEW_KEPT + 2)]
    assert [p["segment"] for p in registry.view(camera_id)] == list(range(2, VIEW_KEPT + 2))
    assert dropped[:VIEW_KEPT] == [[]] * VIEW_KEPT and dropped[VIEW_KEPT:] == [[{"watch": "w", "segment": 0}],
                                                                             [{"watch": "w", "segment": 1}]]
    events = registry.events(camera_id, start, block_ms=10)
    assert [data["segment"] for _, kind, data in events if kind == "view"] == list(range(VIEW_KEPT + 2))
    registry.delete(camera_id)
    # A piece drawn after its camera was deleted: nothing kept, and its file is to go.
    assert registry.view_ready(camera_id, {"watch": "w", "segment": 99}) == [{"watch": "w", "segment": 99}]
    assert registry.redis.keys(f"*{camera_id}*") == []


def test_recent_events_of_one_kind_newest_first(registry):
    camera_id = registry.add("Recent", "rtsp://cam/recent")["id"]
    for n in range(5):
        registry.publish(camera_id, "alert", {"n": n})
        registry.publish(camera_id, "segment", {"n": n})
    assert registry.recent(camera_id, "alert", 3) == [{"n": 4}, {"n": 3}, {"n": 2}]
    assert registry.recent(camera_id, "status", 3) == []
    registry.delete(camera_id)


def test_a_live_view_is_watched_for_a_while_after_a_page_said_so(registry):
    camera_id = registry.add("Watched", "rtsp://cam/watched")["id"]
    assert not registry.watched(camera_id)
    registry.mark_watched(camera_id)
    assert registry.watched(camera_id) and 0 < registry.redis.ttl(f"vidfarm:camera:{camera_id}:watched") <= 30
    registry.delete(camera_id)
    registry.mark_watched(camera_id)                        # a page still open after the delete
    assert registry.redis.keys(f"*{camera_id}*") == []
