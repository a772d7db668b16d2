"""What vidfarm writes about people is private to it (issue 11, items 6 and 9): blobs 0640,
the SQLite file 0600, the generated secret key 0600 outside the shared data folder, and the
farm's processes other than the web app (media workers above all) never get the API token
or the secret key."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from cli.redis_server import free_port


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask():
    """The permissive umask most shells have, so the modes seen are the code's own."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_blobs_are_written_0640_however_they_arrive(tmp_path, open_umask):
    from core.storage import LocalBlobStore

    store = LocalBlobStore(tmp_path / "blobs")
    scratch = tmp_path / "scratch.mp4"
    scratch.write_bytes(b"video")
    store.put_file("jobs/a/source", scratch)
    store.put_stream("jobs/a/output/results.json", io.BytesIO(b"{}"))
    store.move_file("jobs/a/output/annotated.mp4", scratch)
    for key in ("jobs/a/source", "jobs/a/output/results.json", "jobs/a/output/annotated.mp4"):
        assert mode(store.local_path(key)) == 0o640, key


def test_the_sqlite_file_is_0600_new_or_made_before(tmp_path, open_umask):
    from core.records import Records

    old = tmp_path / "old.db"
    old.touch(mode=0o644)
    for path in (tmp_path / "new.db", old):
        records = Records(f"sqlite:///{path}")
        records.create_schema()
        records.add_job("a.mp4", "k")
        records.engine.dispose()
        assert mode(path) == 0o600, path
    assert all(mode(p) == 0o600 for p in tmp_path.glob("*.db-*"))   # its WAL and shared memory too


def test_the_generated_secret_key_lives_0600_outside_the_data_folder(tmp_path, open_umask):
    from core.settings import Settings
    from web import create_app

    data_dir, config_dir = tmp_path / "data", tmp_path / "config"
    data_dir.mkdir()
    (data_dir / "secret_key").write_text("a key 0.1 left on the shared tree")
    settings = Settings(data_dir=data_dir, config_dir=config_dir, secret_key=None)
    key = create_app(settings).config["SECRET_KEY"]
    assert (config_dir / "secret_key").read_text() == key and len(key) >= 48
    assert mode(config_dir / "secret_key") == 0o600 and mode(config_dir) == 0o700
    assert not (data_dir / "secret_key").exists()
    assert create_app(settings).config["SECRET_KEY"] == key            # every web process signs alike
    assert create_app(settings.model_copy(update={"secret_key": "from-env"})).config["SECRET_KEY"] == "from-env"


def test_a_finished_jobs_files_and_the_database_are_private(farm, face_clip, open_umask):
    from services import runtime
    from services.submit import submit_file
    from tests.conftest import wait_for_job

    job_id = submit_file(runtime.farm(), face_clip.path, name="modes.mp4")
    assert wait_for_job(job_id)["status"] == "done"
    files = [p for p in (runtime.settings().data_dir / "blobs" / "jobs" / job_id).rglob("*") if p.is_file()]
    assert any(p.name == "annotated.mp4" for p in files) and any(p.name == "results.json" for p in files)
    assert {p.name: mode(p) for p in files if mode(p) != 0o640} == {}
    assert mode(runtime.settings().data_dir / "vidfarm.db") == 0o600


def process_environment(pid: int) -> dict:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def test_only_the_web_app_gets_the_api_token_and_the_secret_key(tmp_path, monkeypatch):
    from cli.farm import EmbeddedFarm

    monkeypatch.setenv("VIDFARM_SECRET_KEY", "the-signing-key")
    monkeypatch.setenv("VIDFARM_FLOWER_PASSWORD", "flower-secret")
    with EmbeddedFarm(tmp_path, workers=1, web_port=free_port(), api_token="the-admin-token", beat=True,
                      flower_port=free_port(), flower_auth="admin:flower-secret") as farm:
        seen = {p.name: process_environment(p.popen.pid) for p in farm.processes}
    assert set(seen) == {"web", "beat", "flower"} | {name for name in seen if name.startswith("worker")}
    assert seen["web"]["VIDFARM_API_TOKEN"] == "the-admin-token"
    assert seen["web"]["VIDFARM_SECRET_KEY"] == "the-signing-key"
    for name, env in seen.items():
        if name != "web":
            assert not {"VIDFARM_API_TOKEN", "VIDFARM_SECRET_KEY", "VIDFARM_FLOWER_PASSWORD"} & set(env), name
            assert env["REDIS_URL"] and env["VIDFARM_DATA_DIR"] == str(tmp_path)       # what they do need
