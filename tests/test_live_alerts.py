"""A live camera's alerts reach the webhooks as its segments are processed, not an hour later
with its recording: a farm of its own (webhook URLs in every worker's environment), a real RTSP
camera showing a watch-listed man, and a real HTTP receiver on 127.0.0.1. The recording made
of that camera later lists the same alerts under its job but posts nothing again."""

from __future__ import annotations

import json

import cv2
import pytest

from tests.clipmaker import make_clip
from tests.conftest import private_farm, wait_for_job
from tests.rtsp_camera import RtspCamera, gstreamer_missing, running_ingest
from tests.waiting import wait_until
from tests.test_alert_webhooks import SECRET, Receiver

WAIT_S = 120
NAME = "live-hook-yao"


@pytest.fixture
def receiver():
    with Receiver() as found:
        yield found


def recorded(camera_id: str) -> list[str]:
    from core.models import Job
    from services import runtime

    with runtime.records().session() as s:
        return [job.id for job in s.query(Job).filter(Job.camera_id == camera_id)]


def live_alerts(camera_id: str, rang: bool = False) -> int:
    """The camera's live alerts (``rang``: only those that rang, not their repeats)."""
    from core.alerts import Alert
    from services import runtime

    with runtime.records().session() as s:
        query = s.query(Alert).filter(Alert.camera == camera_id, Alert.job_id.is_(None))
        return (query.filter(Alert.repeat_of.is_(None)) if rang else query).count()


def deliveries_settled(camera_id: str) -> list[dict] | None:
    """The camera's live alerts once none of their deliveries is pending."""
    from core.alerts import Alerts
    from services import runtime

    live = [a for a in Alerts(runtime.records()).page(100) if a["job"] is None and a["camera"] == camera_id]
    deliveries = [d for alert in live for d in alert["deliveries"]]   # a repeat has none
    return live if deliveries and all(d["status"] != "pending" for d in deliveries) else None


def test_live_alerts_are_posted_as_segments_are_processed_and_not_again_with_the_recording(receiver, tmp_path):
    reason = gstreamer_missing()
    if reason:
        pytest.skip(reason)
    from core.alerts import Alerts
    from core.cameras import CameraRegistry
    from services import gallery, runtime
    from tasks.app import app
    from tests.test_analytics import yao_in_players

    clip = make_clip(tmp_path / "gate.mp4", seconds=40, fps=15, gop=15, size=(640, 360), face_windows=[(0, 40)],
                     audio=False)
    with private_farm(tmp_path / "farm", VIDFARM_ALERT_WEBHOOK_URLS=receiver.url("/ok"),
                      VIDFARM_ALERT_WEBHOOK_SECRET=SECRET) as farm:
        farm.wait_ready(app)
        gallery.enroll(runtime.farm(), NAME, [("yao.jpg", cv2.imencode(".jpg", yao_in_players())[1].tobytes())], largest_face=True)
        gallery.set_watchlist(runtime.farm(), NAME, True)
        registry = CameraRegistry.from_url(farm.redis_url)
        with RtspCamera(clip.path) as camera, running_ingest(registry):
            camera_id = registry.add("Gate camera", camera.url)["id"]
            try:
                posts = wait_until(lambda: receiver.to("/ok"), WAIT_S, "a live alert posted")
                assert recorded(camera_id) == []          # no job yet: it rang as the camera runs
                body = json.loads(posts[0]["body"])
                assert posts[0]["signed"] and (body["kind"], body["job"], body["camera"], body["identity"]) == (
                    "watchlist", None, camera_id, NAME), body
            finally:
                registry.delete(camera_id)
        # The watch stopped: its recording becomes a job, which lists the alert without posting it.
        jobs = wait_until(lambda: recorded(camera_id), WAIT_S, "the camera's recording made a job")
        listed = []
        for job_id in jobs:
            assert wait_for_job(job_id)["status"] == "done", job_id
            listed += Alerts(runtime.records()).page(50, job_id=job_id)
        assert any(a["kind"] == "watchlist" and a["identity"] == NAME for a in listed), listed
        assert all(a["deliveries"] == [] for a in listed)
        # Posted once each: the job's alerts have no delivery (above), and the live ones are all
        # done (the receiver has a post before its worker records it delivered).
        wait_until(lambda: deliveries_settled(camera_id), WAIT_S, "the live alerts' deliveries")
        # Those that rang: a track of the man that broke (a segment border, a new watch) within
        # alert_repeat_s of the first is a repeat, recorded without a delivery.
        assert len(receiver.to("/ok")) == live_alerts(camera_id, rang=True) >= 1

        # The live alert is on the Alerts page and in the API, with its delivery, no job.
        browser = viewer()
        listing = browser.get("/api/v1/alerts?per_page=100").json
        live = [a for a in listing if a["job"] is None]
        assert live and all(a["camera"] == camera_id and a["source_name"] is None for a in live), listing
        assert all([d["status"] for d in a["deliveries"]] == ["delivered"] for a in live if a["repeat_of"] is None)
        assert all(a["deliveries"] == [] and a["captured_at"] for a in live if a["repeat_of"] is not None)
        page = browser.get("/alerts").get_data(as_text=True)
        assert "live, <span class=\"hint deleted-camera\">a camera since deleted</span>" in page   # deleted above
        # Kept as long as the camera's recordings: the retention sweep deletes them with those.
        from tasks.recording import expire_recordings

        assert expire_recordings(retention_days=1e-9)["live_alerts"] == len(live)
        assert live_alerts(camera_id) == 0


