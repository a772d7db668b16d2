"""The chart's ValidatingAdmissionPolicy on the autoscaler's pod patches, run offline: every CEL
expression compiled with cel-python (a CEL implementation, not a pattern check), and the
policy applied, as the API server applies it, to sample UPDATE requests made from the
rendered worker and web pods. No API server can run here, so this is the stand-in for one:
match constraints, the binding's namespace, match conditions, then every validation (the
policy has no `variables`; a validation using one would fail to evaluate here and deny).
"""

from __future__ import annotations

import copy
from functools import lru_cache

import celpy

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
_cel = celpy.Environment()


def expressions(policy: dict) -> list[str]:
    spec = policy["spec"]
    return [c["expression"] for c in spec.get("matchConditions", [])] + \
           [v["expression"] for v in spec.get("variables", [])] + \
           [v["expression"] for v in spec.get("validations", [])] + \
           [v["messageExpression"] for v in spec.get("validations", []) if "messageExpression" in v]


@lru_cache(maxsize=None)
def _program(expression: str):
    """Compiled once: the same expressions are evaluated for every sample request."""
    return _cel.program(_cel.compile(expression))


def _holds(expression: str, activation: dict) -> bool:
    """True only for a CEL true: false, a non-boolean and an error (failurePolicy Fail) deny.
    ``activation``: already CEL values (json_to_cel), converted once per request."""
    try:
        result = _program(expression).evaluate(activation)
    except celpy.CELEvalError:
        return False
    return isinstance(result, celpy.celtypes.BoolType) and bool(result)


def decide(policy: dict, binding: dict, request: dict, namespace_labels: dict) -> str | None:
    """None when the request is admitted, else the message of the first failed validation."""
    spec = policy["spec"]
    resource = request["resource"] + (f"/{request['subResource']}" if request["subResource"] else "")
    matched = any(request["operation"] in r["operations"] and request["group"] in r["apiGroups"]
                  and any(resource == n or (n.endswith("/*") and resource.startswith(n[:-1]))
                          for n in r["resources"])
                  for r in spec["matchConstraints"]["resourceRules"])
    selector = (binding["spec"].get("matchResources") or {}).get("namespaceSelector") or {}
    in_scope = all(namespace_labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())
    if not (matched and in_scope):
        return None
    activation = celpy.json_to_cel({"request": request, "object": request["object"], "oldObject": request["oldObject"]})
    if not all(_holds(c["expression"], activation) for c in spec.get("matchConditions", [])):
        return None
    return next((v.get("message", v["expression"]) for v in spec["validations"]
                 if not _holds(v["expression"], activation)), None)


def pod_of(objects: list[dict], component: str, namespace: str) -> dict:
    """A pod as its workload's template would make it."""
    workload = next(o for o in objects if o["kind"] == "Deployment"
                    and o["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") == component)
    template = copy.deepcopy(workload["spec"]["template"])
    metadata = template["metadata"] | {"name": f"{workload['metadata']['name']}-7d9f-x2x", "namespace": namespace,
                                       "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                            "name": f"{workload['metadata']['name']}-7d9f",
                                                            "uid": "0b7c", "controller": True}]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]}


def _changed(pod: dict, change) -> dict:
    new = copy.deepcopy(pod)
    change(new)
    return new


def _annotate(key: str, value: str | None):
    def change(pod):
        annotations = pod["metadata"].setdefault("annotations", {})
        if value is None:
            annotations.pop(key, None)
        else:
            annotations[key] = value
    return change


def request(user: str, old: dict, new: dict, namespace: str, sub_resource: str = "") -> dict:
    return {"operation": "UPDATE", "group": "", "resource": "pods", "subResource": sub_resource,
            "namespace": namespace, "userInfo": {"username": user, "groups": []}, "object": new, "oldObject": old}


