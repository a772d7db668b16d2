"""Alerts reach people: a farm of its own (webhook settings in every worker's environment) runs a
recording of a watch-listed man, and real HTTP receivers on 127.0.0.1 (a threaded
http.server) get the signed POSTs: one that answers at once, one that fails twice and then
answers, one that never does. The job is done before any of them is called. He is on screen
twice: his second track's alert is a repeat, recorded and not sent. Each body names its alert
(the API's id) and when that try was sent, inside the signed bytes."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import pytest

from cli.redis_server import free_port
from tests.conftest import private_farm, wait_for_job

SECRET = "a webhook secret"
ATTEMPTS = 3
FIELDS = {"id", "kind", "job", "camera", "track", "t", "identity", "detail", "sent_at"}


SLOW_S = 3.0          # how long /slow takes to answer


class Receiver:
    """/ok answers 204; /flaky answers 500 to the first two POSTs of each alert (by its id, as
    a receiver de-duplicates: each try's body differs, by ``sent_at``), then 200; /once 500 to
    the first, then 200; /broken always 500; /slow 200, ``SLOW_S`` after the POST was kept;
    /hold keeps the first POST of each alert unanswered until ``release`` is set (or a minute
    passed), then 200, and answers the others 200 at once. Every POST is kept with its signature
    header and whether it was right."""

    def __init__(self):
        self.posts: list[dict] = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                header = self.headers.get("X-Vidfarm-Signature", "")
                signed = hmac.compare_digest(header, expected)
                alert = json.loads(body).get("id")
                with receiver.lock:
                    earlier = sum(1 for p in receiver.posts if p["path"] == self.path and p["alert"] == alert)
                    receiver.posts.append({"path": self.path, "body": body, "alert": alert, "signature": header,
                                           "signed": signed, "at": time.time(),
                                           "type": self.headers.get("Content-Type")})
                fails = (self.path == "/broken" or (self.path == "/flaky" and earlier < 2)
                         or (self.path == "/once" and earlier < 1))
                if self.path == "/slow":
                    time.sleep(SLOW_S)
                if self.path == "/hold" and earlier == 0:
                    receiver.release.wait(60)
                self.send_response(500 if fails else (204 if self.path == "/ok" else 200))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.release.set()          # a held POST's thread ends
        self.server.shutdown()
        self.thread.join()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def to(self, path: str) -> list[dict]:
        with self.lock:
            return [p for p in self.posts if p["path"] == path]


@pytest.fixture(scope="module")
def receiver():
    with Receiver() as found:
        yield found


@pytest.fixture(scope="module")
def webhook_farm(receiver, tmp_path_factory):
    urls = ",".join(receiver.url(path) for path in ("/ok", "/flaky", "/broken"))
    with private_farm(tmp_path_factory.mktemp("webhook-farm"), workers=1, VIDFARM_ALERT_WEBHOOK_URLS=urls,
                      VIDFARM_ALERT_WEBHOOK_SECRET=SECRET, VIDFARM_ALERT_WEBHOOK_ATTEMPTS=str(ATTEMPTS),
                      VIDFARM_ALERT_WEBHOOK_BACKOFF_S="0.5", VIDFARM_SEGMENT_SECONDS="3") as farm:
        from tasks.app import app

        farm.wait_ready(app)
        yield farm


def deliveries_settled(job_id: str, timeout: float = 120.0) -> list[dict]:
    from core.alerts import Alerts
    from services import runtime

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alerts = Alerts(runtime.records()).page(50, job_id=job_id)
        deliveries = [d for alert in alerts for d in alert["deliveries"]]
        if deliveries and all(d["status"] != "pending" for d in deliveries):
            return alerts
        time.sleep(0.2)
    raise TimeoutError(f"deliveries of job {job_id} still pending after {timeout} s")


def test_each_alert_is_posted_signed_once_to_every_url_retried_and_recorded(webhook_farm, receiver, face_clip):
    from core.alerts import Alerts
    from services import gallery
    from services import runtime
    from services.submit import submit_file
    from tests.test_analytics import yao_in_players

    gallery.enroll(runtime.farm(), "hook-yao", [("yao.jpg", cv2.imencode(".jpg", yao_in_players())[1].tobytes())],
                   largest_face=True)
    gallery.set_watchlist(runtime.farm(), "hook-yao", True)
    job_id = submit_file(runtime.farm(), face_clip.path, name="lobby.mp4")
    view = wait_for_job(job_id)
    assert view["status"] == "done" and view["error"] is None

    listed = deliveries_settled(job_id)
    results = json.loads(runtime.store().local_path(f"jobs/{job_id}/output/results.json").read_text())
    everything = [(a["kind"], a["track"], a["t"]) for a in results["alerts"]]
    assert {kind for kind, *_ in everything} == {"watchlist"}
    assert sorted((a["kind"], a["track"], a["t"]) for a in listed) == sorted(everything)
    # The man is on screen twice, 6 s apart: two tracks, two alerts (results.json and the
    # alerts list keep one per track), but the second is a repeat of the first (within
    # alert_repeat_s, 300 s by default): recorded, not sent.
    assert len(everything) == 2, everything
    first, second = sorted(listed, key=lambda a: a["t"])
    assert (second["repeat_of"], second["deliveries"], first["repeat_of"], first["repeats"]) == (
        first["id"], [], None, 1)
    alerts = [first]
    raised = [(first["kind"], first["track"], first["t"])]

    # /ok: exactly one POST per alert, signed, with the contract's fields and values.
    bodies = [json.loads(p["body"]) for p in receiver.to("/ok")]
    assert len(bodies) == len(raised) and all(p["signed"] for p in receiver.posts)
    assert all(p["type"] == "application/json" for p in receiver.posts)
    assert all(set(body) == FIELDS for body in bodies)
    assert sorted((b["kind"], b["track"], b["t"]) for b in bodies) == sorted(raised)
    assert {(b["job"], b["camera"], b["identity"], b["detail"]) for b in bodies} == {
        (job_id, None, "hook-yao", "hook-yao is on the watchlist")}
    # Each names its alert by the id the alerts API lists, and says when it was sent: this try,
    # a moment before the receiver had it (a receiver rejects an old one: a replay).
    assert [b["id"] for b in bodies] == [first["id"]]
    for post in receiver.posts:
        sent_at = datetime.fromisoformat(json.loads(post["body"])["sent_at"])
        assert sent_at.utcoffset().total_seconds() == 0, sent_at
        assert -0.5 < post["at"] - sent_at.timestamp() < 5, (post["at"], sent_at)
    # /flaky: two failures, then delivered; /broken: recorded as failed after ATTEMPTS tries.
    assert len(receiver.to("/flaky")) == 3 * len(raised) and len(receiver.to("/broken")) == ATTEMPTS * len(raised)
    for alert in alerts:
        by_url = {d["url"].rsplit("/", 1)[1]: d for d in alert["deliveries"]}
        assert (by_url["ok"]["status"], by_url["ok"]["attempts"], by_url["ok"]["status_code"]) == ("delivered", 1, 204)
        assert by_url["ok"]["delivered_at"] and by_url["ok"]["last_error"] is None
        flaky, broken = by_url["flaky"], by_url["broken"]
        assert (flaky["status"], flaky["attempts"], flaky["status_code"]) == ("delivered", 3, 200)
        assert flaky["delivered_at"] and flaky["last_error"].startswith("HTTP 500")
        assert (broken["status"], broken["attempts"], broken["status_code"]) == ("failed", ATTEMPTS, 500)
        assert broken["delivered_at"] is None and broken["last_error"].startswith("HTTP 500")
    # Retried with backoff: the tries of one alert to /broken are at least 0.5 s, then 1 s apart.
    tries = [p for p in receiver.to("/broken") if p["alert"] == first["id"]]
    times = [p["at"] for p in tries]
    assert times[1] - times[0] >= 0.45 and times[2] - times[1] >= 0.95, times
    # Each try is stamped anew (a retry after a 500 is not the first try's bytes again), and the
    # signature covers the stamp: a POST replayed with a fresh sent_at no longer verifies.
    stamps = [json.loads(p["body"])["sent_at"] for p in tries]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps) == ATTEMPTS, stamps
    flaky_stamps = {json.loads(p["body"])["sent_at"] for p in receiver.to("/flaky")}
    assert len(flaky_stamps) == len(receiver.to("/flaky")), flaky_stamps
    replayed = tries[0]["body"].replace(stamps[0].encode(), datetime.now(timezone.utc).isoformat().encode())
    assert replayed != tries[0]["body"] and tries[0]["signature"] != (
        "sha256=" + hmac.new(SECRET.encode(), replayed, hashlib.sha256).hexdigest())

    # The job did not wait for any receiver: it was done before the first POST.
    finished = datetime.fromisoformat(view["finished_at"])
    finished = finished if finished.tzinfo else finished.replace(tzinfo=timezone.utc)
    assert finished.timestamp() <= min(p["at"] for p in receiver.posts)

    # A re-identification publishes the same alerts again: nobody is told twice. (The gallery
    # changes first, by someone nobody in the clip resembles: a job matched against the gallery
    # as it is is not re-identified at all.)
    import numpy as np

    from tasks.reanalysis import reidentify_job

    def deliveries() -> int:
        return sum(len(alert["deliveries"]) for alert in Alerts(runtime.records()).page(50, job_id=job_id))

    before = deliveries()
    assert reidentify_job(job_id)["version"] is None
    stranger = np.random.default_rng(7).standard_normal(512).astype(np.float32)
    runtime.records().add_embeddings("hook-stranger", [(stranger / np.linalg.norm(stranger)).tobytes()],
                                     ["random"], [None])
    assert reidentify_job(job_id)["version"] == 2
    # A POST needs a delivery, which the publication makes in its own commit: none was made
    # (checked at once, where sleeping a while and counting posts depended on the machine's pace).
    assert deliveries() == before


def test_alerts_show_on_the_jobs_list_and_the_alerts_page(webhook_farm, receiver):
    from core.alerts import Alerts
    from services import runtime
    from tests.web.conftest import logged_in_client, make_app
    from core.accounts import Accounts
    from tests.web.conftest import PASSWORD, Account

    alerts = Alerts(runtime.records()).page(50)
    assert alerts, "the test before raised alerts on this farm"
    job_id = alerts[0]["job"]
    rang = [a for a in alerts if a["repeat_of"] is None]
    accounts = Accounts(runtime.records())
    user = accounts.create_user("alert-viewer", PASSWORD, "viewer")
    browser = logged_in_client(make_app(), Account(user.username, "viewer", accounts.create_token(user.id)))
    listing = browser.get("/jobs").get_data(as_text=True)
    assert f'href="/alerts?job={job_id}">{len(alerts)} alerts</a>' in listing
    page = browser.get(f"/alerts?job={job_id}").get_data(as_text=True)
    # The page shows the alerts that rang, each with its repeats folded under it.
    assert page.count("data-alert=") == len(rang) and "/broken: failed after 3 tries (HTTP 500" in page
    assert page.count("data-repeat=") == len(alerts) - len(rang) == 1 and "repeated 1 time, not sent" in page
    assert all(f'href="/jobs/{job_id}?t={a["t"]:.2f}"' in page for a in alerts)
    # The id each POST named is the alert's id the API lists (the alert that rang).
    listed = browser.get(f"/api/v1/alerts?job={job_id}").json
    posted = {json.loads(p["body"])["id"] for p in receiver.to("/ok")}
    assert posted == {a["id"] for a in listed if a["repeat_of"] is None and a["job"] == job_id}
    api = browser.get(f"/api/v1/alerts?job={job_id}&per_page=1")
    assert len(api.json) == 1 and ('rel="next"' in api.headers.get("Link", "")) == (len(alerts) > 1)
    assert browser.get(f"/api/v1/jobs/{job_id}").json["alerts"] == len(alerts)


def test_a_re_identification_that_names_the_man_anew_withdraws_his_old_alerts_and_rings_the_new_name(
        webhook_farm, receiver):
    """The man of the test above, named hook-yao, is enrolled again under another watch-listed
    name with his own face as the recording has it (so that name matches him best). Before,
    the re-identification renamed his tracks but left hook-yao's alerts standing (same tracks,
    same frames) and raised none for the new name: nobody was told."""
    import numpy as np

    from core.alerts import Alerts
    from services import runtime
    from tasks.reanalysis import reidentify_job

    job_id = next(a["job"] for a in Alerts(runtime.records()).page(50) if a["identity"] == "hook-yao")
    results = json.loads(runtime.store().local_path(f"jobs/{job_id}/output/results.json").read_text())
    face = np.asarray(results["tracks"][0]["embedding"], np.float32)
    runtime.records().add_embeddings("hook-yao-twin", [(face / np.linalg.norm(face)).tobytes()], ["clip"], [None])
    runtime.records().change_identity("hook-yao-twin", watchlist=True)   # no sweep queued: this test runs it
    posted = len(receiver.to("/ok"))
    version = reidentify_job(job_id)["version"]
    assert version is not None
    results = json.loads(runtime.store().local_path(f"jobs/{job_id}/output/results.json").read_text())
    assert {t["identity"] for t in results["tracks"]} == {"hook-yao-twin"}

    listed = deliveries_settled(job_id)
    standing = sorted((a["track"], a["identity"], a["repeat_of"] is None) for a in listed if not a["withdrawn"])
    assert standing == sorted((a["track"], "hook-yao-twin", i == 0) for i, a in enumerate(
        sorted(results["alerts"], key=lambda a: a["t"])))
    assert {a["identity"] for a in listed if a["withdrawn"]} == {"hook-yao"}
    # His new name rang once (his second track is a repeat of it), to each receiver.
    new = [json.loads(p["body"]) for p in receiver.to("/ok")[posted:]]
    assert [(b["identity"], b["detail"]) for b in new] == [("hook-yao-twin", "hook-yao-twin is on the watchlist")]
