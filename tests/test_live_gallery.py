"""A camera watched for a long time follows the shared gallery: a person enrolled while it
runs is named from the next segments on, and one erased is no longer named (their embeddings
leave the ingester's memory), without restarting the camera.

On the session farm, whose gallery holds other tests' people: the camera shows a face no other
test enrols (Kit Harington, from the shared media), enrolled from another photo of him under a
name only this test uses, and every assertion is about that name."""

from __future__ import annotations

import time

import pytest

from tests.clipmaker import make_clip
from tests.conftest import wait_for_job
from tests.rtsp_camera import RtspCamera, gstreamer_missing, open_recordings, running_ingest
from tests.waiting import wait_until

WAIT_S = 90
NAME = "Live Follow Kit"


def segments(registry, camera_id: str) -> list[dict]:
    return registry.recent(camera_id, "segment", 50)


def recorded(camera_id: str) -> list[str]:
    from core.models import Job
    from services import runtime

    with runtime.records().session() as s:
        return [job.id for job in s.query(Job).filter(Job.camera_id == camera_id)]


def named(event: dict) -> set[str]:
    return {track["identity"] for track in event["tracks"] if track["identity"]}


def test_a_live_camera_names_people_enrolled_and_forgets_people_erased_while_it_runs(farm, media_dir, tmp_path):
    reason = gstreamer_missing()
    if reason:
        pytest.skip(reason)
    from core.cameras import CameraRegistry
    from services import gallery, runtime

    photos = media_dir / "recognition" / "face_recognition"
    registry = CameraRegistry.from_url(farm.redis_url)
    clip = make_clip(tmp_path / "door.mp4", seconds=90, fps=15, gop=15, size=(640, 360), face_windows=[(0, 90)],
                     audio=False, photo=photos / "kit_harington_1.jpeg")
    gallery.delete_identity(runtime.farm(), NAME)          # a run cut short earlier may have left him
    with RtspCamera(clip.path) as camera, running_ingest(registry):
        camera_id = registry.add("Door camera", camera.url)["id"]
        try:
            first = wait_until(lambda: [e for e in segments(registry, camera_id) if e["faces"]], WAIT_S,
                               "a segment with a face")
            assert NAME not in named(first[0])                  # not enrolled yet

            gallery.enroll(runtime.farm(), NAME, [("kit.jpg", (photos / "kit_harington_2.jpeg").read_bytes())], largest_face=True)
            wait_until(lambda: any(NAME in named(e) for e in segments(registry, camera_id)), WAIT_S,
                       "a segment naming the person enrolled while the camera runs")

            gallery.delete_identity(runtime.farm(), NAME)
            erased_at = time.time()
            later = wait_until(lambda: [e for e in segments(registry, camera_id)
                                        if e["captured_at"] > erased_at + 5 and e["faces"]], WAIT_S,
                               "segments captured after the erasure")
            assert all(NAME not in named(e) for e in later), [named(e) for e in later]
        finally:
            registry.delete(camera_id)
            gallery.delete_identity(runtime.farm(), NAME)
    # The camera's recording is handed over as its watch stops: let it become a job here, not
    # in the middle of a later test that counts jobs or files.
    wait_until(lambda: not open_recordings(camera_id), WAIT_S, "the recording to be made a job")
    for job_id in recorded(camera_id):
        assert wait_for_job(job_id)["status"] in ("done", "failed"), job_id
