"""Re-analysing one job by hand (the README says to, after an upgrade left a job failed):
POST /api/v1/jobs/{id}/reanalyse and the job page's Re-analyse button, for operators only."""

from __future__ import annotations

from services import runtime
from services.submit import delete_job, submit_file
from tests.conftest import wait_for_job
from tests.web.conftest import csrf_token, logged_in_client


def split_job(records, name: str, status: str) -> str:
    """A job split into one segment whose file is not stored (a recording gone from the store).
    Delete it after the test: beat's re-analysis of a time window (another test) would take it."""
    job_id = records.add_job(name, "jobs/none/source").id
    assert records.record_split(job_id, [{"index": 0, "start_frame": 0, "frames": 1, "pts": [0], "end_pts": 1}],
                                status="processing", media={"time_base": [1, 15], "fps": 15.0})
    if status == "failed":
        records.fail_job(job_id, "made by the test")
    else:
        records.set_job(job_id, status=status)
    return job_id


def test_the_api_reanalyses_only_what_it_can_and_says_why_not(farm, web_app, accounts_by_role):
    records, client = runtime.records(), web_app.test_client()
    operator, viewer = accounts_by_role["operator"].auth, accounts_by_role["viewer"].auth
    assert client.post("/api/v1/jobs/nosuchjob/reanalyse", headers=operator).status_code == 404

    running = records.add_job("running.mp4", "jobs/none/source").id
    refused = client.post(f"/api/v1/jobs/{running}/reanalyse", headers=operator)
    assert refused.status_code == 409
    assert refused.json["error"] == f"job {running} is queued: it can be re-analysed once it is done or failed"
    assert client.post(f"/api/v1/jobs/{running}/reanalyse", headers=viewer).status_code == 403

    unsplit = records.add_job("not a video.mp4", "jobs/none/source").id
    records.fail_job(unsplit, "not a video vidfarm can process")
    refused = client.post(f"/api/v1/jobs/{unsplit}/reanalyse", headers=operator)
    assert refused.status_code == 409 and "failed before its recording was split" in refused.json["error"]

    for status in ("done", "failed"):
        gone = split_job(records, f"gone-{status}.mp4", status)
        try:
            refused = client.post(f"/api/v1/jobs/{gone}/reanalyse", headers=operator)
            assert refused.status_code == 409, refused.json
            assert refused.json["error"] == f"the stored recording of job {gone} is gone (in part or whole): " \
                                            f"it cannot be analysed again"
            assert records.get_job(gone).status == status          # refused: nothing changed
        finally:
            delete_job(runtime.farm(), gone)


def test_the_job_page_offers_reanalyse_to_operators_of_ended_jobs(farm, web_app, accounts_by_role, operator_client,
                                                                  face_clip):

    records = runtime.records()
    running = records.add_job("running.mp4", "jobs/none/source").id
    assert 'id="reanalyse-job"' not in operator_client.get(f"/jobs/{running}").get_data(as_text=True)

    job_id = submit_file(runtime.farm(), face_clip.path, name="faces.mp4")
    assert wait_for_job(job_id)["status"] == "done"
    viewer = logged_in_client(web_app, accounts_by_role["viewer"])
    viewer_page = viewer.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert 'id="reanalyse-job"' not in viewer_page
    assert viewer.post(f"/jobs/{job_id}/reanalyse", data={"csrf_token": csrf_token(viewer_page)}).status_code == 403

    page = operator_client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert 'id="reanalyse-job"' in page and f'action="/jobs/{job_id}/reanalyse"' in page
    assert operator_client.post(f"/jobs/{job_id}/reanalyse", data={}).status_code == 400     # no CSRF token
    response = operator_client.post(f"/jobs/{job_id}/reanalyse", data={"csrf_token": csrf_token(page)},
                                    follow_redirects=True)
    assert response.status_code == 200 and "Analysing the recording again" in response.get_data(as_text=True)
    view = wait_for_job(job_id)
    assert view["status"] == "done" and view["results_version"] == view["video_version"] == 2

    # A refusal is said on the job page, not as an error page.
    gone = split_job(records, "gone.mp4", "failed")
    try:
        page = operator_client.get(f"/jobs/{gone}").get_data(as_text=True)
        refused = operator_client.post(f"/jobs/{gone}/reanalyse", data={"csrf_token": csrf_token(page)},
                                       follow_redirects=True)
        assert f"the stored recording of job {gone} is gone" in refused.get_data(as_text=True)
    finally:
        delete_job(runtime.farm(), gone)


def test_the_results_and_video_of_before_are_served_while_the_job_is_analysed_again(
        farm, web_app, accounts_by_role, operator_client, face_clip):
    """A reviewer re-analysing last week's recording lost its results and video for the whole
    run (409, "job ... is processing, not done"), though they were stored. They are served,
    marked as from before that run, until it publishes the next version."""
    import time

    from core.segment_job import SegmentJob

    records, client, viewer = runtime.records(), web_app.test_client(), accounts_by_role["viewer"].auth
    job_id = submit_file(runtime.farm(), face_clip.path, name="faces.mp4")
    view = wait_for_job(job_id)
    assert view["status"] == "done" and view["video_version"] == view["results_version"] == 1, view
    results = client.get(f"/api/v1/jobs/{job_id}/results", headers=viewer)
    video = client.get(f"/api/v1/jobs/{job_id}/video", headers=viewer)
    assert results.status_code == video.status_code == 200
    assert "X-Vidfarm-Reanalysing" not in results.headers and "X-Vidfarm-Reanalysing" not in video.headers

    # A re-analysis in two steps, as services.jobs.reanalyse takes them: the job restarted (it is
    # processing from here on, whatever the workers' pace), then its segments queued.
    restarted = records.restart_job(job_id, timing={"run_started": time.time()})
    again = client.get(f"/api/v1/jobs/{job_id}/results", headers=viewer)
    assert again.status_code == 200 and again.headers["X-Vidfarm-Reanalysing"] == "processing"
    assert again.get_data() == results.get_data() and again.json["version"] == 1
    part = client.get(f"/api/v1/jobs/{job_id}/video", headers={**viewer, "Range": "bytes=0-99"})
    assert part.status_code == 206 and part.headers["X-Vidfarm-Reanalysing"] == "processing"
    assert part.get_data() == video.get_data()[:100]
    page = operator_client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "Being analysed again: below are its results of before" in page
    assert 'id="results-link"' in page and 'id="video"' in page and 'id="timeline"' in page
    spec = client.get("/api/v1/openapi.json", headers=viewer).json["paths"]
    assert "X-Vidfarm-Reanalysing" in spec["/api/v1/jobs/{job_id}/results"]["get"]["responses"]["200"]["headers"]
    assert "X-Vidfarm-Reanalysing" in spec["/api/v1/jobs/{job_id}/video"]["get"]["responses"]["200"]["headers"]

    runtime.farm().queue.fan_out(job_id, [SegmentJob.of(restarted.job, s) for s in restarted.segments],
                                 run=restarted.job.run)
    view = wait_for_job(job_id)
    assert view["status"] == "done" and view["video_version"] == view["results_version"] == 2, view
    latest = client.get(f"/api/v1/jobs/{job_id}/results", headers=viewer)
    assert latest.json["version"] == 2 and "X-Vidfarm-Reanalysing" not in latest.headers
