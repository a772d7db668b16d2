"""The S3 blob store against a real S3 server (s3rver from npm, tests/s3server.py): the store's
contract beside the local store's, its read-through cache, clear errors for a wrong bucket or
endpoint, and whole jobs on a farm whose blobs live in the bucket (one with the server
restarted in the middle)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time

import pytest

from core.models import Job
from core.storage import BlobStoreAway, BlobStoreUnavailable, BlobTooLarge, LocalBlobStore, job_key, output_key
from tests import s3server
from tests.clipmaker import count_video_frames, make_clip
from tests.conftest import child_env, private_farm, repo_root, wait_for_job

pytestmark = pytest.mark.skipif(s3server.missing() is not None, reason=str(s3server.missing()))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with s3server.S3Server(tmp_path_factory.mktemp("s3rver")) as running:
        yield running


def s3_store(server, cache_dir, **options):
    from core.s3_storage import S3BlobStore

    return S3BlobStore(server.bucket, cache_dir, endpoint=server.endpoint, access_key_id=s3server.ACCESS_KEY,
                       secret_access_key=s3server.SECRET_KEY, **options)


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    server = request.getfixturevalue("server")
    return s3_store(server, tmp_path / "cache", multipart_bytes=5 * 1024**2)


def test_both_stores_keep_the_same_contract(store, tmp_path):
    job = f"contract-{time.time_ns()}"      # the bucket outlives one test
    src = tmp_path / "source.bin"
    data = bytes(range(256)) * 48 * 1024     # 12 MiB: the S3 store sends it in 3 parts
    src.write_bytes(data)
    store.put_file(job_key(job, "source"), src)
    store.put_stream(job_key(job, "output", "r.json"), io.BytesIO(b"{}"))
    assert store.local_path(job_key(job, "source")).read_bytes() == data
    assert store.size(job_key(job, "source")) == len(data)
    assert b"".join(store.read_range(job_key(job, "source"), 1000, 70_000)) == data[1000:70_000]
    assert store.list_keys(job_key(job)) == [job_key(job, "output", "r.json"), job_key(job, "source")]
    assert store.list_keys(job_key(job + "x")) == []          # a prefix is a folder, not a string start
    assert store.exists(job_key(job, "output", "r.json")) and not store.exists(job_key(job, "nothing"))

    store.put_stream(job_key(job, "output", "r.json"), io.BytesIO(b'{"again": 1}'))   # written again:
    assert store.local_path(job_key(job, "output", "r.json")).read_bytes() == b'{"again": 1}'  # never a stale copy

    with pytest.raises(BlobTooLarge):
        store.put_stream(job_key(job, "big"), io.BytesIO(b"x" * (3 << 20)), limit=2 << 20)
    assert not store.exists(job_key(job, "big"))

    moved = tmp_path / "scratch.nut"
    moved.write_bytes(b"segment")
    store.move_file(job_key(job, "segments", "00000.nut"), moved)
    assert not moved.exists() and store.local_path(job_key(job, "segments", "00000.nut")).read_bytes() == b"segment"

    store.delete_prefix(job_key(job, "output", "r.json"))      # one blob
    assert not store.exists(job_key(job, "output", "r.json")) and store.exists(job_key(job, "source"))
    store.delete_prefix(job_key(job))                          # a folder
    assert store.list_keys(job_key(job)) == []
    with pytest.raises(FileNotFoundError):
        store.local_path(job_key(job, "source"))
    with pytest.raises(FileNotFoundError):
        store.size(job_key(job, "source"))
    with pytest.raises(ValueError):
        store.put_stream("../escape", io.BytesIO(b"x"))


def test_the_read_cache_is_trimmed_to_its_size(server, tmp_path, monkeypatch):
    from core import s3_storage

    monkeypatch.setattr(s3_storage, "CACHE_GRACE_S", 0.0)     # no copy counts as in use
    store = s3_store(server, tmp_path / "cache", cache_bytes=250_000)
    job = f"cache-{time.time_ns()}"
    for i in range(5):
        store.put_stream(job_key(job, f"{i}.bin"), io.BytesIO(bytes([i]) * 100_000))
    for i in range(5):
        assert store.local_path(job_key(job, f"{i}.bin")).read_bytes() == bytes([i]) * 100_000
        time.sleep(0.01)       # distinct last-use times
    copies = sorted(p.parent.name for p in (tmp_path / "cache").rglob("@*"))
    assert copies == ["3.bin", "4.bin"]                # the least recently used went first
    assert store.local_path(job_key(job, "0.bin")).read_bytes() == bytes([0]) * 100_000   # fetched again


def _holding(cache_dir, needle: bytes) -> list[str]:
    """The files under a cache folder that hold these bytes."""
    return [str(p) for p in cache_dir.rglob("*") if p.is_file() and needle in p.read_bytes()]


def _wait_until_gone(cache_dir, needle: bytes, within_s: float) -> float:
    started = time.monotonic()
    while _holding(cache_dir, needle):
        assert time.monotonic() - started < within_s, f"still cached: {_holding(cache_dir, needle)}"
        time.sleep(0.1)
    return time.monotonic() - started


def test_another_pods_cache_drops_what_an_erasure_rewrote_or_a_delete_removed(server, tmp_path):
    """Two stores with their own cache folders are two pods. One pod erases a person (rewrites
    an analysis without her embedding, deletes her face crops) and deletes another job; the
    other pod, which had read all of it, keeps no copy past its sweep, touched by nobody."""
    from core.storage import analysis_key, face_crops_key

    eraser = s3_store(server, tmp_path / "pod-a")
    other = s3_store(server, tmp_path / "pod-b", sweep_s=1.0)
    job, deleted = f"erase-{time.time_ns()}", f"gone-{time.time_ns()}"
    embedding = bytes(range(200, 256)) * 8                     # her 512-byte vector, as stored
    named = json.dumps({"tracks": [{"name": "Alice Erasable", "embedding": embedding.hex()}]}).encode()
    kept = json.dumps({"tracks": [{"name": None}]}).encode()
    eraser.put_stream(analysis_key(job, 0), io.BytesIO(named))
    eraser.put_stream(face_crops_key(job, 0), io.BytesIO(named))
    eraser.put_stream(job_key(deleted, "source"), io.BytesIO(embedding))
    for key in (analysis_key(job, 0), face_crops_key(job, 0), job_key(deleted, "source")):
        other.local_path(key).read_bytes()                     # the other pod served them
    assert _holding(tmp_path / "pod-b", embedding.hex().encode()) and _holding(tmp_path / "pod-b", embedding)

    eraser.put_stream(analysis_key(job, 0), io.BytesIO(kept))  # the erasure, through pod A
    eraser.delete_prefix(face_crops_key(job))
    eraser.delete_prefix(job_key(deleted))
    took = _wait_until_gone(tmp_path / "pod-b", embedding.hex().encode(), within_s=5)
    _wait_until_gone(tmp_path / "pod-b", embedding, within_s=5)
    assert not _holding(tmp_path / "pod-b", b"Alice Erasable")
    assert other.local_path(analysis_key(job, 0)).read_bytes() == kept      # what is left is still served
    print(f"\nthe other pod's cache held no copy {took:.1f} s after the erasure (sweep every 1 s)")


def test_a_sweep_is_due_by_the_time_its_marker_says(server, tmp_path):
    """The time the last sweep wrote in ``.swept`` decides, not the file's mtime (before, the
    written time was never read): a cache folder copied or restored, its files' times all new,
    still sweeps when its last sweep was long ago."""
    writer = s3_store(server, tmp_path / "pod-a", sweep_s=0)
    reader = s3_store(server, tmp_path / "pod-b", sweep_s=600)
    key = job_key(f"swept-{time.time_ns()}", "source")
    writer.put_stream(key, io.BytesIO(b"secret"))
    reader.local_path(key)
    writer.delete_prefix(key)
    marker = tmp_path / "pod-b" / ".swept"
    marker.write_text(f"{time.time()}\n")            # swept just now: not due
    reader.sweep_if_due()
    assert _holding(tmp_path / "pod-b", b"secret")
    marker.write_text(f"{time.time() - 3600}\n")     # an hour ago, in a file written now: due
    reader.sweep_if_due()
    assert not _holding(tmp_path / "pod-b", b"secret")


def test_a_read_that_finds_its_key_gone_or_rewritten_drops_the_copies(server, tmp_path):
    """No sweep at all (sweep_s=0): the read itself drops what the bucket no longer holds."""
    eraser = s3_store(server, tmp_path / "pod-a", sweep_s=0)
    other = s3_store(server, tmp_path / "pod-b", sweep_s=0)
    job = f"read-{time.time_ns()}"
    eraser.put_stream(job_key(job, "a.json"), io.BytesIO(b"secret-a"))
    eraser.put_stream(job_key(job, "b.json"), io.BytesIO(b"secret-b"))
    other.local_path(job_key(job, "a.json"))
    other.local_path(job_key(job, "b.json"))
    time.sleep(0.05)                  # the copies' last use is before the next reads ask the bucket
    eraser.put_stream(job_key(job, "a.json"), io.BytesIO(b"plain"))
    eraser.delete_prefix(job_key(job, "b.json"))
    assert other.local_path(job_key(job, "a.json")).read_bytes() == b"plain"
    with pytest.raises(FileNotFoundError):
        other.local_path(job_key(job, "b.json"))
    assert not _holding(tmp_path / "pod-b", b"secret")


def test_a_wrong_bucket_or_endpoint_is_a_clear_error(server, tmp_path):
    wrong_bucket = s3_store(server, tmp_path / "cache")
    wrong_bucket.bucket = "no-such-bucket"
    # A misconfiguration is BlobStoreUnavailable, and not BlobStoreAway: nobody waits for it to pass.
    with pytest.raises(BlobStoreUnavailable, match="'no-such-bucket' .* does not exist") as refused:
        wrong_bucket.check()
    assert not isinstance(refused.value, BlobStoreAway)
    with pytest.raises(BlobStoreUnavailable, match="no-such-bucket") as refused:
        wrong_bucket.put_stream("jobs/x/source", io.BytesIO(b"x"))
    assert not isinstance(refused.value, BlobStoreAway)
    # A HEAD's 404 does not say which is missing, the key or the bucket: the bucket is named.
    with pytest.raises(BlobStoreUnavailable, match="'no-such-bucket' .* does not exist"):
        wrong_bucket.local_path("jobs/x/source")
    with pytest.raises(FileNotFoundError):
        s3_store(server, tmp_path / "cache").local_path("jobs/x/nothing")
    from core.s3_storage import S3BlobStore
    nobody = S3BlobStore("vidfarm", tmp_path / "cache", endpoint="http://127.0.0.1:9", max_attempts=1,
                         access_key_id="a", secret_access_key="b")
    with pytest.raises(BlobStoreAway, match="cannot be reached"):
        nobody.check()
    with pytest.raises(BlobStoreAway, match="storing jobs/x/source failed: Could not connect"):
        nobody.put_stream("jobs/x/source", io.BytesIO(b"x"))
    with pytest.raises(BlobStoreUnavailable, match="refused the credentials") as refused:
        wrong_credentials(server, tmp_path / "cache").check()
    assert not isinstance(refused.value, BlobStoreAway)


def wrong_credentials(server, cache_dir):
    """A store of the server's bucket whose secret key is wrong (s3rver checks signatures)."""
    from core.s3_storage import S3BlobStore

    wrong_key = s3_store(server, cache_dir)
    wrong_key.client = S3BlobStore("vidfarm", cache_dir, endpoint=server.endpoint, access_key_id="nobody",
                                   secret_access_key="wrong").client
    return wrong_key


