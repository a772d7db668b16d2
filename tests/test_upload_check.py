"""The upload check runs in a child of the web process (services.submit.check_recording): its
verdict comes back as one line, and a child that dies is a refusal, not a crash of the request."""

from __future__ import annotations

import pytest

from core.settings import Settings
from services.submit import MediaError, check_recording
from tests.clipmaker import make_clip


def test_a_good_recording_passes_and_junk_gets_the_readers_reason(tmp_path, monkeypatch):
    # Settings read here, not the process's cached ones (runtime.settings()): read through the
    # cache, this test's folder stayed the settings of every test after it in the process (CI
    # saw the web tests open a database under it once the files' order changed).
    monkeypatch.setenv("VIDFARM_DATA_DIR", str(tmp_path / "data"))
    settings = Settings()
    check_recording(settings, make_clip(tmp_path / "ok.mp4", seconds=1, fps=10).path)
    junk = tmp_path / "notes.mp4"
    junk.write_text("just some text, not a video\n" * 50)
    with pytest.raises(MediaError, match="^not a readable video file"):
        check_recording(settings, junk)


def test_a_reader_that_dies_is_a_refusal(tmp_path, monkeypatch):
    import services.submit

    clip = make_clip(tmp_path / "ok.mp4", seconds=1, fps=10).path
    # A child that exits without a verdict, as one killed by a demuxer's crash would.
    monkeypatch.setattr(services.submit.sys, "executable", "/bin/false")
    with pytest.raises(MediaError, match="crashed the video reader"):
        check_recording(Settings(), clip)


def test_the_reader_gets_none_of_the_web_process_secrets(monkeypatch):
    from services.submit import reader_environment

    for name in ("VIDFARM_SECRET_KEY", "VIDFARM_API_TOKEN", "DATABASE_URL", "REDIS_URL"):
        monkeypatch.setenv(name, "secret")
    monkeypatch.setenv("PATH", "/usr/bin")
    env = reader_environment()
    assert env["PATH"] == "/usr/bin" and not {"VIDFARM_SECRET_KEY", "VIDFARM_API_TOKEN", "DATABASE_URL",
                                              "REDIS_URL"} & set(env)
