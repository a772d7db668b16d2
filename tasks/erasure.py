"""Erasing a person: everything vidfarm stored about them, and a report of what went.

``services.erasure.start`` (the web request): the identity, its embeddings and face crops are
deleted at once, so no job matches them from then on. The ``vidfarm.erase`` task then goes through every job
submitted before: a job that references them (a ticked subset, its own gallery) forgets
them; results that name them are published again without them (their tracks lose identity
and kept embedding), every older results version that names them is deleted, per-segment
analyses forget those tracks, and the video is drawn again (``tasks.render``); the one that
showed the name is withdrawn at once. A job still running is waited for. Last, the database
forgets the deleted bytes (``Erasures.forget_deleted``) and the erasure's record keeps only
its report. Every step is idempotent: a task lost on the way is queued again by the watchdog.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from core.erasures import DeadRowsHeld, Erasures, JobRef
from core.models import ENDED_STATES
from core.storage import analysis_key, face_crops_key, job_key, version_key
from services import runtime
from tasks.app import app
from tasks.common import put_json, result_options, stored_versions
from tasks.gallery import job_matching
from tasks.jobs import republish
from tasks.render import clean_up_drawings, queue_render, video_key
from workers.erasure import Person, erased_tracks, forget_tracks, scrub_segment
from workers.results import reidentify

MAX_WAIT_S = 30.0


@app.task(name="vidfarm.erase", ignore_result=True)
def erase(erasure_id: str, wait_s: float = 1.0) -> dict:
    records = runtime.records()
    erasures = Erasures(records)
    erasure = erasures.get(erasure_id)
    if erasure is None or erasure.status == "done":
        return {"skipped": True}
    if erasure.name is None:       # cleared by an earlier run's finish, which did not end it
        return _finish(erasures, erasure_id, erasure.report, wait_s)
    report = {**erasure.report, "jobs": dict(erasure.report.get("jobs", {}))}
    erasures.set(erasure_id, status="running")
    person = Person.from_bytes(erasure.name, erasure.vectors, report["embeddings_removed"],
                               runtime.settings().recognition_threshold)
    others = {identity["name"] for identity in records.identities()}
    if "waiting_for_jobs" in report:       # an earlier run went through the rest
        jobs = [job for job in erasures.jobs_before(erasure.created_at) if job.id in report["waiting_for_jobs"]]
    else:
        jobs = erasures.jobs_before(erasure.created_at)
    waiting = []
    for job in jobs:
        if job.status not in ENDED_STATES:
            waiting.append(job.id)          # its results are not published yet: look again later
            continue
        removed = erase_from_job(job, person, others, erasure.identity_id, erasure.gallery_fingerprint)
        if removed:
            report["jobs"][job.id] = removed
            erasures.set(erasure_id, report=report)     # progress survives a lost task
    report["waiting_for_jobs"] = waiting
    report["waiting_for_videos"] = _videos_drawn(report["jobs"])
    if waiting or report["waiting_for_videos"]:
        erasures.set(erasure_id, report=report)
        erase.apply_async((erasure_id, min(2 * wait_s, MAX_WAIT_S)), countdown=wait_s)
        return {"waiting": waiting + report["waiting_for_videos"]}
    del report["waiting_for_jobs"], report["waiting_for_videos"]
    return _finish(erasures, erasure_id, report, wait_s)


def _finish(erasures: Erasures, erasure_id: str, report: dict, wait_s: float) -> dict:
    """The database forgets last; where an open transaction keeps it from dropping the deleted
    rows past the finish's own wait, the erasure stays unfinished (its report says who holds
    them) and runs again later."""
    try:
        erasures.finish(erasure_id, report)
    except DeadRowsHeld:
        erase.apply_async((erasure_id, min(2 * wait_s, MAX_WAIT_S)), countdown=wait_s)
        return {"waiting": ["database"]}
    return {"done": erasure_id}


def erase_from_job(job: JobRef, person: Person, others: set[str], identity_id: int,
                   fingerprint_before: str) -> dict:
    """Remove the person from one ended job; returns what was removed (empty: nothing)."""
    records, store = runtime.records(), runtime.store()
    removed: dict = {}
    # Faces a segment task cut for a stitch that never came (a failed job): only a speed-up.
    store.delete_prefix(face_crops_key(job.id))
    options = _without_person(job.options, identity_id, person.name)
    if options != job.options:
        records.set_job(job.id, options=options)
        removed["options_scrubbed"] = True
    needle = json.dumps(person.name).encode()[1:-1]     # the name as stored JSON spells it
    versions = stored_versions(job.id)
    # A job whose results hold the name may call the person by another in older versions (a
    # name before a rename); one matched against a gallery older than the one just before
    # the deletion may do so in all of them. Read all of those; of the others, none.
    read_all = bool(removed) or job.gallery_fingerprint not in (None, "job", fingerprint_before) or any(
        needle in store.local_path(key).read_bytes() for key in versions.values())
    naming = {number: key for number, key in versions.items()
              if read_all and erased_tracks(json.loads(store.local_path(key).read_text()), person, others)}
    erased: set[int] = set()
    latest_before: dict = {"frames": []}
    if naming or removed:
        matching = job_matching(options)

        def change(latest: dict | None) -> dict | None:
            nonlocal latest_before
            erased.update(erased_tracks(latest or {}, person, others))
            if not erased:
                return None
            latest_before = latest
            # Withdrawn before the new results are published (and their drawing queued).
            store.delete_prefix(video_key(job.id))
            return reidentify(forget_tracks(latest, erased), matching.gallery, result_options(matching.watchlist))

        version = republish(job.id, change, matching.fingerprint)
        if version is not None:
            removed.update(results_version=version, video="queued", video_of=version)
        deleted = sorted(number for number in naming if number != version)
        for number in deleted:
            store.delete_prefix(naming[number])
        if deleted:
            removed["versions_deleted"] = deleted
        _withdraw_named_video(job.id, deleted, removed)
    scrubbed = 0
    for segment in records.segments(job.id):
        for key in (analysis_key(job.id, segment.index), _analysis_before_drawing(job.id, segment.index)):
            if store.exists(key) and (erased or needle in store.local_path(key).read_bytes()):
                analysis = json.loads(store.local_path(key).read_text())
                if scrub_segment(analysis, segment.start_frame, latest_before, erased, person.name):
                    put_json(key, analysis)
                    scrubbed += 1
    if scrubbed:
        removed["segment_files_scrubbed"] = scrubbed
    return removed


def _without_person(options: dict, identity_id: int, name: str) -> dict:
    """A job's options without the person: out of a ticked subset (``gallery_ids``), and out
    of a gallery of the job's own (``gallery``: ``vidfarm process --gallery``, or a ticked
    subset of jobs submitted before subsets were kept as ids)."""
    updated = dict(options)
    if identity_id in options.get("gallery_ids", []):
        updated["gallery_ids"] = [i for i in options["gallery_ids"] if i != identity_id]
    if any(entry["name"] == name for entry in options.get("gallery") or []):
        updated["gallery"] = [entry for entry in options["gallery"] if entry["name"] != name]
    return updated


def _analysis_before_drawing(job_id: str, index: int) -> str:
    """Where a segment's analysis was kept before the video was drawn from the results."""
    return job_key(job_id, "annotated", f"{index:05d}.json")


