"""The suite's guard against settings cached by one test leaking into the next
(``conftest.settings_follow_environment``). The two tests run in this order in one process:
the first leaves settings cached from an environment its monkeypatch then undoes."""

from __future__ import annotations


def test_a_test_caches_settings_from_its_own_environment(monkeypatch, tmp_path):
    from core.settings import get_settings

    monkeypatch.setenv("VIDFARM_DATA_DIR", str(tmp_path / "elsewhere"))
    get_settings.cache_clear()
    assert get_settings().data_dir == tmp_path / "elsewhere"


def test_the_next_test_reads_the_environment_it_runs_in():
    from core.settings import Settings, get_settings

    assert get_settings().data_dir == Settings().data_dir
    assert "elsewhere" not in str(get_settings().data_dir)
