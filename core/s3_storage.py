"""Blob storage in an S3-compatible object store (AWS S3, MinIO, Ceph RGW, s3rver ...).

For a cluster: every pod reaches the bucket over the network, so no ReadWriteMany volume is
needed for blobs. Keys are the same as ``LocalBlobStore``'s (``core.storage``), one object each.

Writes (``put_file``, ``move_file``, ``put_stream``, ``delete_prefix``) go straight to the
bucket; files are uploaded in parts (``TransferConfig``: multipart past ``multipart_bytes``),
and an object appears whole or not at all (S3 completes a PUT or a multipart upload atomically),
which is what ``LocalBlobStore``'s temp file + rename gives.

Reads: ``exists``, ``list_keys``, ``size`` and ``read_range`` ask the bucket. ``local_path``
(what the video code needs: PyAV opens files) downloads the object into a read-through cache
on this machine's disk: one file per object *version* (named by its ETag, so an object written
again is fetched again), downloaded to a temp name and renamed (a reader never sees half a
file; processes sharing the folder share the copies). The cache is bounded: past
``cache_bytes`` the least recently used copies go, except those used in the last
``CACHE_GRACE_S`` (a caller may hold a path it has not opened yet), so it can run over by the
files in use. A cached copy is only a copy: deleting it loses nothing.

Deleted or rewritten objects leave no copies behind, on any machine (an erasure or a job's
delete, made through one pod, must not leave another pod's disk holding the person's name and
embeddings): ``delete_prefix`` drops this machine's copies at once; a read that finds its key
gone, or written again, drops that key's other copies; and every process that opens the store
runs a background thread that checks the cache against the bucket every ``sweep_s``
(``VIDFARM_S3_CACHE_SWEEP_S``, default ``defaults.S3_CACHE_SWEEP_S``) and drops copies of keys deleted or written again since, by
whoever (``sweep``). Processes sharing a cache folder take turns (about one sweep per folder per
``sweep_s``, never two within half of it), so a copy outlives its object by at most about ``sweep_s`` plus one sweep. Why not
a deletion notice through Redis: the bucket is what is true (a rewrite in place, a lifecycle
rule, a pod that was down when the notice went), and a sweep costs one LIST per cached job
folder, and a read only a look at its own key's folder (``_drop_copies``).

boto3 is imported here only, and only when an S3 store is opened: a process on the local
store (and the web app's start) never loads it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import BinaryIO, Iterator

from core import defaults
from core.storage import FILE_MODE, BlobStore, BlobStoreAway, BlobStoreUnavailable, BlobTooLarge, check_key

log = logging.getLogger(__name__)

# A cached copy used this recently is never evicted (its caller may not have opened it yet).
CACHE_GRACE_S = 600.0


class S3BlobStore(BlobStore):
    def __init__(self, bucket: str, cache_dir: Path, *, endpoint: str | None = None, region: str | None = None,
                 access_key_id: str | None = None, secret_access_key: str | None = None,
                 cache_bytes: int = defaults.S3_CACHE_BYTES, max_attempts: int = defaults.S3_MAX_ATTEMPTS,
                 multipart_bytes: int = defaults.S3_MULTIPART_BYTES, timeout_s: float = defaults.S3_TIMEOUT_S,
                 sweep_s: float = defaults.S3_CACHE_SWEEP_S):
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.bucket, self.endpoint = bucket, endpoint
        self.cache_dir, self.cache_bytes = Path(cache_dir), cache_bytes
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        # Credentials: the arguments when given, else boto3's own chain (AWS_ACCESS_KEY_ID ...,
        # a shared credentials file, an instance or pod role).
        self.client = boto3.client(
            "s3", endpoint_url=endpoint, region_name=region, aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=Config(retries={"max_attempts": max_attempts, "mode": "standard"},
                          connect_timeout=timeout_s, read_timeout=timeout_s,
                          # Path-style URLs (endpoint/bucket/key): what self-hosted servers expect.
                          s3={"addressing_style": "path"}))
        self.transfer = TransferConfig(multipart_threshold=multipart_bytes, multipart_chunksize=multipart_bytes,
                                       use_threads=False)
        # The multipart upload a transfer opened, by key (s3transfer keeps its id to itself):
        # what ``_upload`` aborts when the transfer fails (below).
        self._opened_uploads: dict[str, str] = {}
        self.client.meta.events.register("after-call.s3.CreateMultipartUpload", self._note_opened_upload)
        # The cache's sweeper: one thread here, and one in each process forked from this one
        # (a thread does not survive a fork: Celery's and gunicorn's children).
        self.sweep_s = sweep_s
        self._start_sweeper()
        me = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (store := me()) is not None and store._start_sweeper())

    # -- errors ----------------------------------------------------------------------------

    def _where(self) -> str:
        return f"S3 bucket {self.bucket!r} at {self.endpoint or 'the AWS default endpoint'}"

    def _translate(self, exc: Exception, key: str | None = None) -> Exception:
        """botocore's errors as the store's: a missing key is FileNotFoundError (as for a local
        file); an outage (``_is_outage``) is BlobStoreAway; anything else the bucket answers (a
        missing bucket, refused credentials ...) is BlobStoreUnavailable, saying which."""
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound") and key is not None:
                return FileNotFoundError(f"no blob {key}")
            if _is_outage(exc):
                return BlobStoreAway(f"{self._where()} is failing or overloaded: {exc}")
            if code in ("NoSuchBucket",) or (code in ("404", "NotFound") and key is None):
                return BlobStoreUnavailable(f"{self._where()} does not exist (VIDFARM_S3_BUCKET)")
            if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                return BlobStoreUnavailable(f"{self._where()} refused the credentials: {code}")
            return BlobStoreUnavailable(f"{self._where()} refused the request: {exc}")
        if _is_outage(exc):
            return BlobStoreAway(f"{self._where()} cannot be reached: {exc}")
        return BlobStoreUnavailable(f"{self._where()} cannot be used: {exc}")     # no credentials found, say

    def _call(self, method: str, key: str | None = None, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, method)(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(exc, key) from exc

    def check(self) -> None:
        """Raise BlobStoreUnavailable, saying why, unless the bucket answers (entry points call it)."""
        self._call("head_bucket", Bucket=self.bucket)

    # -- writes ----------------------------------------------------------------------------

    def _upload(self, key: str, upload, *args) -> None:
        """Run a boto3 transfer (multipart past multipart_bytes, each part retried by botocore)."""
        check_key(key)
        try:
            upload(*args, self.bucket, key, Config=self.transfer)
        except BaseException as exc:      # a stop signal's too: its parts are billed all the same
            left = self._abort_opened_upload(key)
            # s3transfer wraps a failed part (or a dropped connection) in errors of its own.
            if exc.__class__.__module__.split(".")[0] in ("botocore", "boto3", "s3transfer"):
                kind = BlobStoreAway if _is_outage(_botocore_error(exc)) else BlobStoreUnavailable
                raise kind(f"{self._where()}: storing {key} failed: {exc}{left}") from exc
            raise
        finally:
            self._opened_uploads.pop(key, None)

    def _note_opened_upload(self, parsed, **_) -> None:
        if "UploadId" in parsed and "Key" in parsed:
            self._opened_uploads[parsed["Key"]] = parsed["UploadId"]

    def _abort_opened_upload(self, key: str) -> str:
        """After a failed transfer: abort the multipart upload it opened, whose stored parts S3
        bills and lists as no object. s3transfer tries that too, but says nothing when its abort
        fails (the server is what went away): this one finds out. "" when nothing is left (no
        upload, or aborted, by either), else what the error adds, also logged as a warning."""
        from botocore.exceptions import BotoCoreError, ClientError

        upload_id = self._opened_uploads.pop(key, None)
        if upload_id is None:
            return ""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            return ""
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchUpload":     # s3transfer's abort took
                return ""
            reason = exc
        except BotoCoreError as exc:
            reason = exc
        left = (f"; its parts are left in the bucket (upload id {upload_id}), billed until an "
                "AbortMultipartUpload or the bucket's AbortIncompleteMultipartUpload lifecycle rule removes them")
        log.warning("%s: storing %s failed%s (the abort failed: %s)", self._where(), key, left, reason)
        return left

    def put_file(self, key: str, src: Path) -> None:
        self._upload(key, self.client.upload_file, str(src))

    def put_stream(self, key: str, stream: BinaryIO, limit: int | None = None) -> int:
        # Spooled to a scratch file first: the limit is known to hold before anything is sent,
        # and a retried part can be read again.
        check_key(key)
        with tempfile.TemporaryFile(dir=self.cache_dir) as spool:
            size = 0
            while chunk := stream.read(1 << 20):
                size += len(chunk)
                if limit is not None and size > limit:
                    raise BlobTooLarge(f"larger than the {limit} byte limit")
                spool.write(chunk)
            spool.seek(0)
            self._upload(key, self.client.upload_fileobj, spool)
        return size

    def delete_prefix(self, prefix: str) -> None:
        prefix = prefix.rstrip("/")
        check_key(prefix)
        keys = [prefix] + self.list_keys(prefix)     # the key itself (a file), or a folder's keys
        for start in range(0, len(keys), 1000):      # DeleteObjects takes 1000 at a time
            self._call("delete_objects", Bucket=self.bucket,
                       Delete={"Objects": [{"Key": key} for key in keys[start:start + 1000]], "Quiet": True})
        shutil.rmtree(self.cache_dir / prefix, ignore_errors=True)     # this machine's copies of them
        # Other machines' copies: their sweep (``sweep``) drops them within ``sweep_s``.

    # -- reads -----------------------------------------------------------------------------

    def _head(self, key: str) -> dict:
        check_key(key)
        try:
            return self._call("head_object", key, Bucket=self.bucket, Key=key)
        except FileNotFoundError:
            # A HEAD's 404 has no body to say whether the key or the whole bucket is missing:
            # a bucket deleted under the farm is named as such, not taken for every blob gone.
            self.check()
            raise

    def exists(self, key: str) -> bool:
        return self._head_or_none(key) is not None

    def size(self, key: str) -> int:
        return int(self._head(key)["ContentLength"])

    def list_keys(self, prefix: str) -> list[str]:
        return sorted(self._etags(prefix))

    def _etags(self, prefix: str) -> dict[str, str]:
        """Every key under the folder ``prefix``, with its object's ETag."""
        folder = prefix.rstrip("/") + "/"
        check_key(folder.rstrip("/"))
        etags: dict[str, str] = {}
        token: dict = {}
        while True:
            page = self._call("list_objects_v2", Bucket=self.bucket, Prefix=folder, **token)
            etags.update((item["Key"], _etag(item)) for item in page.get("Contents", []))
            if not page.get("IsTruncated"):
                return etags
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def read_range(self, key: str, start: int, stop: int) -> Iterator[bytes]:
        """Bytes start..stop-1 of the blob, piece by piece (the web's Range answers)."""
        check_key(key)
        body = self._call("get_object", key, Bucket=self.bucket, Key=key, Range=f"bytes={start}-{stop - 1}")["Body"]
        try:
            yield from self._chunks(body, key, 1 << 16)
        finally:
            body.close()

    def _chunks(self, body, key: str, size: int) -> Iterator[bytes]:
        from botocore.exceptions import BotoCoreError

        try:
            yield from body.iter_chunks(size)
        except BotoCoreError as exc:           # the connection dropped mid-body
            raise self._translate(exc, key) from exc

    def local_path(self, key: str) -> Path:
        asked = time.time()
        try:
            etag = _etag(self._head(key))
        except FileNotFoundError:
            self._drop_copies(key, None, asked)      # deleted: no copy of it stays here
            raise
        copy = self.cache_dir / key / f"@{etag}{Path(key).suffix}"     # '@' is in no key
        self._drop_copies(key, etag, asked)          # written again: the older versions go
        if copy.is_file():
            os.utime(copy)          # recently used: evicted last (and kept by a sweep under way)
            return copy
        copy.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=copy.parent, prefix=".", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                got = self._call("get_object", key, Bucket=self.bucket, Key=key)
                # Written again since the HEAD: the copy is named by what was read.
                copy = copy.with_name(f"@{_etag(got)}{Path(key).suffix}")
                for chunk in self._chunks(got["Body"], key, 1 << 20):
                    out.write(chunk)
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, copy)
        finally:
            Path(tmp).unlink(missing_ok=True)
        self._evict(keep=copy)
        return copy

    def _drop_copies(self, key: str, etag: str | None, used_before: float) -> int:
        """Remove this machine's copies of ``key`` other than version ``etag`` (all of them for
        None), except those used since ``used_before``: a read that began after the bucket was
        asked may have been handed that path. How many went."""
        dropped = 0
        keep = None if etag is None else f"@{etag}{Path(key).suffix}"
        for path in (self.cache_dir / key).glob("@*"):
            try:
                if path.name != keep and path.stat().st_mtime < used_before:
                    path.unlink()
                    dropped += 1
            except FileNotFoundError:       # another process removed it meanwhile
                pass
        return dropped

    def sweep(self) -> int:
        """Drop this machine's copies of objects deleted or written again in the bucket since
        they were read (a job deleted or a person erased through another pod): one LIST per
        cached job folder (keys' first two parts), a HEAD per key outside any. Copies used
        after the bucket was asked stay (their readers may hold the path): the next sweep
        looks again. How many went."""
        started = time.time()
        keys = {path.parent.relative_to(self.cache_dir).as_posix() for path in self.cache_dir.rglob("@*")}
        folders: dict[str, list[str]] = {}
        for key in keys:
            folders.setdefault("/".join(key.split("/")[:-1][:2]), []).append(key)
        dropped = 0
        for folder, cached in folders.items():
            if folder:
                etags = self._etags(folder)
            else:                      # a key at the top: no folder to list
                etags = {key: _etag(head) for key in cached if (head := self._head_or_none(key))}
            dropped += sum(self._drop_copies(key, etags.get(key), started) for key in cached)
        return dropped

    def _head_or_none(self, key: str) -> dict | None:
        try:
            return self._head(key)
        except FileNotFoundError:
            return None

    def _start_sweeper(self) -> None:
        if self.sweep_s > 0:
            threading.Thread(target=_sweep_now_and_then, args=(weakref.ref(self), self.sweep_s),
                             name="s3-cache-sweep", daemon=True).start()

    def sweep_if_due(self) -> None:
        """``sweep``, unless another process sharing this cache folder swept it in the last
        half ``sweep_s`` or sweeps it now (so the folder is swept about once per ``sweep_s``,
        however many processes share it)."""
        marker = self.cache_dir / ".swept"
        with open(marker, "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return
            lock.seek(0)
            try:      # the time the last sweep wrote, not the file's mtime (a copy or a touch changes that)
                swept_at = float(lock.read())
            except ValueError:                  # never swept (empty), or cut short as it was written
                swept_at = 0.0
            if time.time() - swept_at < self.sweep_s / 2:
                return
            dropped = self.sweep()
            lock.truncate(0)
            lock.write(f"{time.time()}\n")
            if dropped:
                log.info("S3 read cache: dropped %d copies of objects deleted or written again", dropped)

    def _evict(self, keep: Path) -> None:
        """Remove the least recently used copies until the cache fits cache_bytes."""
        copies = []
        for path in self.cache_dir.rglob("@*"):
            try:
                stat = path.stat()
            except FileNotFoundError:       # another process evicted it meanwhile
                continue
            copies.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in copies)
        now = time.time()
        for used, size, path in sorted(copies):
            if total <= self.cache_bytes or now - used < CACHE_GRACE_S:
                break
            if path != keep:
                path.unlink(missing_ok=True)
                total -= size