def test_an_upload_cut_off_part_way_says_which_parts_it_left_in_the_bucket(tmp_path, caplog):
    """A multipart upload neither completed nor aborted keeps its parts on the server, billed and
    in no listing of objects. boto3 aborts a failed upload, but when the server itself went away
    the abort cannot reach it either: the error (and a warning in the log) names the upload left,
    and what removes it. (s3rver implements neither ListMultipartUploads nor AbortMultipartUpload:
    what it keeps of an upload shows in its folder.)"""
    with s3server.S3Server(tmp_path / "s3") as server:        # its own: it is stopped part-way
        store = s3_store(server, tmp_path / "cache", multipart_bytes=5 * 1024**2, max_attempts=1)
        # The server goes away once the first of three parts is stored.
        store.client.meta.events.register("after-call.s3.UploadPart", lambda **_: server.stop())
        source = tmp_path / "source.bin"
        source.write_bytes(b"x" * (12 << 20))
        with pytest.raises(BlobStoreUnavailable) as failed:
            store.put_file(job_key("cut-off", "source"), source)
        store.client.meta.events.unregister("after-call.s3.UploadPart")
        server.start()
        assert not store.exists(job_key("cut-off", "source"))
        [left] = [upload.name for upload in (tmp_path / "s3" / server.bucket / "._S3rver_uploads").iterdir()]
    assert f"storing jobs/cut-off/source failed" in str(failed.value)
    assert f"its parts are left in the bucket (upload id {left})" in str(failed.value)
    assert "AbortIncompleteMultipartUpload" in str(failed.value) and "\n" not in str(failed.value)
    assert any(left in record.getMessage() for record in caplog.records if record.levelname == "WARNING")


