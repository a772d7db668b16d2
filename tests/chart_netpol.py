"""Who may talk to whom under the chart's NetworkPolicies: a small evaluator of NetworkPolicy
semantics (networking.k8s.io/v1) over the rendered objects, and the table the chart must keep.

The evaluator follows the API's rules: a pod is isolated for a direction once any policy of
its namespace selects it for that direction, and then admits only what some selecting policy's
rules allow; a connection needs the source's egress and the destination's ingress. Peers are
pod selectors (in the policy's namespace), namespace selectors, both (pods in those
namespaces), or IP blocks; ports by number, range (endPort) or container port name. What it
leaves out: traffic from a pod's own node (always allowed, so probes are not modelled) and
reply traffic (allowed for an allowed connection).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

COMPONENT = "app.kubernetes.io/component"
TCP, UDP = "TCP", "UDP"

# Which component (or endpoint outside the release) may open connections to which. Everything
# not listed must be refused: that is the point of the table.
REDIS_CLIENTS = ("web", "worker-ingest", "worker-live", "worker-cpu", "worker-gpu", "camera-ingest", "beat",
                 "autoscaler", "flower")
DATABASE_CLIENTS = ("web", "worker-ingest", "worker-live", "worker-cpu", "worker-gpu", "camera-ingest", "autoscaler",
                    "db-migrate")
STORAGE_CLIENTS = ("web", "worker-ingest", "worker-live", "worker-cpu", "worker-gpu", "camera-ingest")
# A camera on the office network (in the chart's default camera ranges) with RTSP and a web
# page; only the camera ingester may open its RTSP port. The alert webhooks' receivers are on
# the internet: only the ingest workers, which deliver alerts, may reach them, on HTTPS, and
# only when webhooks are set.
CAMERA = ("camera", "192.168.1.64", ((554, TCP), (80, TCP)))
CAMERA_RTSP = {(554, TCP)}
WEBHOOK_PORTS = {(443, TCP)}
SERVERS = ("redis", "postgresql")        # they call nobody, not even DNS


@dataclass(frozen=True)
class Endpoint:
    """A pod (namespace set) or an address outside the cluster (namespace None)."""
    name: str
    ip: str
    namespace: str | None = None
    labels: dict = field(default_factory=dict, hash=False)
    ports: tuple[tuple[int, str], ...] = ()                          # (port, protocol) it listens on
    port_names: dict = field(default_factory=dict, hash=False)       # container port name -> port


def selector_matches(selector: dict | None, labels: dict) -> bool:
    """A LabelSelector: matchLabels and matchExpressions all hold; {} matches everything."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        present, value = e["key"] in labels, labels.get(e["key"])
        held = {"In": present and value in e.get("values", []),
                "NotIn": not present or value not in e.get("values", []),
                "Exists": present, "DoesNotExist": not present}[e["operator"]]
        if not held:
            return False
    return True


class Cluster:
    """The rendered NetworkPolicies of one namespace, and the labels of every namespace."""

    def __init__(self, policies: list[dict], namespace: str, namespace_labels: dict[str, dict]):
        self.policies, self.namespace = policies, namespace
        self.namespace_labels = namespace_labels

    def _peer_matches(self, peer: dict, other: Endpoint) -> bool:
        if "ipBlock" in peer:
            ip = ipaddress.ip_address(other.ip)
            block = peer["ipBlock"]
            return ip in ipaddress.ip_network(block["cidr"]) and \
                not any(ip in ipaddress.ip_network(e) for e in block.get("except", []))
        if other.namespace is None:          # pod and namespace selectors match pods only
            return False
        if "namespaceSelector" in peer:
            in_namespaces = selector_matches(peer["namespaceSelector"], self.namespace_labels[other.namespace])
        else:
            in_namespaces = other.namespace == self.namespace
        return in_namespaces and selector_matches(peer.get("podSelector"), other.labels)

    @staticmethod
    def _port_matches(rule_ports: list | None, port: int, protocol: str, destination: Endpoint) -> bool:
        if not rule_ports:
            return True
        for p in rule_ports:
            if p.get("protocol", TCP) != protocol:
                continue
            if "port" not in p:
                return True
            if isinstance(p["port"], str):
                if destination.port_names.get(p["port"]) == port:
                    return True
            elif p["port"] <= port <= p.get("endPort", p["port"]):
                return True
        return False

    def _selecting(self, pod: Endpoint, direction: str) -> list[dict]:
        if pod.namespace != self.namespace:
            return []
        found = []
        for policy in self.policies:
            spec = policy["spec"]
            types = spec.get("policyTypes") or (["Ingress"] + (["Egress"] if "egress" in spec else []))
            if direction in types and selector_matches(spec["podSelector"], pod.labels):
                found.append(spec)
        return found

    def _side_allows(self, pod: Endpoint, direction: str, other: Endpoint, port: int, protocol: str,
                     destination: Endpoint) -> bool:
        selecting = self._selecting(pod, direction)
        if not selecting:
            return True                      # not isolated in this direction
        rules_key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        return any(self._port_matches(rule.get("ports"), port, protocol, destination)
                   and (not rule.get(peers_key) or any(self._peer_matches(p, other) for p in rule[peers_key]))
                   for spec in selecting for rule in spec.get(rules_key) or [])

    def allows(self, source: Endpoint, destination: Endpoint, port: int, protocol: str = TCP) -> bool:
        egress = source.namespace is None or \
            self._side_allows(source, "Egress", destination, port, protocol, destination)
        ingress = destination.namespace is None or \
            self._side_allows(destination, "Ingress", source, port, protocol, destination)
        return egress and ingress


