"""Drawing a job's annotated video from its published results.

Every publication of results (``tasks.jobs.republish``: the stitch, a re-identification, an
erasure) queues this: one task per segment whose labels changed (on the segment queue, as a
chord, so a long recording is drawn by every worker at once), then a join (ingest queue) that
concatenates all segments with the source's timestamps and audio and makes the result the
job's video (``Records.publish_video``), unless a video of newer results got there first.

Drawn segments are stored under a key of what shaped them (``workers.render.segment_key``),
so a drawing is never overwritten by another: unchanged segments are reused, and once the
video follows the latest results the drawings it does not use are deleted (old names drawn
in them included).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from celery import chord

from core.segment_job import SourceMedia
from core.storage import face_crops_key, job_key, output_key, segment_key, version_key
from services import runtime
from tasks.app import app
from tasks.common import put_json, render_config, scratch_dir
from tasks.leases import Lease, job_lease, render_lease
from tasks.store_wait import retry_or_fail, waiting_for_store
from workers import media, remux
from workers.render import render_segment as draw_segment
from workers.render import segment_key as drawing_key
from workers.render import segment_labels

JOIN_ATTEMPTS = 3


def drawn_key(job_id: str, index: int, key: str, extension: str = "mp4") -> str:
    """A drawn segment (``mp4``) or the labels it is drawn from (``json``, until it is drawn)."""
    return job_key(job_id, "annotated", f"{index:05d}-{key}.{extension}")


def video_key(job_id: str) -> str:
    return output_key(job_id, "annotated.mp4")


def queue_render(job_id: str, version: int, results: dict, attempt: int = 0) -> list[int]:
    """Queue the drawing of results ``version`` of a job; returns the segments to draw (the
    others are drawn already, from equal labels)."""
    records, store = runtime.records(), runtime.store()
    job = records.get_job(job_id)
    if job is None:
        return []
    config, intact = render_config(job.options), SourceMedia.intact_of(job.media or {})
    keys, missing = [], []
    for segment in records.segments(job_id):
        labels = segment_labels(results, segment.start_frame, segment.frames, config.fever_c)
        keys.append(drawing_key(labels, config, intact))
        if not store.exists(drawn_key(job_id, segment.index, keys[-1])):
            put_json(drawn_key(job_id, segment.index, keys[-1], "json"), labels)
            missing.append(segment.index)
    join = join_video.si(job_id, version, keys, time.time(), attempt)
    if missing:
        queue = job.options.get("queue", "cpu")
        chord([render_segment.si(job_id, index, keys[index]).set(queue=queue) for index in missing])(
            join.on_error(render_failed.s(job_id)))
    else:
        join.apply_async()
    return missing


@app.task(name="vidfarm.render_segment", bind=True)
def render_segment(self, job_id: str, index: int, key: str) -> dict:
    with Lease(render_lease(job_id, index), self.request.hostname or "local"):
        return _render_segment(self, job_id, index, key)


def _deleted_meanwhile(records, job_id: str) -> bool:
    """Whether the job is gone; False when the records cannot say (the database away): the
    drawing's own error then stands, retried as before, instead of the look's."""
    try:
        return records.get_job(job_id) is None
    except Exception:   # noqa: BLE001  (any error of the look: the drawing's is the one to report)
        return False


def _render_segment(self, job_id: str, index: int, key: str) -> dict:
    records = runtime.records()
    try:
        return _draw_labelled(job_id, index, key)
    except Exception as exc:
        if _deleted_meanwhile(records, job_id):
            # Deleted since the look at it, its files with it: nothing to draw, no error to log
            # and no errback to mark a video that is no more.
            _leave_nothing_unjoinable(job_id)
            return {"skipped": True}
        if isinstance(exc, media.MediaError):
            raise
        retry_or_fail(self, exc, runtime.settings().segment_retries)


def _draw_labelled(job_id: str, index: int, key: str) -> dict:
    """Draw segment ``index`` from the labels stored for drawing ``key``, unless it is drawn."""
    records, store = runtime.records(), runtime.store()
    target, labels_file = drawn_key(job_id, index, key), drawn_key(job_id, index, key, "json")
    job, segment = records.get_job(job_id), records.get_segment(job_id, index)
    if store.exists(target) or not store.exists(labels_file) or job is None or segment is None:
        # Drawn by an earlier delivery; or withdrawn (a newer video's clean-up, an erasure),
        # and then the join draws it again if its results still need it; or the job is gone.
        return {"skipped": True}
    started = time.perf_counter()
    _draw(job, index, segment.pts, json.loads(store.local_path(labels_file).read_text()), target)
    store.delete_prefix(labels_file)     # drawn now: the labels (names among them) need not stay
    _leave_nothing_unjoinable(job_id)
    return {"index": index, "seconds": round(time.perf_counter() - started, 4)}


def _draw(job, index: int, pts: list[int], labels: list[list[list]], target: str, intact: bool | None = None) -> None:
    """Draw segment ``index`` of ``job`` with ``labels`` (per frame) and store it at ``target``.
    ``intact``: whether its GOPs may be copied (default: the recording has no damage)."""
    source = SourceMedia.of(job)
    with scratch_dir() as scratch:
        out = Path(scratch) / "segment.mp4"
        draw_segment(runtime.store().local_path(segment_key(job.id, index)), out, pts, source.time_base,
                     source.fps, source.width, source.height, labels, render_config(job.options),
                     source.pts_offset, source.timed, intact=source.intact if intact is None else intact)
        runtime.store().move_file(target, out)


def draw_ahead_if_empty(job, index: int, pts: list[int], frames: list[list[dict]], damage: list) -> bool:
    """A segment in which the analysis found no face has nothing to draw, whatever the stitch
    decides later (names, tracks): where its drawing is a plain copy of the source's GOPs, it is
    made now by the worker that analysed it, so the job's video does not wait for one drawing
    task per empty segment once the results are out (most segments of a quiet camera's hour:
    docs/benchmarks.md, "A quiet camera"). Only then: a segment with damage is drawn after the
    stitch with the recording's stand-in pictures, and one that would be re-encoded (stream
    copy off, a stream that cannot be copied) is not worth holding its results back for.
    Drawings are stored under a key of their labels, so if the results do put a face here
    after all, the segment is drawn again from them and this drawing is never used (it is
    deleted with the other unused drawings). Returns whether it drew."""
    store = runtime.store()
    source, config = SourceMedia.of(job), render_config(job.options)
    if any(frames) or any(d is not None for d in damage) or not config.stream_copy or not source.timed:
        return False
    if not _still_processing(job.id):
        return False
    if not remux.stream_copyable(store.local_path(segment_key(job.id, index)), source.width, source.height):
        return False
    labels: list[list[list]] = [[] for _ in frames]
    # Keyed as intact: if the stitch finds the recording damaged after all, its segments are
    # all drawn again re-encoded, and this copy is not joined with them.
    target = drawn_key(job.id, index, drawing_key(labels, config, True))
    try:
        if not store.exists(target):
            _draw(job, index, pts, labels, target, intact=True)   # this segment is undamaged: copied as analysed
    finally:
        _leave_no_drawing_ahead_behind(job.id)
    return True


def draw_ahead_labelled(job, index: int, pts: list[int], labels: list[list[list]], pictures: list) -> bool:
    """Draw a segment with faces ahead of the results, from the frames its analysis decoded
    (``pictures``), with ``labels`` as the segment task could work them out (``tasks.jobs``:
    the tracks of the segments before it and its own). The drawing task would decode the
    segment again (and the GOP's frames before its first); this decodes nothing. Where the
    published labels differ (a track crossing into the next segment that changes its vote or
    name), the drawing's key differs: the segment is drawn again after the stitch and this
    drawing is never used (deleted with the other unused drawings). Only where the GOPs of the
    recording can be copied (the copying drawing takes decoded frames). Returns whether it drew."""
    store = runtime.store()
    source, config = SourceMedia.of(job), render_config(job.options)
    if not (config.stream_copy and source.timed and source.intact) or len(pictures) != len(pts):
        return False
    if not _still_processing(job.id):
        return False
    src = store.local_path(segment_key(job.id, index))
    if not remux.stream_copyable(src, source.width, source.height):
        return False
    target = drawn_key(job.id, index, drawing_key(labels, config, True))
    try:
        if not store.exists(target):
            with scratch_dir() as scratch:
                out = Path(scratch) / "segment.mp4"
                draw_segment(src, out, pts, source.time_base, source.fps, source.width, source.height, labels,
                             config, source.pts_offset, source.timed, intact=True, pictures=pictures)
                store.move_file(target, out)
    finally:
        _leave_no_drawing_ahead_behind(job.id)
    return True


def _still_processing(job_id: str) -> bool:
    """Whether a segment may still be drawn ahead: only while the job's segments are analysed.
    Once it is stitching or done, the drawing tasks draw what the results need (drawing ahead
    then is work done twice), and a failed or deleted job joins nothing."""
    current = runtime.records().get_job(job_id)
    return current is not None and current.status == "processing"


def _leave_no_drawing_ahead_behind(job_id: str) -> None:
    """After a drawing ahead: a segment queued again after its worker died does not hold the
    stitch back (``tasks.leases``), so the job may be done, its video joined and its unused
    drawings deleted while this one was drawn; then this drawing (names drawn in it) goes now.
    If the video does not follow the results yet, its join deletes it (or uses it)."""
    _leave_nothing_unjoinable(job_id)
    job = runtime.records().get_job(job_id)
    if job is not None and job.status == "done":
        clean_up_drawings(job_id)


def _leave_nothing_unjoinable(job_id: str) -> None:
    """A job may be deleted while a segment of it is drawn: whatever the drawing wrote after the
    deletion's sweep goes too; or fail: a drawing that will never be joined goes."""
    job = runtime.records().get_job(job_id)
    if job is None:
        runtime.store().delete_prefix(job_key(job_id))
    elif job.status == "failed":
        clean_up_drawings(job_id)


def fail_job(job_id: str, reason: str, run: float | None = None) -> bool:
    """Fail a job (``Records.fail_job``, ``run`` as there) and delete what was drawn ahead of its
    results, and the faces its segment tasks cut for a stitch that will not come. False, and
    nothing changes, when the job is in another run than ``run``."""
    if not runtime.records().fail_job(job_id, reason, run):
        return False
    clean_up_drawings(job_id)
    runtime.store().delete_prefix(face_crops_key(job_id))
    return True


@app.task(name="vidfarm.join_video", bind=True, ignore_result=True)
def join_video(self, job_id: str, version: int, keys: list[str], queued_at: float, attempt: int = 0) -> dict:
    """Concatenate the drawn segments of results ``version`` into the job's video."""
    with Lease(job_lease("join", job_id), self.request.hostname or "local"), waiting_for_store(self):
        return _join_video(job_id, version, keys, queued_at, attempt)


def _join_video(job_id: str, version: int, keys: list[str], queued_at: float, attempt: int) -> dict:
    records, store = runtime.records(), runtime.store()
    job = records.get_job(job_id)
    if job is None:
        return {"skipped": "the job was deleted"}
    current = records.video(job_id)
    if (current is not None and current.version >= version) or not store.exists(version_key(job_id, version)):
        clean_up_drawings(job_id)     # a newer video exists, or an erasure withdrew these results
        return {"skipped": f"results version {version} is not to be drawn"}
    segments = records.segments(job_id)
    parts = [drawn_key(job_id, s.index, key) for s, key in zip(segments, keys)]
    if not all(store.exists(part) for part in parts):
        # Another join's clean-up deleted a drawing this one meant to reuse: draw it again.
        if attempt + 1 >= JOIN_ATTEMPTS:
            records.set_video_error(job_id, f"drawn segments of results version {version} went missing")
            return {"failed": "drawn segments missing"}
        results = json.loads(store.local_path(version_key(job_id, version)).read_text())
        return {"redrawing": queue_render(job_id, version, results, attempt + 1)}
    source = SourceMedia.of(job)
    with scratch_dir() as scratch:
        out = Path(scratch) / "annotated.mp4"
        media.concat_segments([store.local_path(part) for part in parts],
                              [media.SegmentTiming(s.pts, s.end_pts) for s in segments],
                              source.time_base, out,
                              audio_source=store.local_path(job.source_key) if source.has_audio else None)
        # The drawings this video does not use (old names drawn in them included) go before it
        # is seen following the latest results.
        published = records.publish_video(job_id, version, keys, round(time.time() - queued_at, 3),
                                           lambda: store.move_file(video_key(job_id), out),
                                           if_latest=lambda: _delete_drawings_but(job_id, set(parts)))
    clean_up_drawings(job_id)
    _leave_nothing_unjoinable(job_id)
    return {"version": version, "published": published}


def clean_up_drawings(job_id: str) -> list[str]:
    """Once the video follows the job's latest results, delete the drawings it does not use
    (while it does not, a newer drawing may still be on its way); of a failed job, every
    drawing its video (if an earlier run made one) does not use: those drawn ahead for the
    failed run would never be joined. Returns the keys deleted."""
    records, store = runtime.records(), runtime.store()
    job, video = records.get_job(job_id), records.video(job_id)
    if job is None:
        return []
    if job.status != "failed" and (video is None or video.version < job.results_version):
        return []
    used = set() if video is None else {drawn_key(job_id, index, key) for index, key in enumerate(video.segments)}
    return _delete_drawings_but(job_id, used)


def _delete_drawings_but(job_id: str, used: set[str]) -> list[str]:
    """Delete a job's drawings (and labels waiting to be drawn) other than ``used``."""
    store = runtime.store()
    stale = [key for key in store.list_keys(job_key(job_id, "annotated")) if key not in used]
    for key in stale:
        store.delete_prefix(key)
    return stale


@app.task(name="vidfarm.render_failed", ignore_result=True)
def render_failed(request, exc, traceback, job_id: str) -> None:
    """Errback of the drawing chord: the job keeps its results and says why its video lags."""
    runtime.records().set_video_error(job_id, f"drawing the video failed: {exc}")


@app.task(name="vidfarm.redraw", bind=True, ignore_result=True)
def redraw_latest(self, job_id: str) -> bool:
    """Draw a done job's video again from its latest results unless it follows them already
    (a drawing task's worker died: ``tasks.leases``; the store was away when the results were
    published: ``tasks.jobs.republish``). Drawings already made are reused."""
    with waiting_for_store(self):
        return _redraw_latest(job_id)


def _redraw_latest(job_id: str) -> bool:
    records = runtime.records()
    job, video = records.get_job(job_id), records.video(job_id)
    if job is None or job.status != "done" or (video is not None and video.version >= job.results_version):
        return False
    results = json.loads(runtime.store().local_path(version_key(job_id, job.results_version)).read_text())
    queue_render(job_id, job.results_version, results)
    return True


def redraw_stale_videos(cutoff) -> list[str]:
    """The watchdog's part: draw again the videos of done jobs that have not followed their
    latest results since before ``cutoff`` (their drawing tasks were lost)."""
    records, store = runtime.records(), runtime.store()
    redrawn = []
    for job_id, version in records.jobs_with_stale_video(cutoff):
        video = records.video(job_id)
        if video is not None and video.error:
            continue       # it failed with a reason, shown on the job; drawing again would fail again
        if video is None and store.exists(video_key(job_id)):
            continue       # drawn before videos followed results: kept until the next version
        results = json.loads(store.local_path(version_key(job_id, version)).read_text())
        queue_render(job_id, version, results)
        redrawn.append(job_id)
    return redrawn
