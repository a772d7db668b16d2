"""The local backend and the observer on a real queue: a private redis-server, real Celery
worker processes (vidfarm's Celery settings, a light task from tests/autoscale_app.py)."""

from __future__ import annotations

import json

import os
import time
from pathlib import Path

import pytest

from autoscaler.backends.local import LocalBackend
from autoscaler.loop import Autoscaler, ScaleMetrics
from autoscaler.observe import QueueObserver, priority_lists
from cli.redis_server import RedisServer
from core.processes import cores_for
from core.settings import ScaleSettings
from tests.autoscale_app import DONE_KEY, RUNS_KEY, app, sleep_then_record
from tests.conftest import child_env, repo_root
from tests.test_cli import processes_with_env

TARGET = ScaleSettings(deployment="test-cpu", queue="cpu", min_replicas=0, max_replicas=2, tasks_per_worker=1,
                       max_step_up=2, scale_down_window_s=0, idle_to_zero_s=0)
GUARD_S = 120   # a hang guard only: the test asserts what happened, never how fast


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    # One server for the module: the test app's producer pool stays connected to it.
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        app.conf.update(broker_url=server.url, result_backend=server.url)
        yield server.url


@pytest.fixture
def observer(redis_url):
    obs = QueueObserver(redis_url, inspect_timeout=1.0)
    obs.redis.flushall()
    yield obs
    obs.close()


@pytest.fixture
def backend(redis_url, tmp_path):
    env = child_env(REDIS_URL=redis_url, VIDFARM_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(repo_root()))
    local = LocalBackend(env, tmp_path / "logs", drain_limit_s=60, app="tests.autoscale_app", pin_threads=1)
    yield local
    local.close(grace=10)


def done_tags(observer) -> list[str]:
    return sorted(tag.decode() for tag in observer.redis.lrange(DONE_KEY, 0, -1))


def until(condition, what: str):
    deadline = time.monotonic() + GUARD_S
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"still waiting for {what} after {GUARD_S} s")
        time.sleep(0.2)


def test_waiting_counts_every_priority_sub_queue(observer):
    for priority in (0, 5, 9):
        sleep_then_record.apply_async(("p", 0), queue="cpu", priority=priority)
    lengths = {name: observer.redis.llen(name) for name in priority_lists("cpu")}
    assert sum(1 for n in lengths.values() if n) >= 2, lengths     # kombu really split them
    load = observer.observe(["cpu", "gpu"])
    assert (load["cpu"].waiting, load["cpu"].running, load["gpu"].waiting) == (3, 0, 0)
    assert not load["cpu"].inspected            # no worker exists to answer


def test_the_observer_reads_each_segment_task_s_frames_from_its_message_and_the_finished_costs_from_the_records(redis_url, tmp_path):
    from fractions import Fraction

    from autoscaler.work import RecordsWork
    from core.records import Records
    from core.segment_job import SegmentJob, SourceMedia

    def segment(job_id: str, index: int) -> tuple:
        """The message of a queued segment task: its frames, one time stamp each."""
        media = SourceMedia(Fraction(1, 30), 30.0, 0, 64, 48, False, timed=True)
        return (SegmentJob(job_id, index, tuple(range(90 + index)), media).to_message(),)

    records = Records(f"sqlite:///{tmp_path / 'vidfarm.db'}")
    records.create_schema()
    gpu_job = records.add_job("b.mp4", "b", options={"queue": "gpu"}).id
    job = records.add_job("a.mp4", "a").id
    for job_id in (job, gpu_job):
        records.record_split(job_id, [{"index": i, "start_frame": 100 * i, "frames": 90 + i, "pts": [], "end_pts": 0}
                                      for i in range(4)], status="processing")
    records.set_segment(job, 0, status="done", seconds=9.0)
    records.set_segment(gpu_job, 0, status="done", seconds=1.0)      # another queue's cost: not ours
    clock = [1000.0]
    observer = QueueObserver(redis_url, inspect_timeout=0.2, work=RecordsWork(records), clock=lambda: clock[0])
    observer.redis.flushall()
    try:
        clock[0] = time.time()
        for index in (1, 2):
            app.send_task("vidfarm.segment", segment(job, index), queue="cpu")
        app.send_task("test.sleep_then_record", ("not-a-segment", 0), queue="cpu")
        first = observer.observe(["cpu"])["cpu"]
        assert first.queued == ((0.0, 91), (0.0, 92), (0.0, None))   # in the order workers take them
        assert first.finished == ((90, 9.0),) and first.arrived == ()  # the first poll cannot tell arrivals
        app.send_task("vidfarm.segment", segment(job, 3), queue="cpu", priority=9)
        clock[0] += 5
        second = observer.observe(["cpu"])["cpu"]
        assert [age for age, _ in second.queued] == [5.0, 5.0, 5.0, 0.0]
        assert second.arrived == (93,) and second.finished == ()
    finally:
        observer.close()