def release_pods(objects: list[dict], namespace: str) -> list[Endpoint]:
    """One pod per rendered Deployment, StatefulSet and Job, named by its component label."""
    pods = []
    for obj in objects:
        if obj["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        template = obj["spec"]["template"]
        labels = template["metadata"]["labels"]
        ports = [p for c in template["spec"]["containers"] for p in c.get("ports", [])]
        pods.append(Endpoint(labels[COMPONENT], f"10.244.0.{len(pods) + 10}", namespace, labels,
                             tuple((p["containerPort"], p.get("protocol", TCP)) for p in ports),
                             {p["name"]: p["containerPort"] for p in ports if "name" in p}))
    return pods


def _first_address(rule: dict) -> str:
    return str(ipaddress.ip_network(rule["to"][0]["ipBlock"]["cidr"])[0])


def world(objects: list[dict], values: dict, namespace: str) -> tuple[Cluster, list[Endpoint], dict]:
    """The release's pods and what sits around them, and the table of allowed connections:
    {(source, destination): ports or None for all the destination's ports}."""
    ingress_nginx = Endpoint("ingress-controller", "10.244.1.2", "ingress-nginx",
                             {"app.kubernetes.io/name": "ingress-nginx"})
    others = [
        ingress_nginx,
        Endpoint("kube-dns", "10.244.2.2", "kube-system", {"k8s-app": "kube-dns"}, ((53, UDP), (53, TCP))),
        Endpoint("stranger-here", "10.244.0.200", namespace, {"app": "stranger"}),   # same namespace
        Endpoint("stranger-elsewhere", "10.244.3.2", "other", {"app.kubernetes.io/component": "web"}),
        Endpoint("api-server", "192.0.2.1", ports=((443, TCP), (6443, TCP))),
        Endpoint("internet", "203.0.113.7", ports=((80, TCP), (443, TCP))),
        Endpoint(CAMERA[0], CAMERA[1], ports=CAMERA[2]),
    ]
    external = (values.get("networkPolicy") or {}).get("external") or {}
    for kind, rules in external.items():
        for rule in rules:
            ports = tuple((p["port"], p.get("protocol", TCP)) for p in rule.get("ports", []))
            others.append(Endpoint(f"external-{kind}", _first_address(rule), ports=ports))
    pods = release_pods(objects, namespace)
    running = {p.name for p in pods}
    allowed = {(c, "redis"): None for c in REDIS_CLIENTS} | {(c, "postgresql"): None for c in DATABASE_CLIENTS}
    allowed |= {(c, "external-redis"): None for c in REDIS_CLIENTS}
    allowed |= {(c, "external-database"): None for c in DATABASE_CLIENTS}
    allowed |= {(c, "external-storage"): None for c in STORAGE_CLIENTS}
    allowed |= {(c, "kube-dns"): None for c in running - set(SERVERS)}
    allowed |= {("ingress-controller", "web"): None, ("ingress-controller", "flower"): None}
    # networkPolicy.apiServer: by default 0.0.0.0/0 on 443 and 6443, which cannot tell the API
    # server from the internet on those ports; docs/security-chart.md says to narrow it.
    allowed |= {("autoscaler", "api-server"): None, ("autoscaler", "internet"): {(443, TCP)}}
    allowed |= {("camera-ingest", "camera"): CAMERA_RTSP}
    if ((values.get("alerts") or {}).get("webhooks") or {}).get("urls"):
        # HTTPS to any public address cannot tell a receiver from an API server with a public
        # address (the workers hold no token for it: automountServiceAccountToken is false).
        allowed |= {("worker-ingest", "internet"): WEBHOOK_PORTS, ("worker-ingest", "api-server"): WEBHOOK_PORTS}
    namespaces = {ns: {"kubernetes.io/metadata.name": ns}
                  for ns in (namespace, "ingress-nginx", "kube-system", "other")}
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    return Cluster(policies, namespace, namespaces), pods + others, allowed


def connectivity_problems(objects: list[dict], values: dict, namespace: str) -> list[str]:
    """Every connection from every pod to every listening port, against the table: one line
    per connection the policies allow but should not, or refuse but should allow."""
    cluster, endpoints, allowed = world(objects, values, namespace)
    release = {e.name for e in release_pods(objects, namespace)}
    problems = []
    for source in (e for e in endpoints if e.namespace is not None):
        for destination in endpoints:
            if source is destination or not ({source.name, destination.name} & release):
                continue
            for port, protocol in destination.ports:
                ports = allowed.get((source.name, destination.name), ())
                expected = ports is None or (port, protocol) in ports
                if cluster.allows(source, destination, port, protocol) != expected:
                    verdict = "allowed but must be refused" if not expected else "refused but needed"
                    problems.append(f"network: {source.name} -> {destination.name}:{port}/{protocol} {verdict}")
    for pod in (e for e in endpoints if e.name in release):
        if not cluster._selecting(pod, "Ingress") or not cluster._selecting(pod, "Egress"):
            problems.append(f"network: no NetworkPolicy isolates {pod.name}")
    for policy in cluster.policies:
        if not any(selector_matches(policy["spec"]["podSelector"], e.labels) for e in endpoints if e.name in release):
            problems.append(f"network: NetworkPolicy/{policy['metadata']['name']} selects no pod of the release")
    return problems
