"""A person across recordings: their photos one at a time, and enrolling a face a recording
showed (an unknown track) as a new person or as one more photo of someone enrolled."""

from __future__ import annotations

import io
import json
import math
import struct
import uuid

from core.appearances import Appearances
from core.errors import GalleryError, TrackEnrolled
from core.storage import version_key
from services.farm import Farm, queue_follow_up
from services.gallery import check_name


def photos(farm: Farm, name: str) -> list[dict]:
    return farm.records.identity_photos(name)


def remove_photo(farm: Farm, name: str, photo_id: int) -> bool:
    """Remove one photo (its embedding and face crop); the last one stays (GalleryError)."""
    try:
        crop = farm.records.delete_photo(name, photo_id)
    except ValueError as exc:
        raise GalleryError(str(exc)) from None
    if crop:
        farm.store.delete_prefix(crop)
    return crop is not None


def enrol_track(farm: Farm, job_id: str, track: int, name: str) -> dict:
    """Enrol the face of one track of a finished job under ``name`` (new, or one more photo
    of that person): the track's pooled embedding (what re-identification matches) and its
    face crop. Then the job is re-identified, so its results name the track. A track enrolled
    already, its re-identification still running, is refused: ``TrackEnrolled``."""
    name = check_name(name)
    records, store = farm.records, farm.store
    job = records.get_job(job_id)
    if job is None or job.status != "done":
        raise GalleryError(f"job {job_id} has no results to enrol from")
    results = json.loads(store.local_path(version_key(job_id, job.results_version)).read_text())
    found = next((t for t in results.get("tracks") or [] if t["track"] == track), None)
    if found is None:
        raise GalleryError(f"job {job_id} has no track #{track}")
    if not found.get("embedding"):
        raise GalleryError(f"track #{track} kept no face to enrol: {_why_no_face(farm, job, found)}")
    if found.get("identity"):
        raise GalleryError(f"track #{track} is already recognised as {found['identity']}")
    crop_key = None
    jpeg = Appearances(records).thumbnail(job_id, track)
    if jpeg:
        crop_key = f"gallery/{uuid.uuid4().hex}.jpg"
        store.put_stream(crop_key, io.BytesIO(jpeg))
    try:
        count = records.add_track_embedding(job_id, track, name, _unit_float32(found["embedding"]),
                                            f"{job.source_name} #{track}"[:255], crop_key)
    except TrackEnrolled:
        if crop_key:
            store.delete_prefix(crop_key)
        raise
    queue_follow_up(farm, "vidfarm.reidentify", job_id)
    return {"name": name, "embeddings": count, "crop": crop_key}


def _why_no_face(farm: Farm, job, track: dict) -> str:
    """Why a track of a finished job has no kept embedding: its person was erased (the erasure
    forgets it, so that no later gallery names them again), the job ran without the
    recogniser, or no face of the track was clear enough to embed."""
    if track.get("erased"):
        return "its person was erased from the gallery, and their face with them"
    if "recognize" not in (job.options.get("analyzers") or farm.settings.analyzers):
        return "the job ran without the recogniser (analyse it again with recognize to enrol from it)"
    return "none of its faces was clear enough to recognise"


def _unit_float32(vector: list[float]) -> bytes:
    """The embedding scaled to length 1, as float32 bytes (as the gallery stores them)."""
    single = struct.unpack(f"<{len(vector)}f", struct.pack(f"<{len(vector)}f", *vector))
    norm = math.sqrt(math.fsum(x * x for x in single)) or 1.0
    return struct.pack(f"<{len(single)}f", *(x / norm for x in single))
