"""Settings from the environment, as README documents them."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from pydantic import BaseModel

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
    with pytest.raises(ValidationError, match="VIDFARM_ANALYZER_CONFIG__TRACK__LOST_TRAKC_SECONDS is not a setting: "
                                              "did you mean VIDFARM_ANALYZER_CONFIG__TRACK__LOST_TRACK_SECONDS"):
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


@pytest.mark.parametrize("variable,closest", [
    ("VIDFARM_AUTOSCALE_CPU__TARGET_WAIT", "VIDFARM_AUTOSCALE_CPU__TARGET_WAIT_S"),
    ("VIDFARM_AUTOSCALE_GPU__MAX_REPLICA", "VIDFARM_AUTOSCALE_GPU__MAX_REPLICAS"),
    ("VIDFARM_AUTOSCALE_LIVE__TARGET_LATENCY", "VIDFARM_AUTOSCALE_LIVE__TARGET_LATENCY_S"),
    ("VIDFARM_ANALYZER_CONFIG__DETECT__GATE__MISS", "VIDFARM_ANALYZER_CONFIG__DETECT__GATE__MISSES"),
])
def test_a_misspelt_nested_setting_stops_the_start_naming_the_closest(monkeypatch, tmp_path, capsys,
                                                                       variable, closest):
    from cli.main import main

    monkeypatch.setenv("VIDFARM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(variable, "2")
    with pytest.raises(ValueError, match=rf"{variable} is not a setting: did you mean {closest}\?"):
        Settings()
    get_settings.cache_clear()
    try:
        assert main(["db", "current"]) == 2     # before: the default, without a word
    finally:
        get_settings.cache_clear()
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"{variable} is not a setting: did you mean {closest}?" in error


@pytest.mark.parametrize("variable,value,message", [
    # no name like it: those there are
    ("VIDFARM_AUTOSCALE_CPU__ZZZ", "1", r"VIDFARM_AUTOSCALE_CPU__ZZZ is not a setting; VIDFARM_AUTOSCALE_CPU__ "
                                        r"takes: DEPLOYMENT, QUEUE, MIN_REPLICAS, .*, SPARE_CAMERAS \["),
    # given as JSON, the same key is the same mistake
    ("VIDFARM_AUTOSCALE_CPU", '{"max_replica": 3}', "VIDFARM_AUTOSCALE_CPU__MAX_REPLICA is not a setting: "
                                                    "did you mean VIDFARM_AUTOSCALE_CPU__MAX_REPLICAS"),
])
def test_an_unknown_nested_setting_is_refused_however_given(monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=message):
        Settings()


def test_an_autoscaler_setting_made_in_code_refuses_an_unknown_field():
    from pydantic import ValidationError

    from core.settings import ScaleSettings

    with pytest.raises(ValidationError, match="target_wait\n.*Extra inputs are not permitted"):
        ScaleSettings(deployment="w", queue="cpu", target_wait=5)


def test_a_variable_no_setting_reads_is_warned_of_once_naming_the_closest(monkeypatch, caplog):
    monkeypatch.setenv("VIDFARM_SEGMENT_SECOND", "2")
    monkeypatch.setenv("VIDFARM_AUTOSCALE_CPUS__MAX_REPLICAS", "2")
    monkeypatch.setenv("VIDFARM_QQQ", "1")
    monkeypatch.setenv("VIDFARM_TEST_LEASE_S", "5")          # a test's own variable: not a mistake
    with caplog.at_level(logging.WARNING, logger="core.settings"):
        assert Settings().segment_seconds == 4.0
        Settings()                                          # once a process, not every time they load
    warned = [record.getMessage() for record in caplog.records if record.name == "core.settings"]
    assert warned == [
        "VIDFARM_AUTOSCALE_CPUS__MAX_REPLICAS is not a setting (ignored): did you mean "
        "VIDFARM_AUTOSCALE_CPU__MAX_REPLICAS?",
        'VIDFARM_QQQ is not a setting (ignored); README.md, "Settings", lists them',
        "VIDFARM_SEGMENT_SECOND is not a setting (ignored): did you mean VIDFARM_SEGMENT_SECONDS?",
    ]


def test_every_other_variable_the_code_reads_is_known_to_the_settings():
    """The VIDFARM_ variables the tests and benches read for themselves (never through the
    settings) are the ones the settings know not to warn of, no more and no fewer."""
    from core.settings import READ_ELSEWHERE, setting_variables
    from tests.conftest import repo_root

    read = re.compile(r"""(?:environ\.get\(|getenv\(|environ\[)\s*["'](VIDFARM_\w+)["']""")
    root = repo_root()
    folders = ("autoscaler", "bench", "cli", "core", "services", "tasks", "tests", "web", "workers")
    code = [*root.glob("*.py"), *(path for folder in folders for path in (root / folder).rglob("*.py"))]
    names = {name for path in code for name in read.findall(path.read_text())}
    assert "VIDFARM_DATA_DIR" in names and "VIDFARM_MEDIA" in names      # the pattern finds them
    assert names - setting_variables() == READ_ELSEWHERE


def test_a_misspelt_nested_setting_is_named_beside_the_other_bad_settings(monkeypatch, capsys, tmp_path):
    from cli.main import main

    monkeypatch.setenv("VIDFARM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("VIDFARM_AUTOSCALE_CPU__TARGET_WAIT", "120")
    monkeypatch.setenv("VIDFARM_X264_CRF", "99")
    get_settings.cache_clear()
    try:
        assert main(["db", "current"]) == 2
    finally:
        get_settings.cache_clear()
    error = capsys.readouterr().err
    assert error.startswith("vidfarm: error: bad settings ") and error.count("\n") == 1
    assert "autoscale_cpu: Value error, VIDFARM_AUTOSCALE_CPU__TARGET_WAIT is not a setting" in error
    assert "x264_crf: Input should be less than or equal to 51" in error


# README's settings table (its "variable | default | meaning" rows) against the settings.
README = Path(__file__).resolve().parents[1] / "README.md"
UNITS = {None: 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "h": 3600}


def _readme_settings_rows() -> list[tuple[str, str]]:
    """(its variables cell, its default cell) for each row of README's Settings table."""
    section = README.read_text().split("\n## Settings\n", 1)[1]
    table = section.split("\n| variable | default | meaning |\n", 1)[1].split("\n\n", 1)[0]
    return [tuple(line.strip("| ").split(" | ")[:2]) for line in table.splitlines()[1:]]  # after | --- |


def _environment_names() -> dict[str, str]:
    """Each variable Settings reads -> its field (nested models, read as NAME__FIELD, left out;
    REDIS_URL and DATABASE_URL by their conventional names)."""
    names = {"REDIS_URL": "redis_url", "DATABASE_URL": "database_url"}
    for field, info in Settings.model_fields.items():
        nested = isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
        if not nested and info.validation_alias is None:
            names[f"VIDFARM_{field.upper()}"] = field
    return names


def _expanded(names: list[str], known: dict[str, str]) -> list[str]:
    """``..._BACKOFF_S`` after ``VIDFARM_ALERT_WEBHOOK_ATTEMPTS``: the first name's prefix that
    makes a variable Settings reads (else left as written, to fail)."""
    first, out = names[0], []
    for name in names:
        if name.startswith("..._"):
            parts = first.split("_")
            candidates = ("_".join(parts[:cut]) + name[3:] for cut in range(len(parts) - 1, 0, -1))
            name = next((c for c in candidates if c in known), name)
        out.append(name)
    return out


def _documented_default(cell: str):
    """A default as README writes it: `literal` (maybe followed by words), a number with a unit
    (4 GiB, 6 h), "unset" (None) or "empty"; anything else (prose) is not checked: ``...``."""
    if literal := re.match(r"`([^`<]*)`(?: \(.*\))?$", cell):
        return literal.group(1)
    if number := re.fullmatch(r"(\d+(?:\.\d+)?) ?(KiB|MiB|GiB|h)?", cell):
        return float(number.group(1)) * UNITS[number.group(2)]
    if cell.startswith("unset"):
        return None
    return () if cell == "empty" else ...


def _same(documented, default) -> bool:
    if documented is None or documented == ():
        return not default
    if isinstance(default, bool):
        return documented == str(default).lower()
    if isinstance(default, tuple):
        return documented == ",".join(default)
    if isinstance(default, (int, float)):
        return float(documented) == float(default)
    return documented == str(default)


def test_readmes_settings_table_names_every_setting_with_its_default():
    known = _environment_names()
    documented = {}
    for names_cell, default_cell in _readme_settings_rows():
        names = [n for n in re.findall(r"`([^`]+)`", names_cell) if "<" not in n]
        if not names:       # VIDFARM_ANALYZER_CONFIG__<ANALYZER>__<FIELD>
            continue
        # "`A`, `B`" rows give their defaults comma-separated; "`A` / `B`" rows slash-separated
        # (never inside brackets: "unset: boto3's chain (`X` / `Y`)" is one default).
        separator = ", " if "`, `" in names_cell else " / "
        defaults = re.split(re.escape(separator) + r"(?![^(]*\))", default_cell)
        if len(defaults) != len(names):
            defaults = [default_cell] * len(names)
        for name, cell in zip(_expanded(names, known), defaults):
            documented[name] = cell
    assert sorted(set(documented) - set(known)) == [], "README documents variables vidfarm does not read"
    assert sorted(set(known) - set(documented)) == [], "settings missing from README's table"
    wrong = {}
    for name, cell in documented.items():
        info = Settings.model_fields[known[name]]
        value = _documented_default(cell)
        if value is not ... and info.default_factory is None and not _same(value, info.default):
            wrong[name] = (cell, info.default)
    assert wrong == {}, "README's default differs from core/settings.py's"


def test_the_s3_cache_sweep_period_is_a_setting(monkeypatch):
    """An operator trades the bucket's LIST requests against how soon other pods' copies of erased
    data go: VIDFARM_S3_CACHE_SWEEP_S reaches the store (it was a constant)."""
    from core.settings import Settings

    monkeypatch.setenv("VIDFARM_S3_CACHE_SWEEP_S", "120")
    assert Settings().s3_store_options()["sweep_s"] == 120.0
