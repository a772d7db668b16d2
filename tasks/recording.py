"""Camera recordings: each camera's analysed stream kept as jobs, one per hour.

The ingester keeps every analysed segment of a camera (its file and its analysis, as the live
path made them) under ``recordings/<recording id>/`` while the hour is open
(``CameraRecorder``). When the hour ends (UTC multiples of ``VIDFARM_RECORDING_HOUR_S``), or
the camera's watch stops, it hands the recording to ``vidfarm.record_hour`` (ingest queue),
which makes it a job like an upload's: the segments joined by remux into the job's source
(``workers.live.recording``), one job segment per live segment with the live analysis as its
analysis, then the ordinary stitch. Nothing is analysed twice: the stitch, the annotated video,
people search, re-identification and scheduled re-analysis take it from there as for any
upload (a re-analysis re-runs its segments from its own files). The job records the camera and
when its first frame was captured; ``vidfarm.expire_recordings`` (beat) deletes recordings
older than ``VIDFARM_RECORDING_RETENTION_DAYS``, and the live alerts (``core.alerts.raise_live``)
raised before then, each that rang with its repeats (``Alerts.expire_live``).

A recording the ingester could not hand over (it was killed) is adopted by the sweep: one
with no new segment for ``ORPHAN_AFTER_S`` is made a job as it is. An ingester whose open
recording was adopted meanwhile (its camera was away that long) starts a new one.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from core.alerts import Alerts
from core.storage import job_key
from services import runtime
from tasks.app import app
from core.storage import analysis_key, segment_key
from tasks.common import media_limits, put_json, scratch_dir
from tasks.jobs import _DECIDED_AT_STITCH, stitch
from tasks.live import ABANDONED_AFTER_S, live_key, piece_key
from services.submit import JobBusy, delete_job
from workers import media
from workers.live.recording import RecordedSegment, join_recording
from workers.live.segmenter import LiveSegment


log = logging.getLogger(__name__)

ORPHAN_AFTER_S = 600.0


def recording_key(recording_id: str, *parts: str) -> str:
    return "/".join(("recordings", recording_id, *parts))


class CameraRecorder:
    """The ingester's side, for one camera's watch: keeps its analysed segments by the hour.

    A recording is ``recording.json`` (camera, hour), then per segment its file, its analysis
    and its ``meta`` (times), the meta written last: a segment without one was not kept whole."""

    def __init__(self, camera: dict, hour_s: float):
        self.camera, self.hour_s = camera, hour_s
        self.open: dict | None = None

    def add(self, watch_id: str, segment: LiveSegment) -> None:
        """One analysed segment, in order, while its files are still in the store."""
        store = runtime.store()
        hour = math.floor(segment.captured_at / self.hour_s) * self.hour_s
        if self.open is not None and (self.open["hour"], self.open["watch"], self.open["size"]) != (
                hour, watch_id, [segment.width, segment.height]):
            self.close()      # a new hour, a new watch timeline, or a camera that changed size
        if self.open is not None and not store.exists(recording_key(self.open["id"], "recording.json")):
            self.open = None  # adopted by the sweep while the camera was away: start another
        if self.open is None:
            self.open = {"id": uuid.uuid4().hex, "hour": hour, "watch": watch_id,
                         "size": [segment.width, segment.height], "segments": 0}
            put_json(recording_key(self.open["id"], "recording.json"),
                     {"camera_id": self.camera["id"], "camera_name": self.camera["name"], "hour": hour,
                      "opened_at": time.time()})
        number, recording_id = f"{self.open['segments']:06d}", self.open["id"]
        store.put_file(recording_key(recording_id, "segments", f"{number}.nut"),
                       store.local_path(piece_key(watch_id, segment.index, "segment")))
        analysis = piece_key(watch_id, segment.index, "analysis")
        if store.exists(analysis):
            store.put_file(recording_key(recording_id, "analysis", f"{number}.json"), store.local_path(analysis))
        else:     # its analysis failed: its frames are kept, unanalysed, as the live results say
            put_json(recording_key(recording_id, "analysis", f"{number}.json"),
                     {"frames": [[] for _ in segment.pts], "tracks": [], "thumbnails": None, "damage": None,
                      "stages": {}})
        put_json(recording_key(recording_id, "meta", f"{number}.json"),
                 {"pts": segment.pts, "end_pts": segment.end_pts, "captured_at": segment.captured_at})
        self.open["segments"] += 1

    def close(self) -> None:
        """Hand the open recording over to be made a job."""
        recording, self.open = self.open, None
        if recording is not None and recording["segments"]:
            app.send_task("vidfarm.record_hour", (recording["id"],), queue="ingest")


@app.task(name="vidfarm.record_hour", ignore_result=True)
def record_hour(recording_id: str) -> dict:
    """Make a recording a job (idempotent: a redelivery finds the recording gone or made)."""
    records, store = runtime.records(), runtime.store()
    about_key = recording_key(recording_id, "recording.json")
    job_id = recording_id       # one job per recording, whoever gets there
    if not store.exists(about_key):
        return {"skipped": True}
    if records.get_job(job_id) is not None:      # made by an earlier delivery, which died before cleaning up
        store.delete_prefix(recording_key(recording_id))
        stitch.apply_async((job_id,))     # in case it died before queueing it (a stitch done already skips)
        return {"skipped": True}
    started = time.perf_counter()
    about = json.loads(store.local_path(about_key).read_text())
    camera_id, camera_name = about["camera_id"], about["camera_name"]
    numbers = [Path(key).stem for key in store.list_keys(recording_key(recording_id, "meta"))]
    metas = [json.loads(store.local_path(recording_key(recording_id, "meta", f"{n}.json")).read_text())
             for n in numbers]
    if not metas:
        store.delete_prefix(recording_key(recording_id))
        return {"skipped": "no segment was kept whole"}
    with scratch_dir() as scratch:
        source = Path(scratch) / "source.nut"
        pieces = [RecordedSegment(store.local_path(recording_key(recording_id, "segments", f"{n}.nut")), meta["pts"])
                  for n, meta in zip(numbers, metas)]
        shift, files = join_recording(pieces, source, Path(scratch) / "segments")
        info = media.probe(source, media_limits())
        store.move_file(job_key(job_id, "source"), source)
        for k, path in enumerate(files):
            store.move_file(segment_key(job_id, k), path)
    for k, n in enumerate(numbers):
        analysis = json.loads(store.local_path(recording_key(recording_id, "analysis", f"{n}.json")).read_text())
        for entry in [face for faces in analysis["frames"] for face in faces] + analysis["tracks"]:
            entry.update(dict.fromkeys(_DECIDED_AT_STITCH))     # as a batch segment leaves them: the stitch decides
        put_json(analysis_key(job_id, k), analysis)
    first = metas[0]["captured_at"]
    name = f"{camera_name} {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(first))} UTC"
    segments, start = [], 0
    for k, meta in enumerate(metas):
        pts = [p - shift for p in meta["pts"]]
        segments.append({"index": k, "start_frame": start, "frames": len(pts), "pts": pts,
                         "end_pts": meta["end_pts"] - shift, "status": "done"})
        start += len(pts)
    # One transaction: a job seen (by a reader, or by a redelivery of this task) is a whole one.
    records.add_split_job(job_id, name, job_key(job_id, "source"), segments, status="processing",
                          media=info.summary(), camera_id=camera_id,
                          recorded_at=datetime.fromtimestamp(first, timezone.utc),
                          timing={"split_s": round(time.perf_counter() - started, 4)})
    store.delete_prefix(recording_key(recording_id))
    stitch.apply_async((job_id,))
    return {"job": job_id, "segments": len(segments), "frames": start}


@app.task(name="vidfarm.expire_recordings")
def expire_recordings(retention_days: float | None = None, orphan_after_s: float = ORPHAN_AFTER_S,
                      abandoned_after_s: float = ABANDONED_AFTER_S) -> dict:
    """Delete camera recordings captured more than the retention ago (a recording still being
    made a job is left for the next sweep), and make jobs of recordings nobody handed over."""
    adopted = adopt_orphans(orphan_after_s)
    abandoned = sweep_abandoned_watches(abandoned_after_s)
    days = runtime.settings().recording_retention_days if retention_days is None else retention_days
    cutoff = datetime.now(timezone.utc) - timedelta(days=days)
    live_alerts = Alerts(runtime.records()).expire_live(cutoff)     # kept as long as the recordings
    deleted, busy = [], []
    for job_id in runtime.records().recordings_before(cutoff):
        try:
            if delete_job(runtime.farm(), job_id):
                deleted.append(job_id)
        except JobBusy:
            busy.append(job_id)
    return {"deleted": deleted, "busy": busy, "adopted": adopted, "live_alerts": live_alerts,
            "abandoned_watches": abandoned}


def sweep_abandoned_watches(after_s: float) -> list[str]:
    """Delete the ``live/<watch>/`` folders whose watch has not said it is alive for ``after_s``
    (``tasks.live.alive_key``): its ingester or ``vidfarm watch`` was killed outright, so its
    own sweep at the end never ran, and its last segments (pictures of people), their analyses
    and live view would stay for good. (Its recording is adopted above, from its own copies.)"""
    store, cutoff, swept = runtime.store(), time.time() - after_s, []
    for key in store.list_keys("live"):
        parts = key.split("/")                     # live/<watch>/alive.json
        if parts[2:] != ["alive.json"]:
            continue
        try:
            said_at = float(json.loads(store.local_path(key).read_text())["at"])
        except FileNotFoundError:   # its watch ended (and swept its folder) since the listing
            continue
        except (ValueError, KeyError, TypeError) as error:     # not ours to judge: the rest are swept
            log.warning("%s unreadable (%s): its folder is left", key, error)
            continue
        if said_at <= cutoff:
            store.delete_prefix(live_key(parts[1]))
            swept.append(parts[1])
    return swept


def adopt_orphans(after_s: float) -> list[str]:
    """Recordings with no new segment for ``after_s`` (their ingester died, or their camera is
    away): each is made a job as it is."""
    store, opened, newest = runtime.store(), {}, {}
    for key in store.list_keys("recordings"):
        parts = key.split("/")                     # recordings/<id>/recording.json, .../meta/<n>.json
        if parts[2:] == ["recording.json"]:
            opened[parts[1]] = key
        elif len(parts) == 4 and parts[2] == "meta":
            newest[parts[1]] = max(newest.get(parts[1], key), key)     # numbered: the last is the newest
    cutoff = time.time() - after_s

    def last_heard(recording_id: str) -> float:    # its newest segment's capture, or when it was opened
        key = newest.get(recording_id) or opened[recording_id]
        data = json.loads(store.local_path(key).read_text())
        return data.get("captured_at", data.get("opened_at", 0.0))

    orphans = [recording_id for recording_id in opened if last_heard(recording_id) <= cutoff]
    for recording_id in orphans:
        record_hour.apply_async((recording_id,))
    return orphans
