"""`vidfarm autoscale simulate` and `vidfarm autoscale` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoscaler.simulate import Trace, compare
from cli.main import main
from core.settings import ScaleSettings, get_settings
from tests.conftest import repo_root
from tests.kube_apiserver import FakeApiServer, FakeCluster
from tests.test_autoscaler_kubernetes import write_kubeconfig

TRACES = repo_root() / "bench" / "traces"
KEYS = {"worker_seconds", "p50_wait_s", "p95_wait_s", "max_wait_s", "interrupted_tasks"}


def simulate(capsys, path: Path) -> tuple[int, str, str]:
    code = main(["autoscale", "simulate", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def test_one_task_by_hand():
    # One 10 s task, pods serve 5 s after they are asked for. vidfarm: a pod at t=0, the task
    # runs 5-15, the poll at 15 still sees it, then 60 s idle -> zero at 75. KEDA: a pod at t=0,
    # the list is empty from t=5, so zero after the 300 s cooldown.
    trace = Trace(name="one", horizon_s=10, pod_start_s=5, arrivals=[{"t": 0, "tasks": 1, "task_s": 10}])
    result = compare(trace, ScaleSettings(deployment="w", queue="cpu", idle_to_zero_s=60), poll_s=5)
    assert result["vidfarm"] == {"worker_seconds": 75.0, "p50_wait_s": 5.0, "p95_wait_s": 5.0, "max_wait_s": 5.0,
                                 "interrupted_tasks": 0}
    assert result["keda"]["worker_seconds"] == 300.0 and result["keda"]["max_wait_s"] == 5.0


def test_keda_interrupts_a_running_task_our_policy_does_not():
    # Long tasks: the list is empty while they run, so KEDA's metric says 0 and its cooldown
    # ends mid-task; our policy counts running tasks and never removes a busy worker.
    trace = Trace(name="long", horizon_s=100, pod_start_s=0, arrivals=[{"t": 0, "tasks": 2, "task_s": 600}])
    result = compare(trace, ScaleSettings(deployment="w", queue="cpu"), poll_s=5)
    assert result["vidfarm"]["interrupted_tasks"] == 0
    assert result["keda"]["interrupted_tasks"] >= 1


@pytest.mark.parametrize("name", ["steady", "office-hours", "spike"])
def test_bench_traces_meet_the_targets(capsys, name):
    code, out, err = simulate(capsys, TRACES / f"{name}.json")
    assert code == 0, err
    result = json.loads(out)
    assert set(result) == {"vidfarm", "keda"} and set(result["vidfarm"]) == set(result["keda"]) == KEYS
    ours, keda = result["vidfarm"], result["keda"]
    assert ours["worker_seconds"] <= keda["worker_seconds"]
    assert ours["p95_wait_s"] <= keda["p95_wait_s"]
    assert ours["interrupted_tasks"] == 0


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


def test_autoscale_without_redis_is_one_clear_line(capsys, monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    get_settings.cache_clear()
    try:
        code = main(["autoscale", "--backend", "local", "--once"])
    finally:
        get_settings.cache_clear()
    assert code == 1
    assert capsys.readouterr().err == "vidfarm: error: REDIS_URL is not set: the autoscaler watches a running farm's queues\n"


@pytest.mark.parametrize("env,message", [
    ({"VIDFARM_AUTOSCALE_CPU__MIN_REPLICAS": "5", "VIDFARM_AUTOSCALE_CPU__MAX_REPLICAS": "2"},
     "bad setting autoscale_cpu: Value error, min_replicas 5 > max_replicas 2"),
    ({"VIDFARM_AUTOSCALE_GPU__MAX_STEP_UP": "many"},
     "bad setting autoscale_gpu.max_step_up: Input should be a valid integer"),
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
