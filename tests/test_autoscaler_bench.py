"""bench/autoscaler.py end to end on one small trace and a short sweep: it writes its section
of the document (leaving the others), one plot per trace, and a verdict per KEDA setting."""

from __future__ import annotations

import json
import multiprocessing

import pytest

from bench import autoscaler as bench


def test_the_benchmark_writes_its_section_and_plots(tmp_path, monkeypatch):
    traces = tmp_path / "traces"
    traces.mkdir()
    (traces / "burst.json").write_text(json.dumps({
        "name": "two bursts", "horizon_s": 300, "pod_start_s": 10, "max_workers": 4,
        "arrivals": [{"t": 0, "tasks": 6, "task_s": 8}, {"t": 150, "tasks": 3, "task_s": 8}]}))
    monkeypatch.setattr(bench, "TRACES", traces)
    monkeypatch.setattr(bench, "TARGET_WAITS_S", (10, 30, 120))
    monkeypatch.setattr(bench, "KEDA_COOLDOWNS_S", (30, 300))
    monkeypatch.setattr(bench, "KEDA_WINDOWS_S", (0,))
    monkeypatch.setattr(bench, "CURVE_WAITS_S", (30,))
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Throughput\n\nkept as it is\n")
    [result] = bench.run(doc, tmp_path)
    text = doc.read_text()
    assert "## Throughput\n\nkept as it is" in text and bench.HEADING in text
    assert (tmp_path / "autoscaler-burst.png").stat().st_size > 10_000
    assert len(result.rows) == 2 and all(row.bound <= row.keda["worker_seconds"] for row in result.rows)
    assert "| burst | 4, 10 s, 30 s | **" in text and "- Target met for " in text
    for row in result.rows:
        assert f"| {row.cooldown_s:g} / {row.window_s:g} s | {row.keda['worker_seconds']:.0f} |" in text
        # the reactive bound at KEDA's p95: KEDA is one of the scalers it bounds
        assert row.bound <= row.reactive <= row.keda["worker_seconds"]
    assert "| burst | " in text.split("reactive bound above the clairvoyant one")[1]
    assert "above the reactive bound at KEDA's p95" in text


@pytest.fixture
def forkserver_by_default():
    """The platform default of Python 3.14 on Linux, under which a child re-imports the bench
    module and sees none of a test's patches unless the bench forks on purpose."""
    before = multiprocessing.get_start_method(allow_none=True)
    multiprocessing.set_start_method("forkserver", force=True)
    yield
    multiprocessing.set_start_method(before, force=True)


def test_traces_measured_at_once_give_the_same_section(tmp_path, monkeypatch, forkserver_by_default):
    traces = tmp_path / "traces"
    traces.mkdir()
    for name, t in (("a", 0), ("b", 40)):
        (traces / f"{name}.json").write_text(json.dumps({
            "name": name, "horizon_s": 120, "pod_start_s": 10, "max_workers": 2,
            "arrivals": [{"t": t, "tasks": 3, "task_s": 8}]}))
    monkeypatch.setattr(bench, "TRACES", traces)
    monkeypatch.setattr(bench, "TARGET_WAITS_S", (30,))
    monkeypatch.setattr(bench, "KEDA_COOLDOWNS_S", (30,))
    monkeypatch.setattr(bench, "KEDA_WINDOWS_S", (0,))
    monkeypatch.setattr(bench, "CURVE_WAITS_S", (30,))
    texts = []
    for processes in (1, 2):
        doc = tmp_path / f"benchmarks-{processes}.md"
        bench.run(doc, tmp_path, processes)
        texts.append(doc.read_text())
    assert texts[0] == texts[1] and "| a | " in texts[0] and "| b | " in texts[0]


def test_the_split_accounts_for_every_worker_second_and_the_busy_ones_are_the_tasks():
    from autoscaler import simulate
    from bench.autoscaler_split import LIFE, split, split_life
    from core.settings import ScaleSettings

    trace = simulate.Trace.model_validate({"name": "two bursts", "horizon_s": 300, "pod_start_s": 10,
                                           "arrivals": [{"t": 0, "tasks": 6, "task_s": 8},
                                                        {"t": 150, "tasks": 3, "task_s": 8}]})
    bounds = simulate.Bounds.of(trace, default_max_workers=4)
    settings = ScaleSettings(deployment="w", queue="cpu", max_replicas=4, pod_start_s=10, target_wait_s=5)
    metrics, seconds = split(trace, simulate.VidfarmScaler(settings, 5.0), bounds)
    assert sum(seconds.values()) == metrics["worker_seconds"]
    assert seconds["busy"] == 9 * 8 and seconds["starting"] > 0 and seconds["idle"] > 0   # warm: 5 s < a cold start
    assert simulate.World.__name__ == "World"                       # the simulator is left as it was
    # Each pod's idle seconds go to one part of its life; the starts of pods that never served are apart.
    again, same, life = split_life(trace, simulate.VidfarmScaler(settings, 5.0), bounds)
    assert (again, same) == (metrics, seconds)
    assert sum(life[kind] for kind in LIFE if kind != "unused start") == seconds["idle"]
    assert life["unused start"] <= seconds["starting"] and life["idle tail"] > 0 and life["pods"] >= 2
    assert abs(life["p100"] - metrics["max_wait_s"]) <= 0.05 and abs(life["p95"] - metrics["p95_wait_s"]) <= 0.05


def test_the_tuning_rows_give_the_benchmarks_verdicts(tmp_path, monkeypatch):
    """bench/autoscaler_rows.py (for iterating on the policy) reaches the same rows as the
    benchmark of record, with the bound from its cache when it is there."""
    from bench import autoscaler_rows

    trace = tmp_path / "burst.json"
    trace.write_text(json.dumps({"name": "two bursts", "horizon_s": 300, "pod_start_s": 10, "max_workers": 4,
                                 "arrivals": [{"t": 0, "tasks": 6, "task_s": 8}, {"t": 150, "tasks": 3, "task_s": 8}]}))
    monkeypatch.setattr(bench, "TARGET_WAITS_S", (10, 30, 120))
    monkeypatch.setattr(bench, "KEDA_COOLDOWNS_S", (30, 300))
    monkeypatch.setattr(bench, "KEDA_WINDOWS_S", (0, 60))
    from core.settings import get_settings
    settings = get_settings()
    expected = bench.measure(trace, settings.autoscale_cpu, settings.autoscale_poll_s).rows
    # The reactive bound (seconds of CPU each) only where its findings look: window 0.
    assert [r.reactive is not None for r in expected] == [r.window_s == 0 for r in expected]
    cache: dict = {}
    got = autoscaler_rows.rows(trace, cache, tmp_path / "bounds.json")
    assert [(r.cooldown_s, r.window_s, r.target_s, r.bound, r.verdict) for r in got] == \
           [(r.cooldown_s, r.window_s, r.target_s, r.bound, r.verdict) for r in expected]
    assert json.loads((tmp_path / "bounds.json").read_text()) == cache and cache
    cache.update({key: 0.0 for key in cache})                           # cached bounds are used, not recomputed
    assert all(r.bound == 0.0 for r in autoscaler_rows.rows(trace, cache))
