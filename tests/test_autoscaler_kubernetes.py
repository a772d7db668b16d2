"""The kubernetes backend through the official client, against tests/kube_apiserver.py
(a loopback stand-in serving the real API paths and content types; no kube-apiserver runs here)."""

from __future__ import annotations

import pytest
import yaml

from autoscaler.backends import ApiUnavailable, ScaleError
from autoscaler.backends.kubernetes import API_USAGE, DELETION_COST, KubernetesBackend, Retry, load_api_client
from core.settings import ScaleSettings
from tests.kube_apiserver import Fault, FakeApiServer, FakeCluster

CPU = ScaleSettings(deployment="vidfarm-worker-cpu", queue="cpu")
# Short backoff and timeouts so a test of six retries takes a second, not a minute.
FAST = Retry(attempts=6, base_s=0.05, cap_s=0.2, timeout_s=(1.0, 0.5))


def write_kubeconfig(path, server: str, namespace: str = "farm"):
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "loopback", "cluster": {"server": server}}],
        "users": [{"name": "autoscaler", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": "test", "context": {"cluster": "loopback", "user": "autoscaler",
                                                  "namespace": namespace}}]}))
    return path


@pytest.fixture
def cluster() -> FakeCluster:
    c = FakeCluster(namespace="farm")
    c.add_deployment("vidfarm-worker-cpu", replicas=3, app="worker-cpu")
    for pod in ("worker-cpu-a", "worker-cpu-b", "worker-cpu-c"):
        c.add_pod(pod, app="worker-cpu")
    c.add_pod("web-x", app="web")
    return c


@pytest.fixture
def backend(cluster, tmp_path):
    with FakeApiServer(cluster) as url:
        api_client, namespace = load_api_client(str(write_kubeconfig(tmp_path / "kubeconfig", url)))
        assert namespace == "farm"          # taken from the kubeconfig context
        b = KubernetesBackend(api_client, namespace, retry=FAST)
        yield b
        b.close()


def test_reads_and_raises_replicas_with_a_merge_patch(backend, cluster):
    assert backend.replicas(CPU) == 3
    backend.scale(CPU, 5, busy=set())
    assert cluster.deployments["vidfarm-worker-cpu"]["replicas"] == 5
    patches = [r for r in cluster.requests if r[0] == "patch"]
    assert patches == [("patch", "deployments/scale", "/apis/apps/v1/namespaces/farm/deployments/vidfarm-worker-cpu/scale",
                        "application/merge-patch+json")]   # scale-up touches no pod


def test_scale_down_marks_idle_pods_cheapest_to_delete_first(backend, cluster):
    backend.scale(CPU, 1, busy=backend.busy_workers(CPU, frozenset({"cpu@worker-cpu-b"})))
    costs = {name: pod["annotations"].get(DELETION_COST) for name, pod in cluster.pods.items()}
    assert costs == {"worker-cpu-a": "-1000", "worker-cpu-b": "1000", "worker-cpu-c": "-1000", "web-x": None}
    assert cluster.deployments["vidfarm-worker-cpu"]["replicas"] == 1
    kinds = [(verb, resource, ctype) for verb, resource, _, ctype in cluster.requests if verb == "patch"]
    # every pod annotated (strategic merge) before the replica count goes down (merge patch)
    assert kinds[-1] == ("patch", "deployments/scale", "application/merge-patch+json")
    assert kinds[:-1] == [("patch", "pods", "application/strategic-merge-patch+json")] * 3


def test_a_cost_already_right_is_not_patched_again(backend, cluster):
    cluster.pods["worker-cpu-a"]["annotations"][DELETION_COST] = "-1000"
    backend.scale(CPU, 2, busy=set())
    patched = [path for verb, resource, path, _ in cluster.requests if verb == "patch" and resource == "pods"]
    assert sorted(patched) == ["/api/v1/namespaces/farm/pods/worker-cpu-b", "/api/v1/namespaces/farm/pods/worker-cpu-c"]


def test_unknown_busy_pods_leave_the_costs_alone(backend, cluster):
    cluster.pods["worker-cpu-b"]["annotations"][DELETION_COST] = "1000"     # busy at the last look
    backend.scale(CPU, 1, busy=None)                                         # nobody answered now
    assert [r for r in cluster.requests if r[1] == "pods"] == []
    assert cluster.pods["worker-cpu-b"]["annotations"][DELETION_COST] == "1000"
    assert cluster.deployments["vidfarm-worker-cpu"]["replicas"] == 1


def test_stale_resource_version_409_is_read_again_and_retried(backend, cluster):
    cluster.conflicts_to_inject = 2
    backend.scale(CPU, 6, busy=set())
    assert cluster.deployments["vidfarm-worker-cpu"]["replicas"] == 6
    scale_patches = [r for r in cluster.requests if r[:2] == ("patch", "deployments/scale")]
    scale_reads = [r for r in cluster.requests if r[:2] == ("get", "deployments/scale")]
    assert len(scale_patches) == 3 and len(scale_reads) == 3


