"""One-off: what the S3 read cache's sweep costs (core/s3_storage.py, ``sweep``), and what a
cached read pays for dropping a key's older copies (``_drop_copies`` in ``local_path``).

``python -m bench.s3_cache_sweep [jobs] [keys per job]``: an s3rver (tests/s3server.py) on this
machine, ``jobs`` jobs of ``keys`` small objects each, all read into one store's cache; then
the sweep timed with nothing to drop and after one job is deleted by another store, and a
cached read timed with and without the drop (best of 5 rounds of every key). Prints a
Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path

from core.s3_storage import S3BlobStore
from core.storage import job_key
from tests import s3server


def _store(server, cache: Path) -> S3BlobStore:
    return S3BlobStore(server.bucket, cache, endpoint=server.endpoint, access_key_id=s3server.ACCESS_KEY,
                       secret_access_key=s3server.SECRET_KEY, sweep_s=0)


def _timed(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main(jobs: int = 20, per_job: int = 50) -> None:
    with tempfile.TemporaryDirectory() as scratch, s3server.S3Server(Path(scratch) / "s3rver") as server:
        pod, other = _store(server, Path(scratch) / "pod"), _store(server, Path(scratch) / "other")
        run = f"bench-{time.time_ns()}"
        keys = [job_key(f"{run}-{j}", "analysis", f"{k:05d}.json") for j in range(jobs) for k in range(per_job)]
        for key in keys:
            other.put_stream(key, io.BytesIO(b"x" * 2000))
            pod.local_path(key)
        idle = min(_timed(pod.sweep) for _ in range(5))
        with_drop = min(_timed(lambda: [pod.local_path(k) for k in keys]) for _ in range(5)) / len(keys)
        pod._drop_copies = lambda *args: 0
        without_drop = min(_timed(lambda: [pod.local_path(k) for k in keys]) for _ in range(5)) / len(keys)
        del pod._drop_copies
        other.delete_prefix(job_key(f"{run}-0"))
        time.sleep(0.05)
        started = time.perf_counter()
        dropped = pod.sweep()
        after_delete = time.perf_counter() - started
    print(f"| cached copies | job folders | sweep, nothing to drop | sweep, one job deleted ({dropped} copies dropped) "
          f"| cached read (HEAD + copy), with the drop | without |")
    print("|---|---|---|---|---|---|")
    print(f"| {len(keys)} | {jobs} | {idle * 1000:.0f} ms | {after_delete * 1000:.0f} ms | "
          f"{with_drop * 1000:.2f} ms | {without_drop * 1000:.2f} ms |")


if __name__ == "__main__":
    main(*map(int, sys.argv[1:]))
