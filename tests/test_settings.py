"""Settings from the environment, as README documents them."""

from __future__ import annotations

import pytest

from core.settings import Settings, get_settings


@pytest.mark.parametrize("value,expected", [
    ("detect,track", ("detect", "track")),
    (" detect , mask,, ", ("detect", "mask")),
    ("", ()),
])
def test_list_settings_are_comma_separated_in_the_environment(monkeypatch, value, expected):
    for name in ("VIDFARM_ANALYZERS", "VIDFARM_PLUGINS", "VIDFARM_ALERTS"):
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.analyzers == settings.plugins == settings.alerts == expected


def test_list_settings_defaults(monkeypatch):
    for name in ("VIDFARM_ANALYZERS", "VIDFARM_PLUGINS", "VIDFARM_ALERTS"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.analyzers == ("detect", "track", "recognize", "mask", "thermal")
    assert settings.plugins == () and settings.alerts == ("fever", "watchlist")


def test_the_tasks_read_the_list_settings(monkeypatch, tmp_path):
    from services import runtime, submit
    from tasks import jobs

    monkeypatch.setenv("VIDFARM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("VIDFARM_ANALYZERS", "detect, track,thermal")
    monkeypatch.setenv("VIDFARM_PLUGINS", "tests.poison_plugin,")
    monkeypatch.setenv("VIDFARM_ALERTS", "no_mask , fever")
    get_settings.cache_clear()
    try:
        config = jobs._pipeline_config({})
        assert config.analyzers == ("detect", "track", "thermal") and config.plugins == ("tests.poison_plugin",)
        assert jobs._pipeline_config({"analyzers": ["detect", "mask"]}).analyzers == ("detect", "mask")
        assert jobs.result_options(frozenset()).alerts == ("no_mask", "fever")
        assert submit.default_analyzers(runtime.settings()) == ["track", "thermal"]
    finally:
        get_settings.cache_clear()


def test_every_analyzer_is_configured_from_the_environment_and_checked(monkeypatch, tmp_path):
    from pydantic import ValidationError

    from workers.analytics.registry import build_chain
    from workers.analyzer_configs import AnalyzerConfigError, check

    monkeypatch.setenv("VIDFARM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("VIDFARM_ANALYZER_CONFIG__TRACK__LOST_TRACK_SECONDS", "2.5")
    monkeypatch.setenv("VIDFARM_ANALYZER_CONFIG__THERMAL__PERCENTILE", "90")
    monkeypatch.setenv("VIDFARM_ANALYZER_CONFIG__DETECT__GATE__MISSES", "3")
    monkeypatch.setenv("VIDFARM_RECOGNITION_THRESHOLD", "0.4")
    monkeypatch.setenv("VIDFARM_RECHECK_FRAMES", "7")
    settings = Settings()
    assert settings.analyzer_config.track.lost_track_seconds == 2.5     # typed when the settings load
    configs = settings.analyzer_configs()
    assert configs["track"] == {"lost_track_seconds": 2.5} and configs["thermal"] == {"percentile": 90.0}
    assert configs["recognize"]["threshold"] == 0.4     # the flat settings still reach their analyzer
    # a nested entry changes its field only: the flat settings' other gate field stays
    assert configs["detect"]["gate"] == {"enabled": True, "recheck_frames": 7, "misses": 3}
    check(configs)
    track, thermal = build_chain(["track", "thermal"], configs)
    assert track.config.lost_track_seconds == 2.5 and thermal.config.percentile == 90.0

    # A bad built-in analyzer config is a settings error as the settings load (every entry
    # point reports those), not a worker's or a segment's.
    monkeypatch.setenv("VIDFARM_ANALYZER_CONFIG__THERMAL__PERCENTILE", "10")
    with pytest.raises(ValidationError, match=r"analyzer_config\.thermal\.percentile\n.*greater than or equal to 50"):
        Settings()
    monkeypatch.setenv("VIDFARM_ANALYZER_CONFIG__THERMAL__PERCENTILE", "90")
    monkeypatch.setenv("VIDFARM_ANALYZER_CONFIG__TRACK__LOST_TRAKC_SECONDS", "2")
    with pytest.raises(ValidationError, match=r"analyzer_config\.track\.lost_trakc_seconds\n.*Extra inputs"):
        Settings()
    monkeypatch.delenv("VIDFARM_ANALYZER_CONFIG__TRACK__LOST_TRAKC_SECONDS")
    # ... and one the flat settings derive for it, too
    monkeypatch.setenv("VIDFARM_DETECTOR_INPUT", "32")
    with pytest.raises(ValidationError, match=r"analyzer_config\.detect\.input_long_side: Input should be greater"):
        Settings()
    monkeypatch.delenv("VIDFARM_DETECTOR_INPUT")
    # Another name is a plugin's analyzer: checked where plugins load.
    monkeypatch.setenv("VIDFARM_ANALYZER_CONFIG__TELEPORT__X", "1")
    with pytest.raises(AnalyzerConfigError, match="no analyzer named 'teleport'"):
        check(Settings().analyzer_configs())


def test_the_s3_store_needs_a_bucket_and_says_so(monkeypatch, tmp_path):
    from cli.main import main

    monkeypatch.setenv("VIDFARM_BLOB_STORE", "s3")
    monkeypatch.delenv("VIDFARM_S3_BUCKET", raising=False)
    with pytest.raises(ValueError, match="VIDFARM_BLOB_STORE=s3 needs VIDFARM_S3_BUCKET"):
        Settings()
    monkeypatch.setenv("VIDFARM_S3_BUCKET", "farm")
    monkeypatch.setenv("VIDFARM_DATA_DIR", str(tmp_path))
    options = Settings().s3_store_options()
    assert options["bucket"] == "farm" and options["cache_dir"] == tmp_path / "s3-cache"
    monkeypatch.setenv("VIDFARM_BLOB_STORE", "minio")
    get_settings.cache_clear()
    try:
        assert main(["db", "upgrade"]) == 2          # a bad setting: one line, exit status 2
    finally:
        get_settings.cache_clear()
