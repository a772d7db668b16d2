"""Defaults and words (issue 19 item 6): fever screening only where temperatures exist,
results.json that downloads, a 429 that says when to retry, confirmations without inline script."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import repo_root, wait_for_job
from tests.web.conftest import csrf_token
from tests.web.test_hardening import failed_logins, fresh_address


def test_fever_screening_is_left_out_for_ordinary_video_and_kept_for_radiometric(farm, tmp_path, face_clip):
    from tasks.jobs import screening_when_possible
    from tests.test_radiometric_media import raw_frames, write_ffv1_mkv

    thermal = write_ffv1_mkv(tmp_path / "thermal.mkv", raw_frames())
    chain = {"analyzers": ["detect", "track", "thermal"]}
    assert screening_when_possible(chain, thermal) == chain
    assert screening_when_possible(chain, face_clip.path) == {
        "analyzers": ["detect", "track"],
        "thermal_skipped": "the recording is ordinary video, not radiometric (16-bit thermal) video, so it holds "
                           "no temperatures"}
    # No choice made: the farm's default chain, less fever screening.
    assert "thermal" not in screening_when_possible({}, face_clip.path)["analyzers"]
    assert screening_when_possible({"analyzers": ["detect", "track"]}, face_clip.path) == {
        "analyzers": ["detect", "track"]}


def test_the_upload_form_screens_when_possible_and_the_job_says_it_did_not(farm, operator_client, face_clip):
    from services import runtime

    form = operator_client.get("/upload").get_data(as_text=True)
    assert "Fever screening (runs when the recording is radiometric thermal video)" in form
    with open(face_clip.path, "rb") as fh:
        response = operator_client.post("/upload", data={"file": (fh, "colour.mp4"), "csrf_token": csrf_token(form),
                                                         "analyzers": ["track", "thermal"]},
                                        content_type="multipart/form-data", headers={"Accept": "application/json"})
    job_id = response.json["id"]
    assert wait_for_job(job_id)["status"] == "done"
    assert runtime.records().get_job(job_id).options["analyzers"] == ["detect", "track"]
    page = operator_client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert ("Fever screening did not run: the recording is ordinary video, not radiometric (16-bit thermal) "
            "video, so it holds no temperatures.") in page

    # results.json: the page's link downloads it; the API answers JSON as before.
    assert f'href="/api/v1/jobs/{job_id}/results?download=1" id="results-link" download' in page
    saved = operator_client.get(f"/api/v1/jobs/{job_id}/results?download=1")
    assert saved.headers["Content-Disposition"] == f"attachment; filename={job_id}-results.json"
    assert saved.json["schema"] == "vidfarm.results/1"
    shown = operator_client.get(f"/api/v1/jobs/{job_id}/results")
    assert shown.headers["Content-Disposition"].startswith("inline") and shown.mimetype == "application/json"
    older = operator_client.get(f"/api/v1/jobs/{job_id}/results?version=1&download=1")
    assert older.headers["Content-Disposition"] == f"attachment; filename={job_id}-results-1.json"


def test_too_many_logins_says_when_to_try_again(farm):
    from tests.web.conftest import make_app

    app = make_app(login_rate_limit="2 per minute")
    client, address = app.test_client(), fresh_address()
    assert failed_logins(app, 2, "zed", address) == [401, 401]
    token = csrf_token(client.get("/login", environ_base={"REMOTE_ADDR": address}).get_data(as_text=True))
    refused = client.post("/login", environ_base={"REMOTE_ADDR": address},
                          data={"username": "zed", "password": "wrong guess", "csrf_token": token})
    assert refused.status_code == 429
    wait = int(refused.headers["Retry-After"])
    assert 1 <= wait <= 61
    text = refused.get_data(as_text=True)
    assert f"too many attempts: try again in {wait} seconds" in text


def test_no_template_carries_inline_script_or_handlers():
    """Confirmations and every other behaviour come from static scripts bound to data-
    attributes (the CSP forbids inline script; a name with an apostrophe stays text)."""
    for template in sorted(Path(repo_root() / "web" / "templates").glob("*.html")):
        html = template.read_text()
        assert not re.search(r"\son[a-z]+\s*=", html), template.name
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), template.name
        assert "style=" not in html, template.name
        for form in re.findall(r"<form[^>]*danger[^>]*>", html):
            assert "data-confirm=" in form, (template.name, form)


def test_the_alerts_page_names_the_camera_of_a_live_alert_or_says_it_was_deleted(farm, web_app, accounts_by_role):
    from core.alerts import Alerts
    from core.cameras import CameraRegistry
    from services import runtime
    from tests.web.conftest import logged_in_client

    registry = CameraRegistry.from_url(farm.redis_url)
    kept = registry.add("Loading bay", "rtsp://127.0.0.1:9/bay")["id"]
    gone = registry.add("Old porch", "rtsp://127.0.0.1:9/porch")["id"]
    alerts = Alerts(runtime.records())
    for camera_id, track in ((kept, 71), (gone, 72)):
        alerts.raise_live(camera_id, [{"kind": "no_mask", "track": track, "frame": 3, "t": 0.3,
                                       "detail": "face without a mask"}], {track: None}, ())
    registry.delete(gone)
    try:
        page = logged_in_client(web_app, accounts_by_role["viewer"]).get("/alerts").get_data(as_text=True)
        text = " ".join(page.split())
        assert f'live, <a href="/cameras/{kept}">Loading bay</a>, track 71' in text
        assert 'live, <span class="hint deleted-camera">a camera since deleted</span>, track 72' in text
        assert f'href="/cameras/{gone}"' not in page
    finally:
        registry.delete(kept)


def test_a_folded_live_repeat_says_its_camera_and_capture_time_as_the_alert_that_rang(farm, web_app, accounts_by_role):
    """On the Alerts page a repeat folds under the alert that rang; a live one says where and
    when it was seen (the camera, the capture time with its date), not a bare time of day."""
    from core.alerts import Alerts
    from core.cameras import CameraRegistry
    from services import gallery, runtime
    from tests.test_alert_repeats import enrol
    from tests.web.conftest import logged_in_client

    registry = CameraRegistry.from_url(farm.redis_url)
    camera_id = registry.add("Side gate", "rtsp://127.0.0.1:9/side")["id"]
    enrol(runtime.records(), "Repeat Rita")
    seen = [{"kind": "watchlist", "track": track, "frame": 3, "t": 0.3, "detail": None,
             "captured_at": 1_796_550_000.0 + 60 * n} for n, track in enumerate((81, 82))]
    alerts = Alerts(runtime.records())
    _, folds = alerts.raise_live(camera_id, seen, {81: "Repeat Rita", 82: "Repeat Rita"}, (), repeat_s=300.0)
    assert folds[1]["repeat_of"] == folds[0]["id"]
    try:
        page = logged_in_client(web_app, accounts_by_role["viewer"]).get("/alerts").get_data(as_text=True)
        text = " ".join(page.split())
        link = f'<a href="/cameras/{camera_id}">Side gate</a>'
        assert f"live, {link}, track 81" in text
        assert (f'<li data-repeat="{folds[1]["id"]}">live, {link}, captured 2026-12-06 09:41:00 UTC, track 82</li>'
                in text)
    finally:
        registry.delete(camera_id)
        gallery.delete_identity(runtime.farm(), "Repeat Rita")