def test_the_command_the_web_and_a_worker_stop_at_start_saying_why(server, tmp_path):
    env = child_env(**{**server.env(), "VIDFARM_S3_BUCKET": "no-such-bucket", "VIDFARM_S3_MAX_ATTEMPTS": "1",
                       "VIDFARM_DATA_DIR": str(tmp_path / "data"), "VIDFARM_CONFIG_DIR": str(tmp_path / "config")})
    clip = make_clip(tmp_path / "clip.mp4", seconds=1, fps=5, gop=5, face_windows=[])
    done = subprocess.run([sys.executable, "-m", "cli.main", "process", str(clip.path), "--out", str(tmp_path / "out")], capture_output=True,
                          text=True, env=env, cwd=repo_root(), timeout=120)
    assert done.returncode == 1
    assert "blob store: S3 bucket 'no-such-bucket'" in done.stderr and "does not exist" in done.stderr
    assert "Traceback" not in done.stderr
    web = subprocess.run([sys.executable, "-c", "import web.wsgi"], capture_output=True, text=True, env=env,
                         cwd=repo_root(), timeout=120)
    assert web.returncode == 1 and "vidfarm web: blob store: S3 bucket 'no-such-bucket'" in web.stderr
    worker = subprocess.run([sys.executable, "-m", "celery", "-A", "tasks.app", "worker", "-P", "solo"],
                            capture_output=True, text=True, env={**env, "REDIS_URL": "redis://127.0.0.1:1/0"},
                            cwd=repo_root(), timeout=120)
    assert worker.returncode != 0 and "vidfarm worker: blob store: S3 bucket 'no-such-bucket'" in worker.stderr