def _withdraw_named_video(job_id: str, deleted_versions: list[int], removed: dict) -> None:
    """A video drawn from a withdrawn results version goes too (one drawn before videos
    followed results versions may show any of them), and the latest results are drawn."""
    records, store = runtime.records(), runtime.store()
    video = records.video(job_id)
    if "video_of" in removed or not deleted_versions or not (
            video.version in deleted_versions if video else store.exists(video_key(job_id))):
        return
    store.delete_prefix(video_key(job_id))
    latest = records.get_job(job_id).results_version
    queue_render(job_id, latest, json.loads(store.local_path(version_key(job_id, latest)).read_text()))
    removed.update(video="queued", video_of=latest)


def _videos_drawn(jobs: dict) -> list[str]:
    """Note each queued video that follows its job's latest results now (and delete the
    drawings it does not use, old names drawn in them included); returns the jobs whose
    video is still being drawn."""
    records = runtime.records()
    waiting = []
    for job_id, removed in jobs.items():
        if removed.get("video") != "queued":
            continue
        video, job = records.video(job_id), records.get_job(job_id)
        if job is None:
            removed["video"] = "the job was deleted"
        elif video is not None and video.version >= max(job.results_version, removed["video_of"]):
            clean_up_drawings(job_id)
            removed["video"] = f"re-rendered (results version {video.version})"
        elif video is not None and video.error:
            runtime.store().delete_prefix(job_key(job_id, "annotated"))
            removed["video"] = f"not drawn ({video.error}); the video that named them was removed"
        else:
            waiting.append(job_id)
    return waiting


def resume_lost(older_than_s: float) -> list[str]:
    """The watchdog's part: queue again the erasures whose task was lost."""
    from datetime import timedelta

    erasures = Erasures(runtime.records())
    lost = erasures.unfinished(datetime.now(timezone.utc) - timedelta(seconds=older_than_s))
    for erasure_id in lost:
        erase.apply_async((erasure_id,))
    return lost

