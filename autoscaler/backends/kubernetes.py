"""Kubernetes backend: the Deployment ``scale`` subresource and pod deletion costs.

Safe scale-down: before lowering a Deployment's replicas we annotate its pods with
``controller.kubernetes.io/pod-deletion-cost`` (busy pods high, idle pods low), so the
ReplicaSet controller deletes idle pods first. A pod that picks up a task in between still
gets SIGTERM -> Celery warm shutdown within terminationGracePeriodSeconds (the chart sets it
above the segment time limit), and acks_late turns anything worse into a redelivery.

Replica writes carry the resourceVersion we read, so a concurrent change (a ``helm upgrade``,
a person with kubectl, the Deployment controller writing its status) gives 409 Conflict
rather than a silent overwrite; we then read the Deployment again (its pods' deletion costs
included) and write once more, unless it already has the count we want.

Every call has a request timeout (``Retry.timeout_s``; the client has none by default, and a
call to an API server that stopped answering would hang the loop forever) and is retried with
exponential backoff and full jitter on 429 (waiting at least its Retry-After), 5xx, timeouts
and connection errors; urllib3's own silent retries are off, so this is the one retry policy.
When every try fails, ``ApiUnavailable``: the loop tries again at its next poll.

``API_USAGE`` below is the one list of what this code calls; the chart's Role is checked
against it (``make chart-check``), and the tests check every request the code makes is in it.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from autoscaler.backends import ApiUnavailable, ScaleError
from core.settings import ScaleSettings

log = logging.getLogger(__name__)

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
BUSY_COST, IDLE_COST = 1000, -1000
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
CONFLICT_RETRIES = 5
RETRIED_STATUS = (429, 500, 502, 503, 504)


@dataclass(frozen=True)
class Retry:
    """How hard one API call tries: ``attempts`` in all, the n-th retry after a random delay
    in [0, min(cap_s, base_s * 2**(n-1))] (full jitter: many clients retrying do not retry in
    step), never sooner than a 429's Retry-After (itself capped at ``max_retry_after_s``)."""
    attempts: int = 6
    base_s: float = 0.5
    cap_s: float = 8.0
    max_retry_after_s: float = 60.0
    timeout_s: tuple[float, float] = (5.0, 15.0)     # connect, read: on every call

    def delay(self, attempt: int, rng: random.Random, at_least: float = 0.0) -> float:
        return max(min(at_least, self.max_retry_after_s), rng.uniform(0, min(self.cap_s, self.base_s * 2 ** (attempt - 1))))


def retry_after(error: ApiException) -> float:
    """A 429's Retry-After in seconds (delta-seconds or an HTTP date); 0 when absent."""
    value = (error.headers or {}).get("Retry-After")
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds())
        except (TypeError, ValueError):
            return 0.0


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
    configuration = client.Configuration()
    configuration.retries = False          # no silent urllib3 retries: KubernetesBackend retries
    if kubeconfig is None:
        try:
            config.load_incluster_config(client_configuration=configuration)
            namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip() if SERVICE_ACCOUNT_NAMESPACE.is_file() else None
            return client.ApiClient(configuration), namespace
        except ConfigException:
            pass
    try:
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
    def __init__(self, api_client: client.ApiClient, namespace: str, retry: Retry = Retry(),
                 sleep=time.sleep, rng: random.Random | None = None):
        self.api_client = api_client
        self.apps = client.AppsV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self.namespace = namespace
        self.retry, self.sleep, self.rng = retry, sleep, rng or random.Random()

    def _call(self, what: str, function, *args, **kwargs):
        for attempt in range(1, self.retry.attempts + 1):
            at_least = 0.0
            try:
                return function(*args, _request_timeout=self.retry.timeout_s, **kwargs)
            except ApiException as error:
                if error.status == 403:
                    raise ScaleError(f"forbidden to {what} in namespace {self.namespace}: give the autoscaler's "
                                     f"ServiceAccount the Role from the chart (helm/vidfarm/templates/autoscaler-rbac.yaml)")
                if error.status == 404:
                    raise ScaleError(f"not found: {what} in namespace {self.namespace}")
                if error.status == 401:
                    raise ScaleError(f"unauthorized to {what}: the Kubernetes credentials were refused")
                if error.status not in RETRIED_STATUS:
                    raise
                problem, at_least = f"{error.status} {error.reason}", retry_after(error)
            except (urllib3.exceptions.HTTPError, OSError) as error:    # timeouts, refused, dropped
                problem = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            if attempt == self.retry.attempts:
                raise ApiUnavailable(f"Kubernetes API: {what}: {problem} (after {attempt} tries)")
            delay = self.retry.delay(attempt, self.rng, at_least)
            log.warning("%s: %s; retry %d in %.1f s", what, problem, attempt, delay)
            self.sleep(delay)

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
        for attempt in range(1, CONFLICT_RETRIES + 1):
            scale = self._read_scale(target)
            current = scale.spec.replicas or 0
            if attempt > 1 and current == replicas:
                return                  # our earlier write went through after all (its reply was lost)
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
                self.sleep(self.retry.delay(attempt, self.rng))
        raise ApiUnavailable(f"{target.deployment}: replicas kept changing under us "
                             f"({CONFLICT_RETRIES} conflicts in a row)")

    def close(self) -> None:
        self.api_client.close()