def _sweep_now_and_then(store_ref: weakref.ref, every_s: float) -> None:
    """The sweeper thread: ``sweep_if_due`` every ``every_s`` for as long as the store lives."""
    while True:
        time.sleep(every_s)
        store = store_ref()
        if store is None:
            return
        try:
            store.sweep_if_due()
        except Exception as exc:       # the bucket away: the next round tries again
            log.warning("S3 read cache sweep failed (tried again in %.0f s): %s", every_s, exc)
        del store


# What botocore's standard retry mode retries as transient or throttled
# (``botocore.retries.standard``), beside any 5xx and 429: an outage, which a task waits out.
_OUTAGE_CODES = frozenset({
    "RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete", "SlowDown", "Throttling",
    "ThrottlingException", "ThrottledException", "RequestThrottledException", "TooManyRequestsException",
    "RequestLimitExceeded", "BandwidthLimitExceeded", "RequestThrottled", "InternalError", "ServiceUnavailable"})


def _is_outage(exc: BaseException | None) -> bool:
    """Whether a botocore error is an outage (the bucket unreachable, failing or overloaded),
    not the bucket refusing us (a misconfiguration: waiting would not mend it)."""
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError, IncompleteReadError

    if isinstance(exc, ClientError):
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return str(exc.response.get("Error", {}).get("Code", "")) in _OUTAGE_CODES or status >= 500 or status == 429
    # No connection, a timeout, a connection dropped mid-answer.
    return isinstance(exc, (ConnectionError, HTTPClientError, IncompleteReadError))


def _botocore_error(exc: BaseException | None) -> BaseException | None:
    """The botocore error behind one of boto3's or s3transfer's (they wrap it, or raise theirs
    while handling it), or None."""
    from botocore.exceptions import BotoCoreError, ClientError

    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, (BotoCoreError, ClientError)):
            return exc
        seen.add(id(exc))
        exc = getattr(exc, "last_exception", None) or exc.__cause__ or exc.__context__
    return None


def _etag(listed_or_head: dict) -> str:
    """An object's ETag, as a LIST entry or a HEAD answer gives it, without its quotes."""
    return str(listed_or_head["ETag"]).strip('"')