def test_the_camera_events_say_which_live_alerts_repeat_one_that_rang(tmp_path, monkeypatch):
    """What the ingester writes for each processed segment (``segment_processed``, in a real
    Redis and the farm's records): each alert event carries its id and the alert it repeats
    (``repeat_of``), as the Alerts API has them, so the camera page can fold repeats as the
    Alerts page does; in a segment, the alert that rang comes before its repeat. The segment
    events' alerts carry the same."""
    from cli.redis_server import RedisServer
    from core.alerts import Alerts
    from core.cameras import CameraRegistry
    from services import runtime
    from tasks.camera_ingest import segment_processed
    from tests.conftest import use_farm_environment
    from tests.test_alert_repeats import enrol

    def segment(n: int, tracks: dict[int, int]) -> dict:
        """Segment ``n`` (2 s at 15 fps) with a watchlist alert per track (track -> its first frame)."""
        return {"segment": n, "first_frame": 30 * n, "frames": 30, "captured_at": 1_800_000_000.0 + 2 * n,
                "ready_at": 1_800_000_005.0 + 2 * n, "latency_s": 5.0, "faces": len(tracks),
                "alerts": [{"kind": "watchlist", "track": t, "frame": f, "t": f / 15, "detail": None,
                            "captured_at": 1_800_000_000.0 + f / 15} for t, f in tracks.items()],
                "tracks": [{"track": t, "identity": "Ada" if t < 5 else "Bob"} for t in tracks]}

    (tmp_path / "data").mkdir()
    with RedisServer(tmp_path / "redis") as server:
        use_farm_environment(monkeypatch, server.url, tmp_path / "data")     # the repeat window: 300 s
        enrol(runtime.records(), "Ada", "Bob")
        registry = CameraRegistry.from_url(server.url)
        camera_id = registry.add("Gate", "rtsp://127.0.0.1:9/gate")["id"]
        start = registry.last_event_id(camera_id)
        # Ada rings; her track breaks at the segment border and the next one repeats it. Bob
        # shows up with two tracks in one segment, the later one listed first: it repeats the other.
        for n, tracks in enumerate([{1: 0}, {2: 30}, {6: 75, 5: 62}]):
            assert segment_processed(registry, camera_id, segment(n, tracks), 15.0, token=None)
        events = registry.events(camera_id, start, block_ms=10)
        alerts = [data for _, kind, data in events if kind == "alert"]
        ada, bob = alerts[0]["id"], alerts[2]["id"]
        assert [(a["track"], a["repeat_of"]) for a in alerts] == [(1, None), (2, ada), (5, None), (6, bob)]
        listed = {a["id"]: (a["track"], a["repeat_of"]) for a in Alerts(runtime.records()).page(10)}
        assert {a["id"]: (a["track"], a["repeat_of"]) for a in alerts} == listed
        # The segment events say the same of their alerts (in the line's order): a consumer of
        # those alone takes no repeat for a new alert. Each segment's alerts follow it.
        assert [kind for _, kind, _ in events] == ["segment", "alert", "segment", "alert", "segment", "alert", "alert"]
        in_segments = [(a["track"], a["id"], a["repeat_of"]) for _, kind, data in events if kind == "segment"
                       for a in data["alerts"]]
        assert sorted(in_segments) == sorted((a["track"], a["id"], a["repeat_of"]) for a in alerts)
        assert [t for t, _, repeat_of in in_segments if repeat_of is None] == [1, 5]
        registry.delete(camera_id)


