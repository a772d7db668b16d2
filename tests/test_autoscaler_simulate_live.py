"""Cameras and uploads replayed together (``autoscaler.simulate_live``): with live workers of
their own and the cameras' floor, no segment after the first minute (a cold farm's pod start)
takes longer than its recording plus the latency target, whatever the batch does; one shared
pool lets a batch burst hold the cameras' segments up. Both keep to the one cap (a busy batch worker finishing its task aside)."""

from __future__ import annotations

from pathlib import Path

from autoscaler.simulate_live import LiveTrace, compare_live, load_live_trace, segments
from core.settings import CpuWorkerScaling, LiveWorkerScaling

BATCH = CpuWorkerScaling(scale_down_window_s=30, idle_to_zero_s=60)
TRACE = LiveTrace.model_validate({
    "name": "test", "horizon_s": 400, "pod_start_s": 30, "segment_s": 2.0, "cost_per_frame_s": 0.03,
    "max_workers": 6,
    "cameras": [{"on_s": 0, "fps": 15}, {"on_s": 0, "fps": 15}, {"on_s": 150, "fps": 30},
                {"on_s": 200, "fps": 15, "off_s": 300}],
    "batch": [{"t": 60, "tasks": 30, "task_s": 8}, {"t": 220, "tasks": 30, "task_s": 8}]})


def test_live_workers_of_their_own_keep_the_cameras_in_time_through_batch_bursts():
    result = compare_live(TRACE, LiveWorkerScaling(), BATCH, poll_s=5.0)
    ours, shared = result["vidfarm"], result["shared"]
    budget = TRACE.segment_s + LiveWorkerScaling().target_latency_s
    assert ours["segments"] == shared["segments"] == len(segments(TRACE))
    assert ours["live_max_after_first_minute_s"] <= budget, ours
    assert shared["live_max_after_first_minute_s"] > 2 * budget, shared      # behind 8 s batch tasks
    assert ours["live_p95_s"] < shared["live_p95_s"]
    # A busy batch worker is never stopped: a camera added at the cap has its worker beside it
    # until that task ends (on a cluster the pod waits for the room).
    assert shared["most_workers"] <= TRACE.max_workers and ours["most_workers"] <= TRACE.max_workers + 1
    # The price: batch waits longer (the cap's room goes to cameras first) and reserved
    # workers cost worker-seconds.
    assert ours["batch_p95_wait_s"] >= shared["batch_p95_wait_s"]


def test_without_room_for_a_new_camera_its_segments_wait_for_the_pod():
    """The spare camera's room is what serves a camera added while its worker starts."""
    tight = compare_live(TRACE, LiveWorkerScaling(spare_cameras=0, camera_utilization=1.0), BATCH, 5.0)["vidfarm"]
    spare = compare_live(TRACE, LiveWorkerScaling(), BATCH, 5.0)["vidfarm"]
    assert tight["live_max_after_first_minute_s"] > spare["live_max_after_first_minute_s"]


def test_the_bench_trace_loads():
    trace = load_live_trace(Path(__file__).resolve().parents[1] / "bench" / "traces" / "live" / "office-cameras.json")
    assert trace.cameras and trace.batch
