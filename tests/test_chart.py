"""The Helm chart, rendered offline (tests/chart_check.py does what `make chart-check` does)."""

from __future__ import annotations

import copy

import pytest

from tests import chart_check


@pytest.fixture(scope="module")
def default_objects() -> list[dict]:
    return chart_check.render({})


@pytest.fixture(scope="module")
def gpu_objects() -> list[dict]:
    return chart_check.render(chart_check.values_of(chart_check.VALUE_FILES["GPU values (ci/gpu-values.yaml)"]))


def named(objects, kind, suffix) -> dict:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(suffix))


def test_the_chart_passes_chart_check():
    assert chart_check.check() == []


def test_strict_validation_catches_an_unknown_field(default_objects):
    web = copy.deepcopy(named(default_objects, "Deployment", "-web"))
    web["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    [problem] = chart_check.schema_problems([web])
    assert problem.startswith("Deployment/vidfarm-web: spec/template/spec/containers/0:")


def test_role_must_match_the_code_exactly(default_objects):
    objects = copy.deepcopy(default_objects)
    role = named(objects, "Role", "-autoscaler")
    role["rules"][1]["verbs"] = ["list", "patch", "delete"]     # more than the code calls
    role["rules"][0]["verbs"] = ["get"]                         # and less
    problems = chart_check.rbac_problems(objects)
    assert "autoscaler Role lacks what its code calls: patch apps/deployments/scale" in problems
    assert "autoscaler Role grants what its code never calls: delete pods" in problems


def test_workers_outlive_a_segment_and_leave_replicas_to_the_autoscaler(default_objects):
    assert chart_check.worker_problems(default_objects) == []
    objects = copy.deepcopy(default_objects)
    cpu = named(objects, "Deployment", "-worker-cpu")
    cpu["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 30
    cpu["spec"]["replicas"] = 2
    assert chart_check.worker_problems(objects) == [
        "vidfarm-worker-cpu: terminationGracePeriodSeconds not above the 900 s segment time limit",
        "vidfarm-worker-cpu: sets spec.replicas, which the autoscaler owns"]


def test_gpu_values_add_a_gpu_worker_on_gpu_nodes(default_objects, gpu_objects):
    assert not any(o["metadata"]["name"].endswith("-worker-gpu") for o in default_objects)
    spec = named(gpu_objects, "Deployment", "-worker-gpu")["spec"]["template"]["spec"]
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert spec["containers"][0]["image"] == "vidfarm/vidfarm-gpu:0.1.0"
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    autoscaler = named(gpu_objects, "Deployment", "-autoscaler")["spec"]["template"]["spec"]["containers"][0]
    assert autoscaler["command"][-1] == "cpu,gpu"
    env = {e["name"]: e.get("value") for e in autoscaler["env"]}
    assert env["VIDFARM_AUTOSCALE_GPU__DEPLOYMENT"] == "vidfarm-worker-gpu"
    assert env["VIDFARM_AUTOSCALE_GPU__MAX_REPLICAS"] == "4"


def test_external_redis_replaces_the_statefulset(default_objects, gpu_objects):
    command = named(default_objects, "StatefulSet", "-redis")["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[0] == "redis-server" and command[command.index("--appendonly") + 1] == "yes"
    assert not any(o["kind"] == "StatefulSet" for o in gpu_objects)
    for secret in ("-web", "-worker", "-beat", "-autoscaler", "-flower"):
        assert named(gpu_objects, "Secret", secret)["stringData"]["REDIS_URL"] == "redis://redis.example.internal:6379/0"


def test_every_pod_runs_as_non_root(default_objects):
    for d in (o for o in default_objects if o["kind"] in ("Deployment", "StatefulSet")):
        spec = d["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, d["metadata"]["name"]
        for container in spec["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_values_outside_the_schema_are_refused():
    import helm_python as helm

    with pytest.raises(helm.HelmError, match="/web/replicas"):
        chart_check.render({"web": {"replicas": 0}})
