"""A loopback stand-in for the Kubernetes API server, for the kubernetes backend's tests.

What it is: a small HTTP server serving the real paths, verbs, content types and JSON shapes
of the calls the autoscaler makes (apps/v1 Deployment ``scale`` subresource, core/v1 pods list
and patch), with the API server's error replies (``Status`` objects) for a stale
resourceVersion (409), a forbidden verb (403) and a patch body that does not match its
content type (400), and 415 for a content type the endpoint does not accept.

Fault mode (``FakeCluster.inject``), what a real API server and its network do to a client:
429 Too Many Requests with Retry-After (API priority and fairness shedding load), 500 and
503 (an apiserver restarting, etcd timing out), a slow reply (past the client's timeout; the
request still takes effect, as on a real server), a connection dropped without a reply, and
a reply lost after the request took effect.
And the Deployment controller's status writes: after each change of replicas, the next
``status_writes`` requests that touch the Deployment each find its resourceVersion bumped
first, as the controller's asynchronous updates of ``status`` bump it on a real apiserver, so
a read-then-write races them and gets 409.

What it is not: a kube-apiserver. No kube-apiserver, kind, k3s, envtest or Docker engine can
run on this machine, so there is no real controller here: replicas change only in this
object and pods are whatever the test puts in it.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

SCALE = re.compile(r"^/apis/apps/v1/namespaces/(?P<ns>[^/]+)/deployments/(?P<name>[^/]+)/scale$")
PODS = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods(?:/(?P<name>[^/]+))?$")
PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml")


@dataclass(frozen=True)
class Fault:
    kind: str     # "429", "500", "503": that reply; "slow": answer late; "drop": no answer;
                  # "lost": take effect, then no answer (the reply lost); "ok": no fault (a placeholder)
    retry_after: str | None = None  # a 429's Retry-After header
    delay_s: float = 0.0            # "slow": how late


STATUS_REASONS = {429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable"}


@dataclass
class FakeCluster:
    namespace: str = "farm"
    deployments: dict[str, dict] = field(default_factory=dict)    # name -> {replicas, selector, rv}
    pods: dict[str, dict] = field(default_factory=dict)           # name -> {labels, annotations}
    forbidden: set[tuple[str, str]] = field(default_factory=set)  # (verb, resource)
    conflicts_to_inject: int = 0     # next N scale patches see someone else's write first
    status_writes: int = 0           # the controller's status writes after each change of replicas
    faults: list[Fault] = field(default_factory=list)             # the next requests' fates, in order
    requests: list[tuple[str, str, str, str | None]] = field(default_factory=list)  # verb, resource, path, type
    arrivals: list[tuple[float, str, str]] = field(default_factory=list)  # (monotonic time, verb, fault or "")

    def add_deployment(self, name: str, replicas: int, app: str) -> None:
        self.deployments[name] = {"replicas": replicas, "selector": f"app={app}", "rv": 1, "pending_status": 0,
                                  "status_replicas": replicas}

    def inject(self, fault: Fault, times: int = 1) -> None:
        self.faults.extend([fault] * times)

    def add_pod(self, name: str, app: str, annotations: dict | None = None) -> None:
        self.pods[name] = {"labels": {"app": app}, "annotations": dict(annotations or {})}


def status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class _Handler(BaseHTTPRequestHandler):
    cluster: FakeCluster
    lock: threading.Lock

    def log_message(self, *_):
        pass

    def _reply(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self, verb: str):
        url = urlparse(self.path)
        if m := SCALE.match(url.path):
            return "deployments/scale", m["ns"], m["name"], url
        if m := PODS.match(url.path):
            return "pods", m["ns"], m["name"], url
        return None, None, None, url

    def _fault(self, verb: str) -> Fault | None:
        """The next injected fault, if any; a status fault is answered here."""
        c = self.cluster
        with self.lock:
            fault = c.faults.pop(0) if c.faults else None
            c.arrivals.append((time.monotonic(), verb, fault.kind if fault else ""))
        if fault is None or not fault.kind.isdigit():
            return fault
        code = int(fault.kind)
        data = json.dumps(status(code, STATUS_REASONS[code], f"injected {code}")).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        if fault.retry_after is not None:
            self.send_header("Retry-After", fault.retry_after)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        return fault

    def _handle(self, verb_of_method: str) -> None:
        resource, ns, name, url = self._route(verb_of_method)
        verb = "list" if (resource == "pods" and name is None and verb_of_method == "get") else verb_of_method
        ctype = self.headers.get("Content-Type")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        c = self.cluster
        fault = self._fault(verb)
        kind = fault.kind if fault is not None else "ok"
        if kind in ("drop", "lost"):
            if kind == "lost":                  # it takes effect; its reply goes nowhere
                reply, self.wfile = self.wfile, io.BytesIO()
                self._apply(verb, resource, ns, name, url, ctype, body)
                self.wfile = reply
            self.close_connection = True        # no status line at all: the client sees the socket close
            return
        if kind == "slow":
            time.sleep(fault.delay_s)           # the client gave up by now; the request still takes effect
        elif kind != "ok":
            return                              # a status fault, answered by _fault
        try:
            self._apply(verb, resource, ns, name, url, ctype, body)
        except (BrokenPipeError, ConnectionResetError):
            pass                                # the client left (it timed out): the effect stays

    def _apply(self, verb, resource, ns, name, url, ctype, body) -> None:
        c = self.cluster
        with self.lock:
            c.requests.append((verb, resource, url.path, ctype))
            if resource is None:
                return self._reply(404, status(404, "NotFound", "the server could not find the requested resource"))
            if (verb, resource) in c.forbidden:
                group = "apps" if resource.startswith("deployments") else ""
                return self._reply(403, status(403, "Forbidden",
                    f'{resource.split("/")[0]} is forbidden: User "system:serviceaccount:{ns}:autoscaler" cannot '
                    f'{verb} resource "{resource}" in API group "{group}" in the namespace "{ns}"'))
            if ns != c.namespace:
                return self._reply(404, status(404, "NotFound", f'namespaces "{ns}" not found'))
            if verb == "patch":
                if ctype not in PATCH_TYPES:
                    return self._reply(415, status(415, "UnsupportedMediaType",
                                                   f"the body of the request was in an unknown format - accepted media "
                                                   f"types include: {', '.join(PATCH_TYPES)}"))
                patch = json.loads(body)
                if ctype == "application/json-patch+json" and not isinstance(patch, list):
                    return self._reply(400, status(400, "BadRequest",
                                                   "json: cannot unmarshal object into Go value of type jsonpatch.Patch"))
            if resource == "deployments/scale":
                return self._scale(verb, name, patch if verb == "patch" else None)
            return self._pods(verb, name, parse_qs(url.query), patch if verb == "patch" else None)

    def _scale_object(self, name: str) -> dict:
        d = self.cluster.deployments[name]
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": name, "namespace": self.cluster.namespace, "resourceVersion": str(d["rv"])},
                "spec": {"replicas": d["replicas"]},
                "status": {"replicas": d["status_replicas"], "selector": d["selector"]}}

    def _scale(self, verb: str, name: str, patch: dict | None) -> None:
        c = self.cluster
        if name not in c.deployments:
            return self._reply(404, status(404, "NotFound", f'deployments.apps "{name}" not found'))
        d = c.deployments[name]
        if d["pending_status"]:        # the controller's status write lands first
            d["pending_status"] -= 1
            d["status_replicas"] = d["replicas"]
            d["rv"] += 1
        if verb == "patch":
            if c.conflicts_to_inject:
                c.conflicts_to_inject -= 1
                d["rv"] += 1          # someone else wrote in between
            sent = (patch.get("metadata") or {}).get("resourceVersion")
            if sent is not None and sent != str(d["rv"]):
                return self._reply(409, status(409, "Conflict",
                    f'Operation cannot be fulfilled on deployments.apps "{name}": the object has been modified; '
                    f'please apply your changes to the latest version and try again'))
            if int(patch["spec"]["replicas"]) != d["replicas"]:
                d["pending_status"] = c.status_writes
            d["replicas"] = int(patch["spec"]["replicas"])
            d["rv"] += 1
        return self._reply(200, self._scale_object(name))

    def _pod_object(self, name: str) -> dict:
        p = self.cluster.pods[name]
        return {"kind": "Pod", "apiVersion": "v1",
                "metadata": {"name": name, "namespace": self.cluster.namespace, "labels": p["labels"],
                             "annotations": p["annotations"]}}

    def _pods(self, verb: str, name: str | None, query: dict, patch: dict | None) -> None:
        c = self.cluster
        if verb == "list":
            wanted = dict(term.split("=", 1) for term in query.get("labelSelector", [""])[0].split(",") if term)
            items = [self._pod_object(n) for n, p in c.pods.items()
                     if all(p["labels"].get(k) == v for k, v in wanted.items())]
            return self._reply(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"},
                                     "items": items})
        if name not in c.pods:
            return self._reply(404, status(404, "NotFound", f'pods "{name}" not found'))
        if verb == "patch":
            c.pods[name]["annotations"].update((patch.get("metadata") or {}).get("annotations") or {})
        return self._reply(200, self._pod_object(name))

    def do_GET(self):
        self._handle("get")

    def do_PATCH(self):
        self._handle("patch")

    def do_PUT(self):
        self._handle("update")


class FakeApiServer:
    """``with FakeApiServer(cluster) as url:`` serves ``cluster`` on a free loopback port."""

    def __init__(self, cluster: FakeCluster):
        handler = type("Handler", (_Handler,), {"cluster": cluster, "lock": threading.Lock()})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *_):
        self.server.shutdown()
        self.server.server_close()
