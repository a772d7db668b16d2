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
    from services import submit
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
        assert submit.default_analyzers() == ["track", "thermal"]
    finally:
        get_settings.cache_clear()
