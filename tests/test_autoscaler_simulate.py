"""`vidfarm autoscale simulate` and `vidfarm autoscale` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoscaler.keda import KedaSettings
from autoscaler.simulate import Bounds, Trace, compare, metrics_only, run_keda, run_vidfarm
from cli.main import main
from core.settings import ScaleSettings, get_settings
from tests.conftest import repo_root
from tests.kube_apiserver import FakeApiServer, FakeCluster
from tests.test_autoscaler_kubernetes import write_kubeconfig

TRACES = repo_root() / "bench" / "traces"
KEYS = {"worker_seconds", "p50_wait_s", "p95_wait_s", "max_wait_s", "interrupted_tasks"}


def simulate(capsys, path: Path, *flags: str) -> tuple[int, str, str]:
    code = main(["autoscale", "simulate", str(path), *flags])
    out, err = capsys.readouterr()
    return code, out, err


def test_one_task_by_hand():
    # One 10 s task, pods serve 5 s after they are asked for. vidfarm: a pod at t=0 (the cost
    # is unknown yet: one worker per task), the task runs 5-15, and the poll at 15 sees the
    # queue idle: zero at once (no idle period by default): 15 worker-seconds. KEDA (its defaults):
    # activated at its first poll (t=0), the list is empty from t=5, so the HPA holds the one
    # pod until the 300 s cooldown, checked every 30 s: zero at t=300.
    trace = Trace(name="one", horizon_s=10, pod_start_s=5, arrivals=[{"t": 0, "tasks": 1, "task_s": 10}])
    result = compare(trace, ScaleSettings(deployment="w", queue="cpu"), poll_s=5)
    assert result["vidfarm"] == {"worker_seconds": 15.0, "p50_wait_s": 5.0, "p95_wait_s": 5.0, "max_wait_s": 5.0,
                                 "interrupted_tasks": 0}
    assert result["keda"] == {"worker_seconds": 300.0, "p50_wait_s": 5.0, "p95_wait_s": 5.0, "max_wait_s": 5.0,
                              "interrupted_tasks": 0}


def test_a_busy_pod_told_to_stop_finishes_its_task_within_the_grace_and_pays_for_it():
    # KEDA with a 0 s cooldown stops the pod at its next poll once the list is empty (t=10):
    # the task (started at 0, 25 s) is in hand; within a 30 s grace it finishes at 25 and the
    # pod is paid until then; with a 10 s grace it is cut at 20 and runs again from scratch
    # (and again: KEDA stops it 10 s into every run, so it never ends).
    trace = Trace(name="grace", horizon_s=1, pod_start_s=0, arrivals=[{"t": 0, "tasks": 1, "task_s": 25}])
    keda = KedaSettings(polling_s=10, cooldown_s=0, window_s=0)
    kept = run_keda(trace, keda, Bounds(max_workers=1, pod_start_s=0, grace_s=30))
    assert (kept["interrupted_tasks"], kept["worker_seconds"], kept["max_wait_s"]) == (0, 25.0, 0.0)
    cut = run_keda(trace, keda, Bounds(max_workers=1, pod_start_s=0, grace_s=10))
    assert cut["interrupted_tasks"] >= 2 and cut["worker_seconds"] > 25.0


def test_keda_interrupts_only_tasks_longer_than_the_grace_and_our_policy_none():
    # Long tasks: the list is empty while they run, so KEDA's metric says 0 and its cooldown
    # ends mid-task; our policy counts running tasks and never stops a busy worker.
    trace = Trace(name="long", horizon_s=100, pod_start_s=0, arrivals=[{"t": 0, "tasks": 2, "task_s": 600}])
    settings = ScaleSettings(deployment="w", queue="cpu")
    short_grace = compare(trace, settings, poll_s=5, bounds=Bounds(max_workers=8, pod_start_s=0, grace_s=30))
    assert short_grace["vidfarm"]["interrupted_tasks"] == 0
    assert short_grace["keda"]["interrupted_tasks"] >= 1
    long_grace = compare(trace, settings, poll_s=5, bounds=Bounds(max_workers=8, pod_start_s=0, grace_s=700))
    assert long_grace["keda"]["interrupted_tasks"] == long_grace["vidfarm"]["interrupted_tasks"] == 0


@pytest.mark.parametrize("name", ["steady", "office-hours", "spike", "clockwork"])
def test_bench_traces_interrupt_nothing_when_tasks_fit_the_grace(capsys, name):
    code, out, err = simulate(capsys, TRACES / f"{name}.json", "--keda-cooldown-s", "30", "--keda-window-s", "0")
    assert code == 0, err
    result = json.loads(out)
    assert set(result) == {"vidfarm", "keda"} and set(result["vidfarm"]) == set(result["keda"]) == KEYS
    assert result["vidfarm"]["interrupted_tasks"] == result["keda"]["interrupted_tasks"] == 0


def test_the_cap_and_grace_come_from_the_flags_else_the_trace(capsys, tmp_path):
    trace = {"name": "burst", "horizon_s": 60, "pod_start_s": 5, "max_workers": 2, "grace_s": 5,
             "arrivals": [{"t": 0, "tasks": 8, "task_s": 20}]}
    path = tmp_path / "trace.json"
    path.write_text(json.dumps(trace))
    capped = json.loads(simulate(capsys, path)[1])
    wider = json.loads(simulate(capsys, path, "--max-workers", "8")[1])
    for side in ("vidfarm", "keda"):
        # 8 tasks of 20 s on 2 workers: the last starts after 3 rounds; on 8, all in the first
        assert capped[side]["max_wait_s"] >= 5 + 3 * 20 > wider[side]["max_wait_s"]
    grace = Bounds.of(Trace.model_validate(trace))
    assert (grace.max_workers, grace.grace_s) == (2, 5)
    assert Bounds.of(Trace.model_validate(trace), max_workers=3, grace_s=0).grace_s == 0


def test_the_target_wait_trades_worker_seconds_for_wait(capsys):
    short, long = (json.loads(simulate(capsys, TRACES / "steady.json", "--target-wait-s", wait)[1])["vidfarm"]
                   for wait in ("20", "120"))
    assert long["worker_seconds"] < short["worker_seconds"] and long["p95_wait_s"] > short["p95_wait_s"]


def test_the_standby_is_up_before_bursts_that_come_regularly_not_through_the_whole_gap():
    # Uploads of 6 tasks of 10 s about every 300 s, pod start 30 s, target 15 s (under a cold
    # start: workers are kept for the next burst). Held from each burst on, the standby idles
    # through the gap; timed from the gaps (up a pod start and a poll before the shortest
    # likely one ends) it serves the same tasks with the same waits for under half the bill.
    trace = Trace(name="regular", horizon_s=7200, pod_start_s=30,
                  arrivals=[{"t": 300.0 * i + (37 * i) % 41, "tasks": 6, "task_s": 10} for i in range(24)])
    bounds = Bounds(max_workers=8, pod_start_s=30, grace_s=30)
    timed, held = (metrics_only(run_vidfarm(trace, ScaleSettings(deployment="w", queue="cpu", target_wait_s=15,
                                                                 standby_bursts=bursts), 5, bounds))
                   for bursts in (10, 1))
    assert timed["worker_seconds"] < 0.5 * held["worker_seconds"], (timed, held)
    assert {k: v for k, v in timed.items() if k != "worker_seconds"} == \
        {k: v for k, v in held.items() if k != "worker_seconds"}


@pytest.mark.parametrize("flags,message", [
    (["--max-workers", "0"], "--max-workers must be at least 1 (got 0)"),
    (["--grace-s", "-1"], "--grace-s must be at least 0 (got -1)"),
    (["--target-wait-s", "0"], "--target-wait-s must be above 0 (got 0)"),
    (["--keda-polling-s", "0"], "--keda-polling-s must be above 0 (got 0)"),
    (["--keda-window-s", "-5"], "--keda-window-s must be at least 0 (got -5)"),
])
def test_a_bad_flag_is_one_clear_line(capsys, flags, message):
    code, out, err = simulate(capsys, TRACES / "spike.json", *flags)
    assert code == 1 and out == "" and err == f"vidfarm: error: {message}\n"


@pytest.mark.parametrize("content,message", [
    (None, "no such file"),
    ("{not json", "not JSON (line 1, column 2"),
    ('{"name": "x", "horizon_s": 10, "pod_start_s": 1}', "not a trace: arrivals: Field required"),
    ('{"name": "x", "horizon_s": 10, "pod_start_s": 1, "arrivals": [{"t": 1, "tasks": 0, "task_s": 1}]}',
     "not a trace: arrivals.0.tasks: Input should be greater than or equal to 1"),
    ('{"name": "x", "horizon_s": 10, "pod_start_s": 1, "arrivals": [{"t": 11, "tasks": 1, "task_s": 1}]}',
     "an arrival at t=11.0 lies after horizon_s=10.0"),
])
def test_a_bad_trace_is_one_clear_line(capsys, tmp_path, content, message):
    path = tmp_path / "trace.json"
    if content is not None:
        path.write_text(content)
    code, out, err = simulate(capsys, path)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"vidfarm: error: {path}: ") and message in err, err


@pytest.fixture
def farm_env(monkeypatch, tmp_path):
    from cli.redis_server import RedisServer

    with RedisServer(tmp_path / "redis") as server:
        monkeypatch.setenv("REDIS_URL", server.url)
        monkeypatch.setenv("VIDFARM_DATA_DIR", str(tmp_path / "data"))
        get_settings.cache_clear()
        yield server
    get_settings.cache_clear()


def test_autoscale_once_on_kubernetes_scales_the_deployment_from_the_queue(capsys, tmp_path, farm_env, caplog):
    import redis

    with redis.Redis.from_url(farm_env.url) as client:
        client.lpush("cpu", *[b"{}"] * 3)              # three waiting messages (contents not read)
    cluster = FakeCluster(namespace="farm")
    cluster.add_deployment("vidfarm-worker-cpu", replicas=0, app="worker-cpu")
    with FakeApiServer(cluster) as url:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url)
        code = main(["autoscale", "--backend", "kubernetes", "--queues", "cpu", "--kubeconfig", str(kubeconfig),
                     "--once"])
    assert code == 0, capsys.readouterr().err
    assert cluster.deployments["vidfarm-worker-cpu"]["replicas"] == 3
    assert "vidfarm-worker-cpu: 0 -> 3 replicas (up: 3 waiting + 0 running need 3)" in caplog.text


def test_autoscale_forbidden_is_one_clear_line(capsys, tmp_path, farm_env):
    cluster = FakeCluster(namespace="farm")
    cluster.add_deployment("vidfarm-worker-cpu", replicas=0, app="worker-cpu")
    cluster.forbidden.add(("get", "deployments/scale"))
    with FakeApiServer(cluster) as url:
        code = main(["autoscale", "--queues", "cpu", "--kubeconfig", str(write_kubeconfig(tmp_path / "k", url)),
                     "--once"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("vidfarm: error: forbidden to get deployments/scale vidfarm-worker-cpu in namespace farm")


def test_autoscale_without_kubeconfig_is_one_clear_line(capsys, tmp_path, farm_env):
    code = main(["autoscale", "--kubeconfig", str(tmp_path / "missing"), "--once"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("vidfarm: error: no Kubernetes credentials: not running in a pod, and no usable kubeconfig")


@pytest.mark.parametrize("redis_url,message", [
    (None, "REDIS_URL is not set: the autoscaler watches a running farm's queues"),
    # Was a redis ConnectionError traceback from the policy state's first read.
    ("redis://127.0.0.1:1/0", "REDIS_URL redis://127.0.0.1:1/0: cannot reach the farm's Redis "
                              "(Error 111 connecting to 127.0.0.1:1. Connection refused.)"),
])
def test_autoscale_without_a_redis_is_one_clear_line(capsys, monkeypatch, redis_url, message):
    if redis_url is None:
        monkeypatch.delenv("REDIS_URL", raising=False)
    else:
        monkeypatch.setenv("REDIS_URL", redis_url)
    get_settings.cache_clear()
    try:
        code = main(["autoscale", "--backend", "local", "--once"])
    finally:
        get_settings.cache_clear()
    assert code == 1
    assert capsys.readouterr().err == f"vidfarm: error: {message}\n"


@pytest.mark.parametrize("env,message", [
    ({"VIDFARM_AUTOSCALE_CPU__MIN_REPLICAS": "5", "VIDFARM_AUTOSCALE_CPU__MAX_REPLICAS": "2"},
     "bad setting autoscale_cpu: Value error, min_replicas 5 > max_replicas 2"),
    ({"VIDFARM_AUTOSCALE_GPU__MAX_STEP_UP": "many"},
     "bad setting autoscale_gpu.max_step_up: Input should be a valid integer"),
    ({"VIDFARM_AUTOSCALE_CPU__STANDBY_GAP_QUANTILE": "1.5"},
     "bad setting autoscale_cpu.standby_gap_quantile: Input should be less than or equal to 1"),
    ({"VIDFARM_AUTOSCALE_CPU__STANDBY_BURSTS": "0"},
     "bad setting autoscale_cpu.standby_bursts: Input should be greater than or equal to 1"),
])
def test_a_bad_autoscale_setting_is_one_clear_line(capsys, monkeypatch, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        code = main(["autoscale", "simulate", str(TRACES / "spike.json")])
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"vidfarm: error: {message}") and err.count("\n") == 1, err