def test_a_segment_whose_alerts_fail_to_be_recorded_still_reaches_the_watchers(tmp_path, monkeypatch, caplog):
    """Only the database's and the broker's errors were caught while a segment's alerts were
    recorded: any other error escaped ``segment_processed`` before the segment's events were
    written, ended the camera's watch, and the watchers never heard of that segment or its
    alert. Here the records cannot hold the alert (a capture time past the year 9999: a
    ValueError from datetime, standing for any error that is neither the database's nor the
    broker's). The events still go out, the alert in them unrecorded (id null), the error is
    logged with its traceback, and the next segment's alert is recorded as usual."""
    from cli.redis_server import RedisServer
    from core.alerts import Alerts
    from core.cameras import CameraRegistry
    from services import runtime
    from tasks.camera_ingest import segment_processed
    from tests.conftest import use_farm_environment
    from tests.test_alert_repeats import enrol

    def segment(n: int, captured_at: float) -> dict:
        return {"segment": n, "first_frame": 30 * n, "frames": 30, "captured_at": captured_at,
                "ready_at": 1_800_000_005.0, "latency_s": 5.0, "faces": 1,
                "alerts": [{"kind": "watchlist", "track": n, "frame": 30 * n, "t": 2.0 * n, "detail": None,
                            "captured_at": captured_at}],
                "tracks": [{"track": n, "identity": "Ada"}]}

    (tmp_path / "data").mkdir()
    with RedisServer(tmp_path / "redis") as server:
        use_farm_environment(monkeypatch, server.url, tmp_path / "data")
        enrol(runtime.records(), "Ada")
        registry = CameraRegistry.from_url(server.url)
        camera_id = registry.add("Gate", "rtsp://127.0.0.1:9/gate")["id"]
        start = registry.last_event_id(camera_id)
        assert segment_processed(registry, camera_id, segment(0, 1e13), 15.0, token=None)
        assert "live alerts not recorded" in caplog.text and "ValueError" in caplog.text
        events = registry.events(camera_id, start, block_ms=10)
        assert [kind for _, kind, _ in events] == ["segment", "alert"]
        assert [(a["track"], a["id"], a["repeat_of"]) for a in events[0][2]["alerts"]] == [(0, None, None)]
        assert (events[1][2]["track"], events[1][2]["id"]) == (0, None)
        assert Alerts(runtime.records()).page(10) == []       # nothing half recorded
        # The camera goes on: its next segment's alert is recorded and rings.
        assert segment_processed(registry, camera_id, segment(1, 1_800_000_002.0), 15.0, token=None)
        alert = registry.events(camera_id, events[-1][0], block_ms=10)[-1][2]
        assert alert["track"] == 1 and alert["id"] == Alerts(runtime.records()).page(10)[0]["id"]
        registry.delete(camera_id)


def viewer():
    from core.accounts import Accounts
    from services import runtime
    from tests.web.conftest import PASSWORD, Account, logged_in_client, make_app

    accounts = Accounts(runtime.records())
    user = accounts.create_user("live-alert-viewer", PASSWORD, "viewer")
    return logged_in_client(make_app(), Account(user.username, "viewer", accounts.create_token(user.id)))
