"""Results are published with the fingerprint of the gallery they were matched against, even
when someone enrols or flags a person while the stitch or a re-identification is running: the
gallery, the watchlist and the fingerprint come from one read."""

from __future__ import annotations

import numpy as np

from services import runtime
from services.submit import delete_job, submit_file
from tasks import jobs, reanalysis
from tasks.jobs import stitch
from tasks.reanalysis import reidentify_job
from tests.conftest import wait_for_job
from tests.test_reanalysis import results


def test_an_enrolment_during_stitch_or_reidentify_leaves_the_job_stale(farm, face_clip, monkeypatch):
    records = runtime.records()
    job_id = submit_file(runtime.farm(), face_clip.path, name="faces.mp4")
    try:
        assert wait_for_job(job_id)["status"] == "done"
        track = results(job_id)["tracks"][0]
        matched = records.gallery_fingerprint()

        # Stitch the job again in this process; as it assembles the results, someone enrols a
        # person who is exactly this track's face.
        def enrol_meanwhile(*args, **kwargs):
            records.add_embeddings("racer", [np.asarray(track["embedding"], np.float32).tobytes()],
                                   ["race.jpg"], [None])
            return assemble(*args, **kwargs)
        assemble = jobs.assemble_results
        monkeypatch.setattr(jobs, "assemble_results", enrol_meanwhile)
        records.set_job(job_id, status="processing")
        stitch.apply(args=(job_id,)).get()
        monkeypatch.undo()
        stitched = results(job_id)
        assert stitched["version"] == 2 and {t["identity"] for t in stitched["tracks"]} == {None}
        # The results were matched without "racer", and the fingerprint says so: the beat's
        # re-identification still sees the job as matched against an older gallery.
        assert records.get_job(job_id).gallery_fingerprint == matched != records.gallery_fingerprint()
        assert job_id in records.jobs_matched_against_another_gallery(records.gallery_fingerprint())

        # Re-identify; "racer" goes on the watchlist once the gallery was read.
        def flag_meanwhile(*args, **kwargs):
            read = matching(*args, **kwargs)
            records.change_identity("racer", watchlist=True)
            return read
        matched = records.gallery_fingerprint()
        matching = reanalysis.job_matching
        monkeypatch.setattr(reanalysis, "job_matching", flag_meanwhile)
        reidentify_job.apply(args=(job_id,)).get()
        monkeypatch.undo()
        rematched = results(job_id)
        assert rematched["version"] == 3 and rematched["tracks"][0]["identity"] == "racer"
        assert not [a for a in rematched["alerts"] if a["kind"] == "watchlist"]   # not flagged when read
        assert records.get_job(job_id).gallery_fingerprint == matched != records.gallery_fingerprint()

        # Undisturbed, a re-identification catches up and the job is no longer stale.
        reidentify_job.apply(args=(job_id,)).get()
        latest = results(job_id)
        watched = {t["track"] for t in latest["tracks"] if t["identity"] == "racer"}
        assert track["track"] in watched
        assert {a["track"] for a in latest["alerts"] if a["kind"] == "watchlist"} == watched
        assert job_id not in records.jobs_matched_against_another_gallery(records.gallery_fingerprint())
    finally:
        records.delete_identity("racer")
        records.set_job(job_id, status="done")
        delete_job(runtime.farm(), job_id)
