"""What follows each publication of a job's results (``tasks.jobs.publish_results``): the
appearances index (people search) and the alerts, with their webhook deliveries queued.

It runs in the publisher's process right after the commit, so whoever publishes (the stitch,
a re-identification, an erasure) updates both. Each write is refused when a later version was
published meanwhile (that publisher writes its own), so the index never goes back to an
older version.

Which tracks are indexed: those the results name, and the unknown ones whose face was kept
(a pooled embedding): the people who could be searched for or enrolled. A track an erasure
stripped of its name and embedding is not, so no face crop of an erased person stays here.
"""

from __future__ import annotations

import logging
from fractions import Fraction

from core.alerts import Alerts
from core.appearances import Appearances, TrackAppearance
from tasks import runtime
from workers import thumbnails
from workers.analytics import thermal

log = logging.getLogger(__name__)


def results_published(job, version: int, results: dict) -> None:
    index_appearances(job, version, results)
    deliveries = record_alerts(job, version, results)
    if deliveries:
        from tasks.alerts import deliver_alert   # the task module builds on this one

        for delivery_id in deliveries:
            deliver_alert.apply_async((delivery_id,))


def _shared_gallery(job) -> bool:
    """Whether the job's names are the shared gallery's (not a gallery of its own)."""
    return job.options.get("gallery") is None


def indexed_tracks(results: dict) -> list[dict]:
    return [t for t in results.get("tracks") or [] if t.get("identity") or t.get("embedding")]


def index_appearances(job, version: int, results: dict) -> bool:
    frames = results.get("frames") or []

    def at(index: int) -> float:
        return frames[index]["t"] if 0 <= index < len(frames) else 0.0

    index = Appearances(runtime.records())
    kept = index.thumbnails(job.id)
    best = thumbnails.best_faces(results)
    tracks = indexed_tracks(results)
    wanted = {t["track"]: best[t["track"]] for t in tracks if t["track"] in best
              and kept.get(t["track"], (None, None))[0] != best[t["track"]][0]}
    crops = _face_crops(job, wanted) if wanted else {}
    rows = []
    for track in tracks:
        number = track["track"]
        frame, jpeg = (best[number][0], crops[number]) if number in crops else kept.get(number, (None, None))
        rows.append(TrackAppearance(number, track.get("identity"), track["first_frame"], track["last_frame"],
                                    at(track["first_frame"]), at(track["last_frame"]), frame, jpeg))
    return index.replace(job.id, version, rows, _shared_gallery(job))


def _face_crops(job, wanted: dict) -> dict[int, bytes]:
    from tasks.jobs import segment_key   # here: tasks.jobs calls this module

    info, store, settings = job.media or {}, runtime.store(), runtime.settings()
    if "time_base" not in info:
        return {}
    segments = [thumbnails.SegmentFile(store.local_path(key), s.start_frame, s.pts)
                for s in runtime.records().segments(job.id) if store.exists(key := segment_key(job.id, s.index))]
    calibration = job.options.get("thermal") or {"gain": settings.thermal_gain, "offset": settings.thermal_offset}
    return thumbnails.face_crops(wanted, segments, Fraction(*info["time_base"]), info.get("pts_offset", 0),
                                 thermal.Calibration(calibration["gain"], calibration["offset"]))


def record_alerts(job, version: int, results: dict) -> list[int]:
    names = {t["track"]: t.get("identity") for t in results.get("tracks") or []}
    return Alerts(runtime.records()).raise_new(job.id, version, results.get("alerts") or [], names,
                                               runtime.settings().alert_webhook_urls, _shared_gallery(job))