def test_a_busy_worker_finishes_its_task_on_scale_down(backend, observer):
    backend.scale(TARGET, 1, busy=set())
    sleep_then_record.apply_async(("long", 3.0), queue="cpu")
    seen = []    # the observation that saw the busy worker (a later broadcast may go unanswered)
    until(lambda: seen.append(observer.observe(["cpu"])["cpu"]) or seen[-1].busy_nodes,
          "the worker to take the task")
    load = seen[-1]
    assert (load.waiting, load.running) == (0, 1)            # in the unacked hash, not the list
    assert backend.busy_workers(TARGET, load.busy_nodes) == {backend.pools["test-cpu"][0].name}, load

    backend.scale(TARGET, 0, busy=set())                       # SIGTERM, even though it is busy
    assert backend.replicas(TARGET) == 0
    worker = next(iter(backend.draining))
    until(lambda: not worker.alive, "the warm shutdown")
    assert done_tags(observer) == ["long"]                     # finished, not killed and requeued
    assert observer.observe(["cpu"])["cpu"].running == 0


def test_workers_get_cores_of_their_own_and_a_stopped_one_frees_its_cores(backend):
    backend.scale(TARGET, 2, busy=set())
    first, second = backend.pools["test-cpu"]
    assert (first.slot, second.slot) == (0, 1)
    for worker in (first, second):
        assert os.sched_getaffinity(worker.popen.pid) == (cores_for(worker.slot, 1) or os.sched_getaffinity(0))
    backend.scale(TARGET, 1, busy={first.name})              # the idle one stops
    until(lambda: backend.reap() or not backend.draining, "the stopped worker to exit")
    backend.scale(TARGET, 2, busy=set())
    assert sorted(w.slot for w in backend.pools["test-cpu"]) == [0, 1]


def test_workers_started_again_and_again_write_one_log_per_slot(backend, tmp_path):
    """Weeks of scaling up and down left one log file per worker ever started (named by a
    number that never repeats); a log per slot bounds the folder by the worker cap."""
    for _ in range(3):
        backend.scale(TARGET, 2, busy=set())
        backend.scale(TARGET, 0, busy=set())
        until(lambda: backend.reap() or not backend.draining, "the stopped workers to exit")
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["test-cpu-slot0.log", "test-cpu-slot1.log"]


def test_autoscaler_scales_real_workers_0_to_2_to_0_without_losing_a_task(backend, observer):
    metrics = ScaleMetrics()
    scaler = Autoscaler(backend, observer, [TARGET], metrics)
    assert scaler.tick()[0].replicas == 0
    tags = [f"t{i}" for i in range(6)]
    for tag in tags:
        sleep_then_record.apply_async((tag, 1.0), queue="cpu")
    seen = []

    def settled() -> bool:
        seen.append(scaler.tick()[0].replicas)
        return len(done_tags(observer)) == len(tags) and seen[-1] == 0 and not backend.draining

    until(settled, "all tasks done and the pool back at zero")
    assert done_tags(observer) == sorted(tags)                 # each once: none lost, none run twice
    assert seen[0] == 2 and max(seen) == 2                     # 0 -> 2 at once, never above max
    assert seen[-1] == 0 and not any(w.alive for w in backend.workers)
    labels = {"deployment": "test-cpu", "queue": "cpu"}
    sample = metrics.registry.get_sample_value
    assert sample("vidfarm_autoscaler_decisions_total", {**labels, "direction": "up"}) >= 1
    assert sample("vidfarm_autoscaler_decisions_total", {**labels, "direction": "down"}) >= 1
    assert sample("vidfarm_autoscaler_desired_replicas", labels) == 0


