"""Kubernetes backend: the Deployment ``scale`` subresource and pod deletion costs.

Safe scale-down: before lowering a Deployment's replicas we annotate its pods with
``controller.kubernetes.io/pod-deletion-cost`` (busy pods high, idle pods low), so the
ReplicaSet controller deletes idle pods first. A pod that picks up a task in between still
gets SIGTERM -> Celery warm shutdown within terminationGracePeriodSeconds (the chart sets it
above the segment time limit), and acks_late turns anything worse into a redelivery.

Replica writes carry the resourceVersion we read, so a concurrent change (a ``helm upgrade``,
a person with kubectl) gives 409 Conflict rather than a silent overwrite; we then read the
Deployment again (its pods' deletion costs included) and write once more.

``API_USAGE`` below is the one list of what this code calls; the chart's Role is checked
against it (``make chart-check``), and the tests check every request the code makes is in it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from autoscaler.backends import ScaleError
from core.settings import ScaleSettings

log = logging.getLogger(__name__)

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
BUSY_COST, IDLE_COST = 1000, -1000
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
CONFLICT_RETRIES = 5


@dataclass(frozen=True)
class ApiUse:
    api_group: str      # "" is the core group
    resource: str       # with subresource, as RBAC names it: "deployments/scale"
    verb: str


# Every API call this module makes, one entry per call site below. The chart's Role must
# grant exactly these (tests/test_chart.py and `make chart-check`).
API_USAGE = (
    ApiUse("apps", "deployments/scale", "get"),     # read_namespaced_deployment_scale
    ApiUse("apps", "deployments/scale", "patch"),   # patch_namespaced_deployment_scale
    ApiUse("", "pods", "list"),                     # list_namespaced_pod
    ApiUse("", "pods", "patch"),                    # patch_namespaced_pod (deletion cost)
)


def load_api_client(kubeconfig: str | None = None) -> tuple[client.ApiClient, str | None]:
    """In-cluster credentials when running in a pod, else the kubeconfig; and its namespace."""
    if kubeconfig is None:
        try:
            config.load_incluster_config()
            namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip() if SERVICE_ACCOUNT_NAMESPACE.is_file() else None
            return client.ApiClient(), namespace
        except ConfigException:
            pass
    try:
        configuration = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        _, active = config.list_kube_config_contexts(config_file=kubeconfig)
        return client.ApiClient(configuration), (active or {}).get("context", {}).get("namespace")
    except (ConfigException, FileNotFoundError, OSError) as error:
        where = kubeconfig or "~/.kube/config or $KUBECONFIG"
        raise ScaleError(f"no Kubernetes credentials: not running in a pod, and no usable kubeconfig "
                         f"({where}): {str(error).splitlines()[0] if str(error) else type(error).__name__}")


def node_host(node: str) -> str:
    """Celery node ``cpu@vidfarm-worker-cpu-7d9f-abcde`` -> the pod name (the pod's hostname)."""
    return node.split("@", 1)[-1]


class KubernetesBackend:
    def __init__(self, api_client: client.ApiClient, namespace: str):
        self.api_client = api_client
        self.apps = client.AppsV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self.namespace = namespace

    def _call(self, what: str, function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except ApiException as error:
            if error.status == 403:
                raise ScaleError(f"forbidden to {what} in namespace {self.namespace}: give the autoscaler's "
                                 f"ServiceAccount the Role from the chart (helm/vidfarm/templates/autoscaler-rbac.yaml)")
            if error.status == 404:
                raise ScaleError(f"not found: {what} in namespace {self.namespace}")
            if error.status == 401:
                raise ScaleError(f"unauthorized to {what}: the Kubernetes credentials were refused")
            raise

    def _read_scale(self, target: ScaleSettings) -> client.V1Scale:
        return self._call(f"get deployments/scale {target.deployment}",
                          self.apps.read_namespaced_deployment_scale, target.deployment, self.namespace)

    def replicas(self, target: ScaleSettings) -> int:
        return self._read_scale(target).spec.replicas or 0

    def _pods(self, target: ScaleSettings, selector: str) -> list[client.V1Pod]:
        pods = self._call(f"list pods of {target.deployment}", self.core.list_namespaced_pod,
                          self.namespace, label_selector=selector)
        return [p for p in pods.items if p.metadata.deletion_timestamp is None]

    def busy_workers(self, target: ScaleSettings, busy_nodes: frozenset[str]) -> set[str]:
        # A Celery node's host part is its pod's name: busy pods are those named in busy_nodes.
        return {node_host(node) for node in busy_nodes}

    def mark_deletion_costs(self, target: ScaleSettings, selector: str, busy: set[str]) -> None:
        for pod in self._pods(target, selector):
            cost = str(BUSY_COST if pod.metadata.name in busy else IDLE_COST)
            if (pod.metadata.annotations or {}).get(DELETION_COST) == cost:
                continue
            self._call(f"patch pod {pod.metadata.name}", self.core.patch_namespaced_pod,
                       pod.metadata.name, self.namespace,
                       {"metadata": {"annotations": {DELETION_COST: cost}}}, _content_type=STRATEGIC_MERGE_PATCH)

    def scale(self, target: ScaleSettings, replicas: int, busy: set[str] | None) -> None:
        """``busy`` None: nobody answered the inspection, so we cannot tell idle pods from busy
        ones; the costs are then left as they are rather than marking a busy pod cheap."""
        for _attempt in range(CONFLICT_RETRIES):
            scale = self._read_scale(target)
            current = scale.spec.replicas or 0
            if replicas < current and busy is not None:
                self.mark_deletion_costs(target, scale.status.selector or "", busy)
            body = {"metadata": {"resourceVersion": scale.metadata.resource_version},
                    "spec": {"replicas": replicas}}
            try:
                self._call(f"patch deployments/scale {target.deployment}",
                           self.apps.patch_namespaced_deployment_scale, target.deployment, self.namespace,
                           body, _content_type=MERGE_PATCH)
                return
            except ApiException as error:
                if error.status != 409:
                    raise
                log.info("%s changed while we scaled it (409 conflict): reading it again", target.deployment)
        raise ScaleError(f"{target.deployment}: replicas kept changing under us ({CONFLICT_RETRIES} conflicts in a row)")

    def close(self) -> None:
        self.api_client.close()
