from __future__ import annotations

import io

import pytest

from core.storage import BlobTooLarge, LocalBlobStore, job_key


def test_put_read_delete(tmp_path):
    store = LocalBlobStore(tmp_path)
    src = tmp_path / "x.bin"
    src.write_bytes(b"abc")
    store.put_file(job_key("j1", "source"), src)
    store.put_stream(job_key("j1", "out", "r.json"), io.BytesIO(b"{}"))
    assert store.local_path("jobs/j1/source").read_bytes() == b"abc"
    assert store.exists("jobs/j1/out/r.json")
    store.delete_prefix(job_key("j1"))
    assert not store.exists("jobs/j1/source")
    with pytest.raises(FileNotFoundError):
        store.local_path("jobs/j1/source")


@pytest.mark.parametrize("key", ["../etc/passwd", "jobs/../../x", "/abs", "jobs//x", "jobs/a b", ""])
def test_keys_cannot_escape_the_root(tmp_path, key):
    with pytest.raises(ValueError):
        LocalBlobStore(tmp_path / "root").put_stream(key, io.BytesIO(b"x"))


def test_stream_over_limit_stores_nothing(tmp_path):
    store = LocalBlobStore(tmp_path)
    with pytest.raises(BlobTooLarge):
        store.put_stream("jobs/j/source", io.BytesIO(b"x" * (3 << 20)), limit=2 << 20)
    assert not store.exists("jobs/j/source")
    assert not [p for p in (tmp_path / "jobs" / "j").iterdir()]   # no partial file left


def test_rewrite_replaces_whole_file(tmp_path):
    store = LocalBlobStore(tmp_path)
    store.put_stream("jobs/j/a", io.BytesIO(b"long content"))
    store.put_stream("jobs/j/a", io.BytesIO(b"short"))
    assert store.local_path("jobs/j/a").read_bytes() == b"short"