def test_embedded_farm_workers_come_from_the_local_autoscaler(tmp_path, face_clip):
    """`vidfarm up`'s farm: an always-on ingest worker, live and CPU workers started and stopped by
    the autoscaler (one live worker always)."""
    import json
    import subprocess
    import sys

    data_dir = tmp_path / "farm"
    env = child_env(VIDFARM_DATA_DIR=str(data_dir), PYTHONPATH=str(repo_root()))
    run = subprocess.run([sys.executable, "-m", "tests.autoscaled_farm_run", str(face_clip.path), str(data_dir)],
                         env=env, cwd=repo_root(), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["status"] == "done", summary["error"]
    assert summary["all_stopped"]
    log_dir = Path(summary["log_dir"])
    log = (log_dir / "autoscaler.log").read_text()
    assert "vidfarm-worker-cpu: 0 -> " in log, log                 # the segments woke the CPU pool
    assert list(log_dir.glob("vidfarm-worker-cpu-slot*.log")), "no CPU worker was started"
    assert "vidfarm-worker-live: 0 -> 1 " in log, log              # the live worker kept, with no camera
    assert not processes_with_env(f"VIDFARM_DATA_DIR={data_dir}"), "CPU workers outlived the farm"


# --- the same policy, simulated and real: a short trace through real workers ---------------

class SleepWork:
    """The test app's records: a ``sleep_then_record(tag, seconds)`` task has ``100 x seconds``
    frames, and the tags it recorded done are its finished tasks (what the job records are to
    vidfarm's segment tasks, ``autoscaler.work.RecordsWork``)."""

    def __init__(self, client, seconds_of: dict[str, float]):
        self.client, self.seconds_of, self.read = client, seconds_of, 0

    def frames(self, tasks):
        return [round(100 * args[1]) if name == "test.sleep_then_record" else None for name, args in tasks]

    def finished(self, queue, since):
        done = [tag.decode() for tag in self.client.lrange(DONE_KEY, self.read, -1)]
        self.read += len(done)
        return [(round(100 * self.seconds_of[tag]), self.seconds_of[tag]) for tag in done]

    def close(self):
        pass


class RecordedBackend(LocalBackend):
    """The local backend, noting each replica count it is asked for and when."""

    def __init__(self, *args, started: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.started, self.log = started, [(0.0, 0)]

    def scale(self, target, replicas, busy):
        self.log.append((time.monotonic() - self.started, replicas))
        super().scale(target, replicas, busy)


# Up to the cap, down to zero, up again, one step down, and a last task arriving just as the
# pool would empty; simulated: 3 workers at 0 s, 0 at 10, 2 at 14, 1 at 28, 0 at 36. (The
# second burst came at 20 s once: six more seconds at zero check nothing more.)
REPLAY = {"name": "replay", "horizon_s": 34, "pod_start_s": 6, "max_workers": 3, "grace_s": 30,
          "arrivals": [{"t": 0, "tasks": 3, "task_s": 4}, {"t": 14, "tasks": 5, "task_s": 4},
                       {"t": 32, "tasks": 1, "task_s": 4}]}
REPLAY_POLICY = ScaleSettings(deployment="test-cpu", queue="cpu", max_replicas=3, max_step_up=3, target_wait_s=15,
                              pod_start_s=6, scale_down_window_s=0, idle_to_zero_s=0)
SHIFT_S = 8     # real workers start in their own time, and a poll's observations age by a poll


def count_at(log: list[tuple[float, int]], t: float) -> int:
    """Replicas at time t of a log of (time, replicas) changes; none before its first entry."""
    return ([0] + [r for when, r in log if when <= t])[-1]


def test_a_trace_through_real_workers_follows_the_simulated_worker_count(redis_url, observer, tmp_path):
    """The arrivals of REPLAY sent for real, the real loop on the local backend deciding with
    the same policy and settings as the simulator: at every second the real worker count
    lies within the simulated counts of the SHIFT_S seconds around it (real tasks end a
    little apart, where the simulated ones end together, so a real step down may pass
    through the counts in between), and both reach the same peak."""
    import threading

    from autoscaler.simulate import Bounds, Trace, VidfarmScaler, replay

    trace = Trace.model_validate(REPLAY)
    simulated = replay(trace, VidfarmScaler(REPLAY_POLICY, poll_s=1.0), Bounds.of(trace))["replicas"]

    seconds_of, started = {}, time.monotonic()
    env = child_env(REDIS_URL=redis_url, VIDFARM_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(repo_root()))
    backend = RecordedBackend(env, tmp_path / "logs", drain_limit_s=60, app="tests.autoscale_app", pin_threads=1,
                              started=started)
    work_observer = QueueObserver(redis_url, inspect_timeout=0.5, work=SleepWork(observer.redis, seconds_of))
    scaler = Autoscaler(backend, work_observer, [REPLAY_POLICY])
    stop = threading.Event()
    loop = threading.Thread(target=scaler.run, args=(1.0, stop), daemon=True)
    loop.start()
    try:
        for number, arrival in enumerate(trace.arrivals):
            time.sleep(max(0.0, started + arrival.t - time.monotonic()))
            for i in range(arrival.tasks):
                seconds_of[f"a{number}-{i}"] = arrival.task_s
                sleep_then_record.apply_async((f"a{number}-{i}", arrival.task_s), queue="cpu")
        until(lambda: len(done_tags(observer)) == len(seconds_of) and backend.log[-1][1] == 0,
              "every task done and the pool back at zero")
    finally:
        stop.set()
        loop.join(10)
        work_observer.close()
        backend.close(grace=10)
    real = backend.log
    assert loop.is_alive() is False and done_tags(observer) == sorted(seconds_of)
    assert max(r for _, r in real) == max(r for _, r in simulated)
    # ... and the workers asked for were there: at the peak, as many ran tasks at once.
    runs = [json.loads(run) for run in observer.redis.lrange(RUNS_KEY, 0, -1)]
    at_once = max(len({w for _, w, begin, end in runs if begin <= t < end}) for _, _, t, _ in runs)
    assert at_once == max(r for _, r in simulated), runs
    end = max(real[-1][0], simulated[-1][0])
    for second in range(int(end) + 1):
        nearby = [count_at(simulated, t) for t in range(second - SHIFT_S, second + SHIFT_S + 1)]
        assert min(nearby) <= count_at(real, second) <= max(nearby), (second, real, simulated)


# --- `vidfarm up`'s pools: live and cpu under one cap, live first ---------------------------

def up_scaling(tmp_path, monkeypatch, workers: int):
    """The targets and shared cap of the autoscaler process `vidfarm up` starts: read from its
    command line and its environment, as that process reads them."""
    from cli.autoscale import targets
    from cli.farm import EmbeddedFarm
    from core.settings import Settings

    farm = EmbeddedFarm(tmp_path / "farm", workers=workers, autoscale=True)
    command = farm.autoscaler_command()
    with monkeypatch.context() as env:
        for name, value in farm.autoscaler_env().items():
            env.setenv(name, value)
        settings = Settings()
    return targets(settings, command[command.index("--queues") + 1], "local"), settings.autoscale_shared_max


class QueueSleepWork(SleepWork):
    """SleepWork per queue: a task's tag starts with its queue's name (``live-3``)."""

    def __init__(self, client, seconds_of):
        super().__init__(client, seconds_of)
        self.read = {}

    def finished(self, queue, since):
        done = [t.decode() for t in self.client.lrange(DONE_KEY, 0, -1) if t.decode().startswith(f"{queue}-")]
        new, self.read[queue] = done[self.read.get(queue, 0):], len(done)
        return [(round(100 * self.seconds_of[tag]), self.seconds_of[tag]) for tag in new]


@pytest.fixture
def up_scaler(redis_url, observer, tmp_path, monkeypatch):
    """`vidfarm up`'s autoscaler (its targets, cap and camera floor) on real workers of the test app."""
    from autoscaler.live_work import camera_rates
    from core.cameras import CameraRegistry

    scaled, shared_max = up_scaling(tmp_path, monkeypatch, workers=2)
    seconds_of = {}
    env = child_env(REDIS_URL=redis_url, VIDFARM_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(repo_root()))
    local = LocalBackend(env, tmp_path / "logs", drain_limit_s=60, app="tests.autoscale_app", pin_threads=1)
    work_observer = QueueObserver(redis_url, inspect_timeout=1.0, work=QueueSleepWork(observer.redis, seconds_of))
    registry = CameraRegistry(observer.redis)
    scaler = Autoscaler(local, work_observer, scaled, cameras=lambda: camera_rates(registry), shared_max=shared_max)
    yield scaler, seconds_of, registry
    work_observer.close()
    local.close(grace=10)


def send(seconds_of: dict, queue: str, count: int, seconds: float) -> None:
    for _ in range(count):
        tag = f"{queue}-{len(seconds_of)}"
        seconds_of[tag] = seconds
        sleep_then_record.apply_async((tag, seconds), queue=queue)


def pool_sizes(scaler) -> dict[str, int]:
    return {t.queue: scaler.backend.replicas(t) for t in scaler.targets}


def test_up_keeps_a_live_worker_and_adds_one_when_the_live_latency_is_over_target(up_scaler, observer):
    """`vidfarm up` served every camera with one worker that nothing sized: a live backlog only
    grew. Its autoscaler now sizes a live pool by the chart's latency policy, first at the cap
    (`--workers 2`: 3 with the live worker always kept), and the cpu pool in what is left."""
    scaler, seconds_of, _ = up_scaler
    assert [t.queue for t in scaler.targets] == ["live", "cpu"] and scaler.shared_max == 3
    scaler.tick()
    assert pool_sizes(scaler) == {"live": 1, "cpu": 0}       # one live worker always, before any camera
    send(seconds_of, "live", 1, 1.0)                          # the live cost per frame, learnt
    until(lambda: scaler.tick() and len(done_tags(observer)) == 1, "the first live segment done")
    send(seconds_of, "live", 3, 2.0)                          # one worker: the last done after 6 s > 3 s
    send(seconds_of, "cpu", 6, 2.0)                           # and an upload's backlog at once
    seen = []

    def settled() -> bool:
        live, cpu = scaler.tick()
        seen.append((live, cpu, pool_sizes(scaler)))
        return len(done_tags(observer)) == len(seconds_of)

    until(settled, "every task done")
    assert max(sizes["live"] for _, _, sizes in seen) >= 2, seen         # a second live worker started
    first_up = next(live for live, _, sizes in seen if live.replicas >= 2)
    assert "latency" in first_up.reason, first_up.reason                 # for the latency, not a count
    # The live pool was decided first: the cpu backlog got what it left of the cap, never more
    # (but for busy cpu workers the cap lowered, held until their task ends).
    assert all(cpu.replicas <= 3 - live.replicas or cpu.reason.startswith("hold") for live, cpu, _ in seen), seen
    assert max(sizes["cpu"] for _, _, sizes in seen) >= 1                 # uploads were served too


def test_up_s_cpu_backlog_leaves_the_registered_cameras_their_live_workers(up_scaler, observer):
    scaler, seconds_of, registry = up_scaler
    for n in range(2):
        registry.add(f"Cam {n}", f"rtsp://cam/{n}")        # before their first segment: one worker each
    send(seconds_of, "cpu", 6, 2.0)
    for _ in range(2):
        scaler.tick()
    assert pool_sizes(scaler) == {"live": 2, "cpu": 1}     # the cap's third worker only
    assert all(w.alive for w in scaler.backend.pools["vidfarm-worker-live"])
