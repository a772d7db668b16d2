"""bench/autoscaler.py end to end on one small trace and a short sweep: it writes its section
of the document (leaving the others), one plot per trace, and a verdict per KEDA setting."""

from __future__ import annotations

import json

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


def test_the_split_accounts_for_every_worker_second_and_the_busy_ones_are_the_tasks():
    from autoscaler import simulate
    from bench.autoscaler_split import split
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
