"""The kubernetes backend through the official client, against tests/kube_apiserver.py
(a loopback stand-in serving the real API paths and content types; no kube-apiserver runs here)."""

from __future__ import annotations

import pytest
import yaml

from autoscaler.backends import ScaleError
from autoscaler.backends.kubernetes import API_USAGE, DELETION_COST, KubernetesBackend, load_api_client
from core.settings import ScaleSettings
from tests.kube_apiserver import FakeApiServer, FakeCluster

CPU = ScaleSettings(deployment="vidfarm-worker-cpu", queue="cpu")


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
        b = KubernetesBackend(api_client, namespace)
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
