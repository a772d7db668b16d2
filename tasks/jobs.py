"""The farm's tasks: ingest (probe, split, fan out), segment (analyse one piece), stitch
(join the pieces' tracks and publish the results); the video is then drawn from the published
results (``tasks.render``).

Each task is thin: it loads inputs from records and blob storage, calls workers/, and stores
outputs. All three are idempotent (outputs are written whole under fixed keys), which is what
makes acks_late redelivery safe.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from pathlib import Path
from typing import Callable

from core.results import Results
from core.segment_job import SegmentJob, SourceMedia
from core.storage import BlobStoreUnavailable, analysis_key, face_crops_key, output_key, segment_key, version_key
from services import runtime
from tasks import published
from tasks.app import app
from tasks.client import fan_out
# tasks.live and tasks.live_watch import these from here.
from tasks.common import (_json_bytes, _pipeline_config, _put_bytes, media_limits, put_json,  # noqa: F401
                          render_config, result_options, scratch_dir)
from tasks.gallery import job_matching
from tasks.render import draw_ahead_if_empty, draw_ahead_labelled, fail_job, queue_render
from tasks.leases import Lease, forget_requeues, job_lease, segment_lease, stitch_without_chord
from tasks.store_wait import retry_or_fail
from workers import media, pipeline, remux
from workers.analytics import thermal
from workers.render import segment_labels
from workers.results import SegmentOutput, assemble_results, damage_warning, source_summary

log = logging.getLogger(__name__)


# Nobody waits on an ingest's return value (progress lives in the records), so the client
# that queues it need not subscribe to its result.
@app.task(name="vidfarm.ingest", bind=True, ignore_result=True)
def ingest(self, job_id: str) -> dict:
    with Lease(job_lease("ingest", job_id), self.request.hostname or "local"):
        return _ingest(self, job_id)


def _ingest(self, job_id: str) -> dict:
    records, store, settings = runtime.records(), runtime.store(), runtime.settings()
    # A redelivered ingest of a job already split (or ended) changes nothing.
    job = records.start_stage(job_id, "splitting", from_states=("queued", "splitting"))
    if job is None:
        return {"skipped": True}
    started = time.perf_counter()
    try:
        source = store.local_path(job.source_key)
        info = media.probe(source, media_limits())
        options = screening_when_possible(job.options, source)
        plans = media.plan_segments(info, float(job.options.get("segment_seconds", settings.segment_seconds)),
                                    settings.min_segments, settings.max_segments, settings.max_segment_seconds,
                                    settings.keyframe_snap)
        with scratch_dir() as scratch:
            files = media.split_segments(source, info, plans, Path(scratch))
            for plan, path in zip(plans, files):
                store.move_file(segment_key(job_id, plan.index), path)
    except media.MediaError as exc:
        fail_job(job_id, str(exc))
        return {"failed": str(exc)}
    except Exception as exc:
        retry_or_fail(self, exc, fail=lambda reason: fail_job(job_id, f"ingest failed: {reason}"))
    if not records.record_split(job_id, [
            {"index": p.index, "start_frame": p.start_frame, "frames": p.frames, "pts": p.pts,
             "end_pts": p.end_pts} for p in plans],
            status="processing", media=info.summary(), options=options,
            timing={"split_s": round(time.perf_counter() - started, 4)}):
        return {"skipped": "the job ended while it was split"}
    source_media = SourceMedia.of_summary(info.summary())
    fan_out(job_id, [SegmentJob(job_id, p.index, tuple(p.pts), source_media) for p in plans],
            job.options.get("queue", "cpu"), run=job.run)
    return {"segments": len(plans), "frames": info.frames}


def screening_when_possible(options: dict, source: Path) -> dict:
    """Fever screening reads temperatures, which only radiometric (16-bit thermal) video
    holds: asked for (or by default) on any other video, it is left out of the job's chain,
    and the job says why."""
    chain = options.get("analyzers") or list(runtime.settings().analyzers)
    if "thermal" not in chain or thermal.is_radiometric(source):
        return options
    return {**options, "analyzers": [name for name in chain if name != "thermal"],
            "thermal_skipped": "the recording is ordinary video, not radiometric (16-bit thermal) video, "
                               "so it holds no temperatures"}


def publish_results(job, results: dict, gallery_fingerprint: str,
                    publication: published.Publication | None = None, **job_changes) -> int | None:
    """Store a new version of a job's results: ``output/versions/results-N.json`` stays,
    ``output/results.json`` is always the latest. Returns N. The job's ``results_version``
    turns N only once both files are in place, together with ``job_changes`` (as
    ``Records.set_job`` takes them). ``gallery_fingerprint`` is that of the gallery the
    results were matched against (``Matching.fingerprint``); ``publication``: prepared from
    these results already (``published.prepare``; default: prepared here). None, and nothing
    stored, when the job is gone, or has ended though ``job_changes`` would end it
    (``publish_version``). The video is then drawn from these results (``tasks.render``)."""
    return republish(job.id, lambda _latest: results, gallery_fingerprint,
                     publication=publication or published.prepare(job, results), **job_changes)


class _Unchanged(Exception):
    """Raised inside a publication to give up its version number: nothing to publish."""


def republish(job_id: str, change: Callable[[dict | None], dict | None], gallery_fingerprint: str,
              publication: published.Publication | None = None, **job_changes) -> int | None:
    """Publish ``change(latest results)`` as the job's next results version (as
    ``publish_results``). ``change`` runs while the version number is claimed, so it reads
    what the previous publisher wrote: two re-identifications, or one and an erasure, never
    publish from the same version and lose each other's change. ``change`` returns None when
    nothing changes: then nothing is published and None is returned.

    People search and the alerts follow every version, in the same commit (``tasks.published``).
    ``publication``: prepared from the results before the claim (the stitch: it may decode face
    crops); a change made under the claim is prepared there (it keeps the tracks' best faces,
    so their crops are reused and nothing is decoded while the job's row is locked)."""
    outcome: dict = {}

    def write(version: int) -> None:
        store, key = runtime.store(), output_key(job_id, "results.json")
        results = change(json.loads(store.local_path(key).read_text()) if store.exists(key) else None)
        if results is None:
            raise _Unchanged
        versioned = _json_bytes({**results, "version": version})   # encoded once, stored twice
        _put_bytes(version_key(job_id, version), versioned)
        _put_bytes(key, versioned)
        outcome["results"] = results
        outcome["publication"] = publication or published.prepare(runtime.records().get_job(job_id), results)

    try:
        version = runtime.records().publish_version(
            job_id, gallery_fingerprint, write, also=lambda s, number: outcome["publication"].record(s, number),
            **job_changes)
    except _Unchanged:
        return None
    if version is not None:
        outcome["publication"].send()
        try:
            queue_render(job_id, version, outcome["results"])
        except BlobStoreUnavailable as exc:
            # Published: a publisher retried now would find nothing to do (a stitch, the job
            # done), so the drawing goes to a task that waits for the store (``tasks.store_wait``).
            log.warning("job %s: results version %d published, its drawing queued again: %s", job_id, version, exc)
            app.send_task("vidfarm.redraw", (job_id,))
    return version


def warm_up() -> None:
    """Build the default analyzer chain (models load once per worker process)."""
    config = _pipeline_config({})
    pipeline.analyzer_chain(config.analyzers, config.analyzer_configs, config.plugins)


# Decided at the stitch from the pooled embeddings, so never stored per segment: a rename or
# an erasure then has no copies of a name to rewrite there.
_DECIDED_AT_STITCH = ("identity", "similarity")


def _without_names(result: pipeline.SegmentResult) -> dict:
    def blank(entry: dict) -> dict:
        return {**entry, **dict.fromkeys(_DECIDED_AT_STITCH)}

    return {"frames": [[blank(face) for face in faces] for faces in result.frames],
            "tracks": [blank(track) for track in result.tracks], "thumbnails": result.thumbnails,
            "stages": result.stages, "repaired_frames": result.repaired_frames, "damage": result.damage}


def _put_face_crops(job_id: str, index: int, result: pipeline.SegmentResult) -> None:
    """Beside the analysis, not in it: faces are pictures of people, kept only until the
    stitch has published (then deleted; an erasure deletes any left)."""
    put_json(face_crops_key(job_id, index),
             [[frame, box, base64.b64encode(jpeg).decode()] for frame, box, jpeg in result.face_crops])


def _face_crops(job_id: str, segments) -> dict[tuple[int, tuple], bytes]:
    """The best faces the segment tasks cut (``SegmentResult.face_crops``), by (frame in the
    job, box): ``published.prepare`` decodes only those it does not find here (a segment
    analysed by a worker of older code cut none)."""
    store, crops = runtime.store(), {}
    for s in segments:
        if store.exists(key := face_crops_key(job_id, s.index)):
            for frame, box, jpeg in json.loads(store.local_path(key).read_text()):
                crops[s.start_frame + frame, tuple(box)] = base64.b64decode(jpeg)
    return crops


@app.task(name="vidfarm.segment", bind=True)
def process_segment(self, *message) -> dict:
    """message: one ``SegmentJob.to_message()`` (anything else is refused, saying why)."""
    segment = SegmentJob.from_message("vidfarm.segment", message)
    job_id, index = segment.owner, segment.index
    worker = self.request.hostname or "local"
    with Lease(segment_lease(job_id, index), worker) as lease:
        done = _process_segment(self, segment, worker, lease)
    # A segment queued again after its worker died leaves the chord waiting for that worker's
    # task, which never reports: then the last segment done calls the stitch.
    if "skipped" not in done and stitch_without_chord(job_id) and not _unfinished(runtime.records().segments(job_id)):
        stitch.apply_async((job_id,))
    return done


def _process_segment(self, segment: SegmentJob, worker: str, lease: Lease) -> dict:
    records, store = runtime.records(), runtime.store()
    job_id, index = segment.owner, segment.index
    taken = records.start_segment(job_id, index, worker=worker)
    if taken is None:
        return {"skipped": True}
    job, _ = taken
    started = time.perf_counter()
    result = None
    try:
        result = pipeline.analyse_segment(store.local_path(segment_key(job_id, index)), segment,
                                          _pipeline_config(job.options), job_matching(job.options).gallery,
                                          cut_faces=True, keep_pictures_bytes=_pictures_to_keep(job, segment))
        put_json(analysis_key(job_id, index), _without_names(result))
        _put_face_crops(job_id, index, result)
    except media.MediaError as exc:
        records.set_segment(job_id, index, status="failed", error=str(exc))
        fail_job(job_id, f"segment {index}: {exc}")
        raise
    except Exception as exc:
        if result is not None:     # the traceback keeps this frame: not its kept pictures (up to 192 MiB) too
            result.pictures = None
        if not lease.held:     # cut off (the database or Redis unreachable), its work given to another
            raise

        def fail(reason: str) -> None:
            records.set_segment(job_id, index, status="failed", error=reason)
            fail_job(job_id, f"segment {index} failed: {reason}")

        retry_or_fail(self, exc, runtime.settings().segment_retries, fail)
    seconds = round(time.perf_counter() - started, 4)      # the analysis alone: the autoscaler learns its cost
    try:
        draw_ahead_if_empty(job, index, list(segment.pts), result.frames, result.damage)
    except Exception:      # only a head start: the drawing task draws it after the stitch (and says why it fails)
        log.warning("job %s segment %d: drawing the empty segment ahead failed", job_id, index, exc_info=True)
    records.set_segment(job_id, index, status="done", seconds=seconds, error=None)
    if result.pictures is not None and any(result.frames):
        try:
            labels = _labels_known_ahead(job, index)
            if labels is not None:
                draw_ahead_labelled(job, index, list(segment.pts), labels, result.pictures)
        except Exception:      # only a head start, as above
            log.warning("job %s segment %d: drawing ahead failed", job_id, index, exc_info=True)
    return {"index": index, "frames": len(result.frames), "seconds": seconds}


# A busy segment's decoded frames are kept for its drawing ahead up to this size (a 720p frame
# is 1.4 MB, a 1080p one 3.1 MB: a short recording's segments of 1-2 s fit; a long recording's
# segments of 20 s do not, and are decoded again when drawn, as before).
PICTURES_KEPT_BYTES = 192 << 20
# Working out a segment's labels ahead reads every analysis before it: only for short recordings.
DRAW_AHEAD_MAX_SEGMENTS = 32


def _pictures_to_keep(job, segment: SegmentJob) -> int:
    """How many bytes of decoded frames the analysis keeps for drawing the segment ahead: none
    where it would not be drawn ahead from them (a long recording, one whose GOPs are not
    copied: copying off, or a stream that cannot be copied, as ``draw_ahead_labelled`` finds;
    one too large a segment: better not kept at all than kept and then dropped)."""
    source, config = SourceMedia.of(job), render_config(job.options)
    if not (config.stream_copy and source.timed and source.intact) or job.chunks_total > DRAW_AHEAD_MAX_SEGMENTS:
        return 0
    if len(segment.pts) * decoded_frame_bytes(source.width, source.height) > PICTURES_KEPT_BYTES:
        return 0
    # Last, as it opens the file (its header only): HEVC, VP9, a rotated or 4:2:2 upload.
    if not remux.stream_copyable(runtime.store().local_path(segment_key(job.id, segment.index)),
                                 source.width, source.height):
        return 0
    return PICTURES_KEPT_BYTES


def decoded_frame_bytes(width: int, height: int) -> int:
    """At most the bytes one decoded 4:2:0 frame holds, as the analysis counts them (its planes'
    ``buffer_size``, the decoder's padding in): FFmpeg widens a row until the chroma planes'
    rows are aligned (64 bytes), which can take the luma row to the next multiple of 128
    (320 wide: 384 a row, 1.2 times w*h*1.5; tests/test_draw_ahead.py)."""
    row = -(-width // 128) * 128
    return row * height + 2 * (row // 2) * -(-height // 2)


def _labels_known_ahead(job, index: int) -> list[list[list]] | None:
    """Segment ``index``'s labels as the stitch will draw them, if its worker can tell now:
    every segment before it is analysed (track numbers follow the order in which tracks first
    appear, so they depend on the segments before and this one only) and some segment after it
    is not (else the stitch is about to run, and waits for this task: drawing after it, as
    before, keeps the results as early). A track that crosses into a segment after it may still
    change its vote or name there: then the key differs, and it is drawn again after the stitch.
    None where it cannot tell."""
    records, store = runtime.records(), runtime.store()
    segments = records.segments(job.id)
    if len(segments) > DRAW_AHEAD_MAX_SEGMENTS or _unfinished(segments[:index + 1]) or not _unfinished(segments):
        return None
    outputs = []
    for s in segments[:index + 1]:
        data = json.loads(store.local_path(analysis_key(job.id, s.index)).read_text())
        outputs.append(SegmentOutput(s.pts, data["frames"], data["tracks"], data["thumbnails"], data.get("damage")))
    matching = job_matching(job.options)
    source = SourceMedia.of(job)
    results = assemble_results({}, source.time_base, source.start_pts, outputs, {}, matching.gallery,
                               result_options(matching.watchlist))
    segment = segments[index]
    return segment_labels(results, segment.start_frame, segment.frames, render_config(job.options).fever_c)


def _unfinished(segments) -> list[int]:
    return [s.index for s in segments if s.status != "done"]


def _wait_for_segments(job_id: str, unfinished: list[int], wait_s: float) -> dict:
    """A redelivered segment (its worker or the broker connection died) can be counted twice
    by the chord and call the stitch early; the chord will not call it again, so the stitch
    looks again itself, less often the longer it waits (2 s, doubling, at most every minute).
    How long is not its call: a segment may rightly wait behind a long queue, or for its
    redelivery after a worker died. The watchdog bounds it: a job whose records stop changing
    for ``VIDFARM_STALL_AFTER_S`` is failed with a reason, and then this stops."""
    stitch.apply_async((job_id,), {"wait_s": min(2 * wait_s, MAX_STITCH_WAIT_S)}, countdown=wait_s)
    return {"waiting": unfinished}


MAX_STITCH_WAIT_S = 60.0


@app.task(name="vidfarm.stitch", bind=True, max_retries=2, ignore_result=True)
def stitch(self, job_id: str, wait_s: float = 2.0) -> dict:
    """Join the segments' tracks and publish the results; the job is done then, and its
    video is drawn from those results (``tasks.render``). ``wait_s``: how long to wait before
    looking again if some segments are unfinished."""
    with Lease(job_lease("stitch", job_id), self.request.hostname or "local"):
        return _stitch(self, job_id, wait_s)


def _stitch(self, job_id: str, wait_s: float) -> dict:
    records, store = runtime.records(), runtime.store()
    taken = records.start_stitch(job_id)
    if taken is None:
        return {"skipped": True}
    job, segments = taken
    unfinished = _unfinished(segments)
    if unfinished:
        return _wait_for_segments(job_id, unfinished, wait_s)
    started = time.perf_counter()
    info = job.media
    source = SourceMedia.of(job)
    try:
        per_segment = [json.loads(store.local_path(analysis_key(job_id, s.index)).read_text()) for s in segments]
        outputs = [SegmentOutput(s.pts, p["frames"], p["tracks"], p["thumbnails"], p.get("damage"))
                   for s, p in zip(segments, per_segment)]
        matching = job_matching(job.options)
        results = assemble_results(source_summary(job.source_name, info), source.time_base, source.start_pts,
                                   outputs, _timing(job, per_segment, 0.0), matching.gallery,
                                   result_options(matching.watchlist))
        # The stitch's time is reading the analyses and joining their tracks (timing it before the
        # join counted only the reading); publishing follows.
        stitch_s = round(time.perf_counter() - started, 4)
        results["timing"] = _timing(job, per_segment, stitch_s)
        Results.model_validate(results)   # contract 3, before anyone can read them
        # The job is done in the same commit that publishes its results, unless it ended
        # meanwhile (the watchdog failed it): then nothing is published.
        # A damaged recording is done all the same, with a warning on the job.
        warned = {**info, "warning": damage_warning(results)}
        publication = published.prepare(job, results, _face_crops(job_id, segments))
        # Read now, so deleted before the job is seen done (a retried stitch decodes them again).
        store.delete_prefix(face_crops_key(job_id))
        published_version = publish_results(job, results, matching.fingerprint, publication=publication,
                                            status="done", error=None, media=warned, timing={"stitch_s": stitch_s})
        if published_version is None:
            return {"skipped": "the job ended while it was stitched"}
        forget_requeues(job_id)     # a re-analysis has a chord of its own again
    except Exception as exc:
        retry_or_fail(self, exc, self.max_retries, lambda reason: fail_job(job_id, f"stitch failed: {reason}"))
    return {"frames": len(results["frames"])}


def _timing(job, per_segment: list[dict], stitch_s: float) -> dict:
    stages: dict[str, float] = {"split": 0.0 if "run_started" in job.timing else job.timing.get("split_s", 0.0),
                                "stitch": stitch_s}
    for data in per_segment:
        for name, seconds in data["stages"].items():
            stages[name] = round(stages.get(name, 0.0) + seconds, 4)
    wall = time.time() - job.run_started_at     # a re-analysis from when it started
    return {"wall_s": round(wall, 3), "stages": stages}


EARLIER_RUN = "job %s: the errback of an earlier run of it (%s) leaves its re-analysis alone"


@app.task(name="vidfarm.job_failed")
def job_failed(request, exc, traceback, job_id: str, run: float | None = None) -> None:
    """Errback of the chord: marks the job failed if a segment error did not already. The
    records decide first: a segment that did its work but whose result Celery could not store
    (Redis gone for a moment) fails the chord, yet nothing is lost, so the stitch still runs.
    ``run``: the run of the job the chord was for (``Job.run``; None from an earlier release).
    A failed segment fails its job at once, but the errback comes only once every other segment
    of its chord has run: a re-analysis begun meanwhile is another run, which it leaves alone."""
    job = runtime.records().get_job(job_id)
    if job is not None and run is not None and job.run != run:
        log.info(EARLIER_RUN, job_id, exc)
        return
    segments = runtime.records().segments(job_id)
    if segments and not _unfinished(segments):
        stitch.apply_async((job_id,))
        return
    # The run compared again under the job's row lock: a re-analysis may have begun since the look above.
    if not fail_job(job_id, f"processing failed: {exc}", run):
        log.info(EARLIER_RUN, job_id, exc)
