"""What goes with each publication of a job's results (``tasks.jobs.publish_results``): the
appearances index (people search) and the alerts, whose webhook deliveries are queued once
the publication is committed.

``prepare`` runs before the version is claimed (it may decode face crops: that takes a
while, and the claim holds the job's row lock); ``Publication.record`` writes the index and
the alerts in the very transaction that publishes the version, so a job is never seen done,
or at a new version, with the index or alerts of another. Whoever publishes (the stitch, a
re-identification, an erasure) goes through there.

Which tracks are indexed: those the results name, and the unknown ones whose face was kept
(a pooled embedding): the people who could be searched for or enrolled. A track an erasure
stripped of its name and embedding is not, so no face crop of an erased person stays here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from core.alerts import raise_new
from core.appearances import Appearances, TrackAppearance, replace_rows
from core.segment_job import SourceMedia
from core.storage import segment_key
from services import runtime
from workers import thumbnails
from workers.analytics import thermal


@dataclass
class Publication:
    job_id: str
    shared_gallery: bool              # the job's names are the shared gallery's (not its own gallery's)
    tracks: list[TrackAppearance]
    alerts: list[dict]
    names: dict[int, str | None]      # track -> name
    urls: tuple[str, ...]
    repeat_s: float                   # alert_repeat_s: repeats of an alert that rang get no delivery
    deliveries: list[int] = field(default_factory=list)

    def record(self, s: Session, version: int) -> None:
        """Inside the publishing transaction (``Records.publish_version``'s ``also``)."""
        replace_rows(s, self.job_id, version, self.tracks, self.shared_gallery)
        self.deliveries = raise_new(s, self.job_id, version, self.alerts, self.names, self.urls,
                                    self.shared_gallery, self.repeat_s)

    def send(self) -> None:
        """After the commit: queue the webhook deliveries of the alerts it raised."""
        if self.deliveries:
            from tasks.alerts import queue_deliveries   # here: the task module needs the Celery app

            queue_deliveries(self.deliveries)


def indexed_tracks(results: dict) -> list[dict]:
    return [t for t in results.get("tracks") or [] if t.get("identity") or t.get("embedding")]


def prepare(job, results: dict, face_crops: dict[tuple[int, tuple], bytes] | None = None) -> Publication:
    """``face_crops``: crops cut already (by the segment tasks, while they decoded the frames),
    by (frame, box); the wanted faces not there are decoded from the segment files."""
    frames = results.get("frames") or []

    def at(index: int) -> float:
        return frames[index]["t"] if 0 <= index < len(frames) else 0.0

    kept = Appearances(runtime.records()).thumbnails(job.id)
    best = thumbnails.best_faces(results)
    tracks = indexed_tracks(results)
    # A re-identification keeps every track's best face: its crop is reused, nothing decoded.
    wanted = {t["track"]: best[t["track"]] for t in tracks if t["track"] in best
              and kept.get(t["track"], (None, None))[0] != best[t["track"]][0]}
    cut = face_crops or {}
    crops = {track: cut[index, tuple(box)] for track, (index, box) in wanted.items() if (index, tuple(box)) in cut}
    left = {track: face for track, face in wanted.items() if track not in crops}
    crops |= _face_crops(job, left) if left else {}
    rows = []
    for track in tracks:
        number = track["track"]
        frame, jpeg = (best[number][0], crops[number]) if number in crops else kept.get(number, (None, None))
        rows.append(TrackAppearance(number, track.get("identity"), track["first_frame"], track["last_frame"],
                                    at(track["first_frame"]), at(track["last_frame"]), frame, jpeg))
    # A camera recording's first version lists alerts that rang live: core.alerts.raise_new
    # gives those no delivery.
    settings = runtime.settings()
    return Publication(job.id, job.options.get("gallery") is None, rows, results.get("alerts") or [],
                       {t["track"]: t.get("identity") for t in results.get("tracks") or []},
                       settings.alert_webhook_urls, settings.alert_repeat_s)


def _face_crops(job, wanted: dict) -> dict[int, bytes]:

    store, settings = runtime.store(), runtime.settings()
    if "time_base" not in (job.media or {}):
        return {}
    source = SourceMedia.of(job)
    segments = [thumbnails.SegmentFile(store.local_path(key), s.start_frame, s.pts)
                for s in runtime.records().segments(job.id) if store.exists(key := segment_key(job.id, s.index))]
    calibration = job.options.get("thermal") or {"gain": settings.thermal_gain, "offset": settings.thermal_offset}
    return thumbnails.face_crops(wanted, segments, source.time_base, source.pts_offset,   # as the segment task reads them
                                 thermal.Calibration(calibration["gain"], calibration["offset"]), source.timed)
