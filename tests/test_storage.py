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


def test_move_file_takes_the_file_without_copying(tmp_path):
    store = LocalBlobStore(tmp_path / "blobs")
    src = tmp_path / "scratch.bin"
    src.write_bytes(b"segment")
    inode = src.stat().st_ino
    store.move_file(job_key("j1", "segments", "00000.nut"), src)
    stored = store.local_path("jobs/j1/segments/00000.nut")
    assert stored.read_bytes() == b"segment" and not src.exists()
    assert stored.stat().st_ino == inode            # renamed, not copied


def test_move_file_across_filesystems_copies_then_removes(tmp_path, monkeypatch):
    import errno
    import os

    store = LocalBlobStore(tmp_path / "blobs")
    src = tmp_path / "scratch.bin"
    src.write_bytes(b"segment")
    rename = os.replace

    def cross_device(a, b):
        if a == src:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return rename(a, b)

    monkeypatch.setattr(os, "replace", cross_device)
    store.move_file(job_key("j1", "x"), src)
    assert store.local_path("jobs/j1/x").read_bytes() == b"segment" and not src.exists()


def test_deleting_a_folder_that_tasks_write_into_meanwhile_leaves_nothing(tmp_path):
    """A done job deleted while its video is drawn: files come and go during the sweep."""
    import threading

    from core.storage import LocalBlobStore

    store = LocalBlobStore(tmp_path)
    for i in range(300):
        store.put_stream(f"jobs/x/annotated/{i:05d}.mp4", io.BytesIO(b"x"))

    def churn():      # a drawing task's writes and clean-ups, for a while
        for i in range(300):
            try:
                store.put_stream(f"jobs/x/annotated/new-{i}.mp4", io.BytesIO(b"y"))
                store.delete_prefix(f"jobs/x/annotated/{i:05d}.mp4")
            except OSError:
                pass   # its folder went meanwhile: what a task racing a deletion meets
    writer = threading.Thread(target=churn)
    writer.start()
    try:
        store.delete_prefix("jobs/x")
    finally:
        writer.join()
    store.delete_prefix("jobs/x")       # what the drawing tasks do after their last write
    assert not (tmp_path / "jobs" / "x").exists()