def _upload(client, path):
    with open(path, "rb") as fh:
        response = client.post("/api/v1/jobs", headers=AUTH, data={"file": (fh, "clip.mp4")},
                               content_type="multipart/form-data")
    assert response.status_code == 201, response.json
    return response.json["id"]


AUTH = {"Authorization": "Bearer test-token"}


def _web_client():
    from web import create_app

    app = create_app()
    app.testing = True
    return app.test_client()


def test_a_job_end_to_end_with_its_blobs_in_s3(server, tmp_path):
    from services import runtime

    clip = make_clip(tmp_path / "clip.mp4", seconds=6, fps=15, gop=15)
    data_dir = tmp_path / "farm"
    with private_farm(data_dir, workers=2, VIDFARM_SEGMENT_SECONDS="2", VIDFARM_S3_MULTIPART_BYTES=str(5 * 1024**2),
                      **server.env()):
        client = _web_client()
        job_id = _upload(client, clip.path)
        view = wait_for_job(job_id, timeout=240)
        assert view["status"] == "done", view["error"]
        store = runtime.store()
        keys = store.list_keys(job_key(job_id))
        assert job_key(job_id, "source") in keys and output_key(job_id, "annotated.mp4") in keys
        assert len([k for k in keys if "/segments/" in k]) == view["chunks_total"] >= 3
        assert not (data_dir / "blobs").exists()           # nothing went to the local store

        results = client.get(f"/api/v1/jobs/{job_id}/results", headers=AUTH).json
        assert [f["index"] for f in results["frames"]] == list(range(clip.frames))
        video = client.get(f"/api/v1/jobs/{job_id}/video", headers=AUTH)
        assert video.status_code == 200 and video.headers["Accept-Ranges"] == "bytes"
        whole = tmp_path / "annotated.mp4"
        whole.write_bytes(video.data)
        assert count_video_frames(whole) == clip.frames                 # frame-exact
        ranged = client.get(f"/api/v1/jobs/{job_id}/video", headers={**AUTH, "Range": "bytes=1000-1999"})
        assert ranged.status_code == 206 and ranged.data == video.data[1000:2000]
        assert ranged.headers["Content-Range"] == f"bytes 1000-1999/{len(video.data)}"
        tail = client.get(f"/api/v1/jobs/{job_id}/video", headers={**AUTH, "Range": "bytes=-10"})
        assert tail.status_code == 206 and tail.data == video.data[-10:]
        past = client.get(f"/api/v1/jobs/{job_id}/video", headers={**AUTH, "Range": f"bytes={len(video.data)}-"})
        assert past.status_code == 416 and past.headers["Content-Range"] == f"bytes */{len(video.data)}"

        other_pod = s3_store(server, tmp_path / "other-pod", sweep_s=1.0)     # it read every blob of the job
        for key in keys:
            other_pod.local_path(key)
        assert client.delete(f"/api/v1/jobs/{job_id}", headers=AUTH).status_code == 204
        assert store.list_keys(job_key(job_id)) == []
        deadline = time.monotonic() + 10
        while list((tmp_path / "other-pod").rglob("@*")):       # dropped by its sweep, unasked
            assert time.monotonic() < deadline, list((tmp_path / "other-pod").rglob("@*"))
            time.sleep(0.1)