def scenarios(objects: list[dict], namespace: str) -> list[tuple[str, dict, bool]]:
    """(what, admission request, should it be admitted) for the policy to decide."""
    autoscaler = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-autoscaler"))
    robot = f"system:serviceaccount:{namespace}:{autoscaler['spec']['template']['spec']['serviceAccountName']}"
    worker = pod_of(objects, "worker-cpu", namespace)
    marked = _changed(worker, _annotate(DELETION_COST, "1000"))
    web = pod_of(objects, "web", namespace)
    other_release = _changed(worker, lambda p: p["metadata"]["labels"].update({"app.kubernetes.io/instance": "other"}))
    image = lambda pod: pod["spec"]["containers"][0].update(image="attacker/miner:latest")
    by_robot = lambda old, change, sub_resource="": request(robot, old, _changed(old, change), namespace, sub_resource)
    components = {o["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component")
                  for o in objects if o["kind"] == "Deployment"}
    more = []
    if "worker-live" in components:
        more.append(("the autoscaler marks a live worker idle",
                     by_robot(pod_of(objects, "worker-live", namespace), _annotate(DELETION_COST, "-1000")), True))
    if "camera-ingest" in components:      # not a worker it scales: a camera ingester is never its to mark
        more.append(("the autoscaler marks a camera ingester",
                     by_robot(pod_of(objects, "camera-ingest", namespace), _annotate(DELETION_COST, "1")), False))
    return more + [
        ("the autoscaler marks a CPU worker idle", by_robot(worker, _annotate(DELETION_COST, "-1000")), True),
        ("the autoscaler changes a worker's deletion cost", by_robot(marked, _annotate(DELETION_COST, "-1000")), True),
        ("the autoscaler removes a worker's deletion cost", by_robot(marked, _annotate(DELETION_COST, None)), True),
        ("the autoscaler changes a worker's image", by_robot(worker, image), False),
        ("the autoscaler changes a worker's command",
         by_robot(worker, lambda p: p["spec"]["containers"][0].update(command=["sh", "-c", "id"])), False),
        ("the autoscaler relabels a worker as web",
         by_robot(worker, lambda p: p["metadata"]["labels"].update({"app.kubernetes.io/component": "web"})), False),
        ("the autoscaler adds another annotation", by_robot(worker, _annotate("evil.example/x", "1")), False),
        ("the autoscaler removes another annotation",
         by_robot(worker, lambda p: p["metadata"]["annotations"].pop("checksum/config")), False),
        ("the autoscaler sets a cost that is no integer", by_robot(worker, _annotate(DELETION_COST, "high")), False),
        ("the autoscaler orphans a worker", by_robot(worker, lambda p: p["metadata"].pop("ownerReferences")), False),
        ("the autoscaler adds a finalizer",
         by_robot(worker, lambda p: p["metadata"].update(finalizers=["example.com/hold"])), False),
        ("the autoscaler marks a web pod", by_robot(web, _annotate(DELETION_COST, "1")), False),
        ("the autoscaler marks another release's worker", by_robot(other_release, _annotate(DELETION_COST, "1")), False),
        ("the autoscaler marks a worker through its status",
         by_robot(worker, _annotate(DELETION_COST, "1"), "status"), False),
        ("an administrator changes a worker's image",
         request("kubernetes-admin", worker, _changed(worker, image), namespace), True),
    ]


def admission_problems(objects: list[dict], namespace: str) -> list[str]:
    policies = [o for o in objects if o["kind"] == "ValidatingAdmissionPolicy"]
    if not any(o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-autoscaler") for o in objects):
        return []
    if len(policies) != 1:
        return [f"admission: {len(policies)} ValidatingAdmissionPolicies, expected the autoscaler's one"]
    [policy] = policies
    name = policy["metadata"]["name"]
    problems = []
    for expression in expressions(policy):
        try:
            _cel.compile(expression)
        except celpy.CELParseError as error:
            problems.append(f"admission: {name}: CEL does not parse: {expression!r}: {error}")
    bindings = [o for o in objects if o["kind"] == "ValidatingAdmissionPolicyBinding" and o["spec"]["policyName"] == name]
    if not bindings or "Deny" not in bindings[0]["spec"]["validationActions"]:
        problems.append(f"admission: no ValidatingAdmissionPolicyBinding denies by {name}")
    if problems:
        return problems
    namespace_labels = {"kubernetes.io/metadata.name": namespace}
    for what, admission_request, admitted in scenarios(objects, namespace):
        refusal = decide(policy, bindings[0], admission_request, namespace_labels)
        if (refusal is None) != admitted:
            outcome = f"refused ({refusal})" if refusal else "admitted"
            problems.append(f"admission: {what}: {outcome}, expected {'admitted' if admitted else 'refused'}")
    return problems