def test_endless_conflicts_end_in_one_clear_error(backend, cluster):
    cluster.conflicts_to_inject = 100
    with pytest.raises(ScaleError, match=r"^vidfarm-worker-cpu: replicas kept changing under us \(5 conflicts"):
        backend.scale(CPU, 6, busy=set())


def test_forbidden_is_reported_as_one_line(backend, cluster):
    cluster.forbidden.add(("patch", "deployments/scale"))
    with pytest.raises(ScaleError) as error:
        backend.scale(CPU, 4, busy=set())
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("forbidden to patch deployments/scale vidfarm-worker-cpu in namespace farm")
    assert "Role" in message


def test_missing_deployment_is_reported_as_one_line(backend):
    with pytest.raises(ScaleError, match=r"^not found: get deployments/scale vidfarm-worker-gpu in namespace farm$"):
        backend.replicas(ScaleSettings(deployment="vidfarm-worker-gpu", queue="gpu"))


def test_missing_kubeconfig_is_one_clear_line(tmp_path):
    with pytest.raises(ScaleError, match=r"^no Kubernetes credentials: not running in a pod, and no usable kubeconfig"):
        load_api_client(str(tmp_path / "absent-kubeconfig"))


def test_every_call_the_code_makes_is_declared_in_api_usage(backend, cluster):
    backend.replicas(CPU)
    backend.scale(CPU, 4, busy=set())
    backend.scale(CPU, 1, busy={"worker-cpu-a"})
    made = {(verb, resource) for verb, resource, _, _ in cluster.requests}
    declared = {(use.verb, use.resource) for use in API_USAGE}
    assert made == declared       # nothing undeclared, and nothing declared that is never called


# --- the API misbehaving: every call retried with backoff, and with a timeout -------------

def reads(cluster) -> list[tuple[float, str]]:
    return [(t, fault) for t, verb, fault in cluster.arrivals if verb == "get"]


def test_a_429_burst_is_retried_no_sooner_than_retry_after(backend, cluster):
    cluster.inject(Fault("429", retry_after="1"), times=2)
    assert backend.replicas(CPU) == 3
    tries = reads(cluster)
    assert [fault for _, fault in tries] == ["429", "429", ""]
    assert all(later - earlier >= 1.0 for (earlier, _), (later, _) in zip(tries, tries[1:]))


@pytest.mark.parametrize("fault", ["500", "503", "drop"])
def test_server_errors_and_dropped_connections_are_retried(backend, cluster, fault):
    cluster.inject(Fault(fault), times=3)
    backend.scale(CPU, 5, busy=set())
    assert cluster.deployments["vidfarm-worker-cpu"]["replicas"] == 5
    assert [f for _, f in reads(cluster)] == [fault] * 3 + [""]


def test_a_reply_later_than_the_timeout_is_given_up_on_and_retried(backend, cluster):
    cluster.inject(Fault("slow", delay_s=5.0))
    assert backend.replicas(CPU) == 3
    (first, kind), (second, _) = reads(cluster)[:2]
    assert kind == "slow" and second - first < 5.0     # the client did not wait for the slow reply


def test_a_write_whose_reply_was_lost_is_not_made_twice(backend, cluster):
    # The scale patch takes effect but its reply is lost: the retried patch carries the old
    # resourceVersion (409), and the read after it shows the count already set: no third write.
    cluster.inject(Fault("ok"))                     # the scale's read
    cluster.inject(Fault("lost"))                   # its patch
    backend.scale(CPU, 5, busy=set())
    assert cluster.deployments["vidfarm-worker-cpu"]["replicas"] == 5
    calls = [(verb, resource) for verb, resource, _, _ in cluster.requests]
    assert calls == [("get", "deployments/scale"), ("patch", "deployments/scale"), ("patch", "deployments/scale"),
                     ("get", "deployments/scale")]


def test_every_try_failing_ends_in_api_unavailable(backend, cluster):
    cluster.inject(Fault("500"), times=FAST.attempts)
    with pytest.raises(ApiUnavailable, match=r"^Kubernetes API: get deployments/scale vidfarm-worker-cpu: 500 "
                                             r"Internal Server Error \(after 6 tries\)$"):
        backend.replicas(CPU)
    assert backend.replicas(CPU) == 3               # and the next call is fine


def test_controller_status_writes_make_a_read_then_write_conflict_and_it_is_read_again(backend, cluster):
    cluster.status_writes = 3        # after each change, the controller writes status three times
    backend.scale(CPU, 5, busy=set())
    backend.scale(CPU, 2, busy=set())
    assert cluster.deployments["vidfarm-worker-cpu"]["replicas"] == 2
    patches = [r for r in cluster.requests if r[:2] == ("patch", "deployments/scale")]
    assert len(patches) >= 3         # the second scale met at least one 409 and wrote again