def stop_once_a_segment_is_done(server, job_id: str) -> tuple[float, list[int]]:
    """Stop the server as soon as one segment of the job is done: (when, the segments unfinished)."""
    from services import runtime

    records = runtime.records()
    deadline = time.monotonic() + 120
    while not any(s.status == "done" for s in records.segments(job_id)):
        assert time.monotonic() < deadline, "no segment finished"
        time.sleep(0.05)
    server.stop()
    unfinished = [s.index for s in records.segments(job_id) if s.status != "done"]
    assert unfinished, "the job was done before the server went down: nothing was tested"
    return time.time(), unfinished


def test_the_s3_server_restarted_in_the_middle_of_a_job(tmp_path):
    """The bucket goes away for 3 s while segments are analysed: the clients' retries ride it
    out and the job ends done, frame-exact, with every blob in place; while it is down an upload
    gets 503 and a clear reason (no job, nothing half-stored)."""
    from services import runtime

    clip = make_clip(tmp_path / "clip.mp4", seconds=12, fps=15, gop=15)
    with s3server.S3Server(tmp_path / "s3rver") as server, \
            private_farm(tmp_path / "farm", workers=2, VIDFARM_SEGMENT_SECONDS="1", **server.env()):
        client = _web_client()
        job_id = _upload(client, clip.path)
        records = runtime.records()
        stopped_at, unfinished = stop_once_a_segment_is_done(server, job_id)
        with pytest.MonkeyPatch.context() as mp:     # this process's store: one try, to see the refusal now
            mp.setattr(runtime, "store", lambda: s3_store(server, tmp_path / "cache", max_attempts=1))
            with runtime.records().session() as s:
                jobs_before = s.query(Job).count()
            refused = client.post("/api/v1/jobs", headers=AUTH, data={"file": (io.BytesIO(clip.path.read_bytes()),
                                                                               "while-down.mp4")},
                                  content_type="multipart/form-data")
            with runtime.records().session() as s:
                jobs_after = s.query(Job).count()
        assert refused.status_code == 503 and "blob storage unavailable" in refused.json["error"], refused.json
        assert refused.headers["Retry-After"] and jobs_after == jobs_before      # no job made of it
        time.sleep(3)
        server.start()
        back_at = time.time()
        view = wait_for_job(job_id, timeout=300)
        done_segments = [s for s in records.segments(job_id) if s.status == "done"]
        assert view["status"] == "done", view["error"]
        assert len(done_segments) == view["chunks_total"]
        results = json.loads(runtime.store().local_path(output_key(job_id, "results.json")).read_text())
        assert [f["index"] for f in results["frames"]] == list(range(clip.frames))   # each frame once
        assert count_video_frames(runtime.store().local_path(output_key(job_id, "annotated.mp4"))) == clip.frames
        retried = [s.index for s in records.segments(job_id) if s.attempts > 1]
        print(f"\nrecovery: S3 server down {back_at - stopped_at:.1f} s with segments {unfinished} unfinished; "
              f"job done {time.time() - back_at:.1f} s after it came back; segments run more than once: {retried}")
