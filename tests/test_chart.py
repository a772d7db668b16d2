"""The Helm chart, rendered offline (tests/chart_check.py does what `make chart-check` does)."""

from __future__ import annotations

import base64
import copy
import threading
from http.server import ThreadingHTTPServer
from urllib.parse import urlsplit

import helm_python as helm
import pytest
import yaml

from tests import chart_admission, chart_check, chart_netpol, chart_secrets, kube_apiserver


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
    assert autoscaler["command"][-1] == "live,cpu,gpu"
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


def service_links(objects) -> dict[str, str]:
    """The variables Kubernetes puts in a pod for each Service of its namespace unless the pod
    says ``enableServiceLinks: false`` (a Service "vidfarm-flower" gives VIDFARM_FLOWER_PORT...)."""
    links = {}
    for service in (o for o in objects if o["kind"] == "Service"):
        name, port = service["metadata"]["name"].upper().replace("-", "_"), service["spec"]["ports"][0]["port"]
        links |= {f"{name}_SERVICE_HOST": "10.0.0.7", f"{name}_SERVICE_PORT": str(port),
                  f"{name}_PORT": f"tcp://10.0.0.7:{port}", f"{name}_PORT_{port}_TCP_ADDR": "10.0.0.7"}
    return links


def test_farm_pods_take_no_service_links_which_the_settings_would_read(default_objects, gpu_objects, monkeypatch):
    """A release named vidfarm has Services whose links start VIDFARM_: VIDFARM_FLOWER_PORT=tcp://...
    stopped every farm pod at its settings (an int setting)."""
    from pydantic import ValidationError

    from core.settings import Settings

    links = service_links(default_objects)
    assert links["VIDFARM_FLOWER_PORT"].startswith("tcp://")
    for variable, value in links.items():
        monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match="flower_port"):
        Settings()
    for workload in (o for o in default_objects + gpu_objects if o["kind"] in ("Deployment", "StatefulSet", "Job")):
        spec = workload["spec"]["template"]["spec"]
        if any("vidfarm" in container["image"] for container in spec["containers"]):
            assert spec.get("enableServiceLinks") is False, workload["metadata"]["name"]


def test_values_outside_the_schema_are_refused():
    import helm_python as helm

    with pytest.raises(helm.HelmError, match="/web/replicas"):
        chart_check.render({"web": {"replicas": 0}})


# --- credentials -------------------------------------------------------------------------

def test_no_secret_holds_a_fixed_value(default_objects, gpu_objects):
    assert chart_check.fixed_credential_problems(default_objects, chart_check.render({})) == []
    gpu_values = chart_check.values_of(chart_check.VALUE_FILES["GPU values (ci/gpu-values.yaml)"])
    assert chart_check.fixed_credential_problems(gpu_objects, chart_check.render(gpu_values)) == []


def test_chart_check_fails_on_a_values_file_with_a_fixed_password(tmp_path, capsys):
    values = tmp_path / "values.yaml"
    values.write_text('secrets:\n  flowerBasicAuth: "admin:change-me"\n')
    assert chart_check.main([str(values)]) == 1
    assert "secrets: Secret vidfarm-flower: FLOWER_BASIC_AUTH holds a fixed value" in capsys.readouterr().err


def test_chart_check_names_what_the_chart_refuses_in_a_values_file(tmp_path, capsys):
    # README: `python -m tests.chart_check my-values.yaml` checks a values file of your own; one
    # the schema refuses was a HelmValuesError traceback.
    values = tmp_path / "values.yaml"
    values.write_text("autoscaler:\n  cpu:\n    standbyGapQuantile: 1.5\n")
    assert chart_check.main([str(values), str(tmp_path / "missing.yaml")]) == 1
    problems = capsys.readouterr().err.splitlines()
    assert len(problems) == 2
    assert "/autoscaler/cpu/standbyGapQuantile': maximum: got 1.5, want 1" in problems[0]
    assert "missing.yaml" in problems[1]


def test_an_empty_password_in_a_url_is_caught():
    objects = [{"kind": "Secret", "metadata": {"name": "x"}, "stringData": {"REDIS_URL": "redis://:@redis:6379/0"}}]
    assert chart_check.fixed_credential_problems(objects, objects) == ["secrets: Secret x: REDIS_URL holds an empty credential"]


def credentials(objects) -> dict[tuple[str, str], str]:
    return {(name, key): value for name, data in chart_secrets.secret_data(objects).items() for key, value in data.items()}


def test_each_install_generates_its_own_credentials(default_objects):
    first, second = credentials(default_objects), credentials(chart_check.render({}))
    generated = {"vidfarm-web": ("VIDFARM_API_TOKEN", "VIDFARM_SECRET_KEY"), "vidfarm-redis": ("REDISCLI_AUTH",),
                 "vidfarm-postgresql": ("password",)}
    for name, keys in generated.items():
        for key in keys:
            assert len(first[name, key]) == 40 and first[name, key].isalnum()
            assert first[name, key] != second[name, key]
    user, password = first["vidfarm-flower", "FLOWER_BASIC_AUTH"].split(":")
    assert user == "admin" and len(password) == 40 and password not in second["vidfarm-flower", "FLOWER_BASIC_AUTH"]
    # one install, one value: every Secret that carries a credential carries the same one
    redis = first["vidfarm-redis", "REDISCLI_AUTH"]
    assert first["vidfarm-redis", "auth.conf"] == f"requirepass {redis}\n"
    database = first["vidfarm-postgresql", "password"]
    for name in ("vidfarm-web", "vidfarm-worker"):
        assert urlsplit(first[name, "DATABASE_URL"]).password == database


class SecretsApi:
    """A loopback stand-in for the API server that answers `lookup` (discovery of core/v1 and
    GET of one Secret) from the Secrets given: what an upgrade's render reads."""

    def __init__(self, secrets: list[dict], namespace: str = "farm"):
        stored = {name: {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
                         "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}
                  for name, data in chart_secrets.secret_data(secrets).items()}
        prefix = f"/api/v1/namespaces/{namespace}/secrets/"

        class Handler(kube_apiserver._Handler):      # its replies: JSON bodies, Status objects
            def do_GET(self):
                path = self.path.split("?")[0]
                if path == "/api/v1":
                    self._reply(200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1",
                                      "resources": [{"name": "secrets", "singularName": "secret", "namespaced": True,
                                                     "kind": "Secret", "verbs": ["get", "list"]}]})
                elif path.startswith(prefix) and path[len(prefix):] in stored:
                    self._reply(200, stored[path[len(prefix):]])
                else:
                    self._reply(404, kube_apiserver.status(404, "NotFound", f"{path} not found"))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def render_upgrade(self, values: dict) -> list[dict]:
        url = f"http://127.0.0.1:{self.server.server_address[1]}"
        kubeconfig = yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "farm",
            "clusters": [{"name": "farm", "cluster": {"server": url}}],
            "users": [{"name": "farm", "user": {"token": "unused"}}],
            "contexts": [{"name": "farm", "context": {"cluster": "farm", "user": "farm", "namespace": "farm"}}]})
        config = helm.Config(kubeconfig_content=kubeconfig, namespace="farm")
        try:
            manifests = config.render(helm.Chart.load(chart_check.CHART), values, name="vidfarm", namespace="farm",
                                      is_upgrade=True)
        finally:
            config.close()
            self.server.shutdown()
        return [doc for path, text in sorted(manifests.items()) if path.endswith(".yaml")
                for doc in yaml.load_all(text, Loader=yaml.CSafeLoader) if doc]


def test_an_upgrade_keeps_every_credential(default_objects):
    installed = [o for o in default_objects if o["kind"] == "Secret"]
    upgraded = SecretsApi(installed).render_upgrade({})
    assert credentials(upgraded) == credentials(default_objects)


def single_secret_chart(database_url: str | None) -> list[dict]:
    """The Secrets the chart's single-Secret version made (SQLite unless secrets.databaseUrl)."""
    data = {"VIDFARM_API_TOKEN": "the-old-token", "REDIS_URL": "redis://vidfarm-redis:6379/0"}
    return [{"kind": "Secret", "metadata": {"name": "vidfarm"},
             "stringData": data | ({"DATABASE_URL": database_url} if database_url else {})},
            {"kind": "Secret", "metadata": {"name": "vidfarm-flower"}, "stringData": {"basic-auth": "admin:change-me"}}]


def test_an_upgrade_from_the_single_secret_chart_keeps_the_api_token_but_not_the_default_flower_password():
    old = single_secret_chart("postgresql+psycopg://farm:pw@db.example/farm")
    values = {"database": {"type": "external", "external": {"existingSecret": "farm-db"}}}
    upgraded = credentials(SecretsApi(old).render_upgrade(values))
    assert upgraded["vidfarm-web", "VIDFARM_API_TOKEN"] == "the-old-token"
    assert upgraded["vidfarm-flower", "FLOWER_BASIC_AUTH"] != "admin:change-me"


def test_every_component_reaches_redis_with_its_password(default_objects):
    redis = credentials(default_objects)["vidfarm-redis", "REDISCLI_AUTH"]
    for component in set(chart_netpol.REDIS_CLIENTS) - {"worker-gpu"}:      # no GPU workers by default
        workload = next(o for o in default_objects if o["kind"] == "Deployment"
                        and o["metadata"]["name"] == f"vidfarm-{component}")
        url = urlsplit(chart_secrets.pod_env(default_objects, workload["spec"]["template"]["spec"])["REDIS_URL"])
        assert (url.password, url.hostname, url.port) == (redis, "vidfarm-redis", 6379), component
    server = named(default_objects, "StatefulSet", "-redis")["spec"]["template"]["spec"]
    assert server["containers"][0]["command"][:2] == ["redis-server", "/etc/redis/auth.conf"]
    assert {"name": "auth", "mountPath": "/etc/redis", "readOnly": True} in server["containers"][0]["volumeMounts"]
    assert chart_secrets.component_problems(default_objects, "postgresql") == []


def test_a_component_without_the_redis_password_is_caught(default_objects):
    objects = copy.deepcopy(default_objects)
    named(objects, "Secret", "-beat")["stringData"]["REDIS_URL"] = "redis://vidfarm-redis:6379/0"
    assert chart_secrets.component_problems(objects, "postgresql") == [
        "secrets: beat's REDIS_URL does not carry the Redis password"]


def test_workers_hold_no_api_token_and_no_secret_key(default_objects, gpu_objects):
    for objects in (default_objects, gpu_objects):
        for worker in (o for o in objects if o["kind"] == "Deployment" and "-worker-" in o["metadata"]["name"]):
            spec = worker["spec"]["template"]["spec"]
            env = chart_secrets.pod_env(objects, spec)
            assert not set(env) & {"VIDFARM_API_TOKEN", "VIDFARM_SECRET_KEY"}
            assert chart_secrets.secrets_reachable(spec) == {"vidfarm-worker"} | (
                {"farm-database"} if objects is gpu_objects else set())
            assert set(chart_secrets.secret_data(objects)["vidfarm-worker"]) <= {"REDIS_URL", "DATABASE_URL"}
            assert not any("secret" in v or "projected" in v for v in spec["volumes"])
    web_env = chart_secrets.pod_env(default_objects, named(default_objects, "Deployment", "-web")["spec"]["template"]["spec"])
    assert web_env["VIDFARM_SECRET_KEY"] and web_env["VIDFARM_API_TOKEN"]


def test_a_worker_given_the_web_secret_is_caught(default_objects):
    objects = copy.deepcopy(default_objects)
    cpu = named(objects, "Deployment", "-worker-cpu")["spec"]["template"]["spec"]
    cpu["volumes"].append({"name": "keys", "secret": {"secretName": "vidfarm-web"}})
    assert chart_secrets.component_problems(objects, "postgresql") == [
        "secrets: worker-cpu can read web's API token or secret key"]
    cpu["containers"][0]["envFrom"][1]["secretRef"]["name"] = "vidfarm-web"
    assert "secrets: worker-cpu gets VIDFARM_API_TOKEN, which only web may hold" in \
        chart_secrets.component_problems(objects, "postgresql")


def test_no_credential_leaves_its_secret(default_objects):
    assert chart_secrets.leak_problems(default_objects) == []
    objects = copy.deepcopy(default_objects)
    token = credentials(objects)["vidfarm-web", "VIDFARM_API_TOKEN"]
    next(o for o in objects if o["kind"] == "ConfigMap")["data"]["VIDFARM_API_TOKEN"] = token
    assert chart_secrets.leak_problems(objects) == ["secrets: ConfigMap/vidfarm holds a credential of Secret vidfarm-web"]


# --- network policies ----------------------------------------------------------------------

def test_network_policies_allow_exactly_the_table(default_objects, gpu_objects):
    gpu_values = chart_check.values_of(chart_check.VALUE_FILES["GPU values (ci/gpu-values.yaml)"])
    assert chart_netpol.connectivity_problems(default_objects, {}, "farm") == []
    assert chart_netpol.connectivity_problems(gpu_objects, gpu_values, "farm") == []
    cluster, endpoints, _ = chart_netpol.world(gpu_objects, gpu_values, "farm")
    at = {e.name: e for e in endpoints}
    assert cluster.allows(at["worker-gpu"], at["external-redis"], 6379)
    assert cluster.allows(at["worker-gpu"], at["external-database"], 5432)
    assert not cluster.allows(at["beat"], at["external-database"], 5432)
    assert not cluster.allows(at["worker-gpu"], at["internet"], 443)


def without_policy(objects, name) -> list[dict]:
    return [o for o in copy.deepcopy(objects) if not (o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == name)]


def test_a_policy_that_lets_workers_out_is_caught(default_objects):
    objects = without_policy(without_policy(default_objects, "vidfarm-default-deny"), "vidfarm-worker-cpu")
    problems = chart_netpol.connectivity_problems(objects, {}, "farm")
    assert problems == ["network: worker-cpu -> api-server:443/TCP allowed but must be refused",
                        "network: worker-cpu -> api-server:6443/TCP allowed but must be refused",
                        "network: worker-cpu -> internet:80/TCP allowed but must be refused",
                        "network: worker-cpu -> internet:443/TCP allowed but must be refused",
                        "network: worker-cpu -> camera:554/TCP allowed but must be refused",
                        "network: worker-cpu -> camera:80/TCP allowed but must be refused",
                        "network: no NetworkPolicy isolates worker-cpu"]      # web, Redis: their own ingress rules
    # with the default deny still there the worker is cut off, even from what it needs
    problems = chart_netpol.connectivity_problems(without_policy(default_objects, "vidfarm-worker-cpu"), {}, "farm")
    assert "network: worker-cpu -> redis:6379/TCP refused but needed" in problems


def test_a_selector_or_port_that_misses_its_pods_is_caught(default_objects):
    objects = copy.deepcopy(default_objects)
    redis = named(objects, "NetworkPolicy", "-redis")["spec"]
    redis["ingress"][0]["ports"][0]["port"] = 6380
    assert "network: web -> redis:6379/TCP refused but needed" in chart_netpol.connectivity_problems(objects, {}, "farm")
    objects = copy.deepcopy(default_objects)
    named(objects, "NetworkPolicy", "-web")["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] = "www"
    problems = chart_netpol.connectivity_problems(objects, {}, "farm")
    assert "network: NetworkPolicy/vidfarm-web selects no pod of the release" in problems
    assert "network: ingress-controller -> web:8000/TCP refused but needed" in problems


def test_an_empty_peer_list_would_open_web_to_everyone_and_is_never_rendered(default_objects):
    web = named(default_objects, "NetworkPolicy", "-web")["spec"]
    assert all(rule["from"] for rule in web["ingress"])            # metricsFrom is [] by default
    objects = copy.deepcopy(default_objects)
    named(objects, "NetworkPolicy", "-web")["spec"]["ingress"].append({"ports": [{"port": 8000}]})
    problems = chart_netpol.connectivity_problems(objects, {}, "farm")
    assert "network: stranger-here -> web:8000/TCP allowed but must be refused" in problems
    metrics = chart_check.render({"networkPolicy": {"metricsFrom": [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "monitoring"}}}]}})
    assert named(metrics, "NetworkPolicy", "-autoscaler")["spec"]["ingress"] == [{
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        "ports": [{"port": 9102, "protocol": "TCP"}]}]


@pytest.mark.parametrize("selector, labels, matches", [
    ({}, {"a": "1"}, True),
    ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
    ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "2"}, True),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
    ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
    ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": "1"}, False),
])
def test_label_selectors(selector, labels, matches):
    assert chart_netpol.selector_matches(selector, labels) is matches


def test_the_evaluator_reads_peers_and_ports_as_the_api_does():
    Endpoint = chart_netpol.Endpoint
    db = Endpoint("db", "10.244.0.5", "farm", {"role": "db"}, ((5432, "TCP"),), {"pg": 5432})
    app = Endpoint("app", "10.244.0.6", "farm", {"role": "app"})
    app_elsewhere = Endpoint("app", "10.244.9.6", "other", {"role": "app"})
    outside = Endpoint("outside", "198.51.100.9")
    spaces = {"farm": {"kubernetes.io/metadata.name": "farm"}, "other": {"team": "x"}}
    policy = lambda ingress: [{"spec": {"podSelector": {"matchLabels": {"role": "db"}}, "ingress": ingress}}]
    allows = lambda ingress, source, port=5432: chart_netpol.Cluster(policy(ingress), "farm", spaces).allows(source, db, port)
    assert allows([{"from": [{"podSelector": {"matchLabels": {"role": "app"}}}]}], app)
    assert not allows([{"from": [{"podSelector": {"matchLabels": {"role": "app"}}}]}], app_elsewhere)   # own namespace only
    assert allows([{"from": [{"namespaceSelector": {"matchLabels": {"team": "x"}}}]}], app_elsewhere)
    assert not allows([{"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"role": "db"}}}]}], app)
    assert allows([{}], outside)                                                  # no `from`: everyone
    assert not allows([], app)                                                    # isolated, nothing allowed
    assert allows([{"from": [{"ipBlock": {"cidr": "198.51.100.0/24"}}]}], outside)
    assert not allows([{"from": [{"ipBlock": {"cidr": "198.51.100.0/24", "except": ["198.51.100.8/29"]}}]}], outside)
    assert allows([{"ports": [{"port": "pg"}]}], app)                             # a container port's name
    assert allows([{"ports": [{"port": 5000, "endPort": 6000}]}], app)
    assert not allows([{"ports": [{"port": 5432, "protocol": "UDP"}]}], app)


# --- the admission policy on the autoscaler's pod patches ---------------------------------------

def test_the_autoscaler_may_change_only_the_deletion_cost_of_workers(default_objects, gpu_objects):
    assert chart_admission.admission_problems(default_objects, "farm") == []
    assert chart_admission.admission_problems(gpu_objects, "farm") == []
    policy = named(default_objects, "ValidatingAdmissionPolicy", "-farm-autoscaler-pods")
    assert policy["spec"]["failurePolicy"] == "Fail"
    assert policy["spec"]["matchConditions"][0]["expression"] == \
        "request.userInfo.username == 'system:serviceaccount:farm:vidfarm-autoscaler'"
    binding = named(default_objects, "ValidatingAdmissionPolicyBinding", "-farm-autoscaler-pods")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert len(chart_admission.scenarios(default_objects, "farm")) == 17     # with the live worker and ingester


def test_a_policy_bound_to_another_account_is_caught(default_objects):
    objects = copy.deepcopy(default_objects)
    condition = named(objects, "ValidatingAdmissionPolicy", "-autoscaler-pods")["spec"]["matchConditions"][0]
    condition["expression"] = condition["expression"].replace("vidfarm-autoscaler", "someone-else")
    problems = chart_admission.admission_problems(objects, "farm")
    assert "admission: the autoscaler changes a worker's image: admitted, expected refused" in problems


def test_a_policy_that_forgets_the_spec_is_caught(default_objects):
    objects = copy.deepcopy(default_objects)
    spec = named(objects, "ValidatingAdmissionPolicy", "-autoscaler-pods")["spec"]
    spec["validations"] = [v for v in spec["validations"] if v["expression"] != "object.spec == oldObject.spec"]
    assert chart_admission.admission_problems(objects, "farm") == [
        "admission: the autoscaler changes a worker's image: admitted, expected refused",
        "admission: the autoscaler changes a worker's command: admitted, expected refused"]


def test_cel_that_does_not_parse_is_caught(default_objects):
    objects = copy.deepcopy(default_objects)
    named(objects, "ValidatingAdmissionPolicy", "-autoscaler-pods")["spec"]["validations"][0]["expression"] = \
        "object.spec == "
    [problem] = chart_admission.admission_problems(objects, "farm")
    assert problem.startswith("admission: vidfarm-farm-autoscaler-pods: CEL does not parse: 'object.spec == '")


# --- the records: PostgreSQL by default, schema upgrades in a hook Job ----------------------------

def test_postgresql_is_the_default_database(default_objects):
    postgres = named(default_objects, "StatefulSet", "-postgresql")
    assert postgres["spec"]["template"]["spec"]["containers"][0]["image"].startswith("postgres:")
    [claim] = postgres["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    secret = named(default_objects, "Secret", "-postgresql")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    for workload in ("-web", "-worker-ingest", "-worker-cpu"):
        env = chart_secrets.pod_env(default_objects, named(default_objects, "Deployment", workload)["spec"]["template"]["spec"])
        url = urlsplit(env["DATABASE_URL"])
        assert (url.scheme, url.hostname, url.password) == \
            ("postgresql+psycopg", "vidfarm-postgresql", secret["stringData"]["password"])


def test_sqlite_on_the_shared_volume_is_refused_unless_single_node():
    with pytest.raises(helm.HelmRenderError, match="SQLite.*network filesystems.*singleNode"):
        chart_check.render({"database": {"type": "sqlite"}})
    objects = chart_check.render({"database": {"type": "sqlite", "sqlite": {"singleNode": True}}})
    assert not any(o["kind"] == "StatefulSet" and o["metadata"]["name"].endswith("-postgresql") for o in objects)
    assert "DATABASE_URL" not in chart_secrets.secret_data(objects)["vidfarm-worker"]
    job = named(objects, "Job", "-db-migrate")
    assert chart_check.hook_phases(job) == {"post-install", "pre-upgrade"}      # the media volume comes with the release
    assert {"name": "media", "mountPath": "/data"} in job["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert chart_check.security_problems({"database": {"type": "sqlite", "sqlite": {"singleNode": True}}}, objects) == []


def test_an_external_database_needs_its_url():
    with pytest.raises(helm.HelmValuesError, match="/database/external"):
        chart_check.render({"database": {"type": "external"}})
    values = {"database": {"type": "external", "external": {"url": "postgresql+psycopg://farm@db.example/farm"}}}
    assert chart_secrets.secret_data(chart_check.render(values))["vidfarm-worker"]["DATABASE_URL"] == \
        "postgresql+psycopg://farm@db.example/farm"


def test_the_schema_is_upgraded_once_by_a_hook_job_before_the_pods_roll(default_objects, gpu_objects):
    assert chart_check.migration_problems(default_objects, "postgresql") == []
    job = named(default_objects, "Job", "-db-migrate")
    annotations = job["metadata"]["annotations"]
    # the chart's own PostgreSQL does not exist before the release: first install runs post-install
    assert annotations["helm.sh/hook"] == "post-install,pre-upgrade"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    hook_secret = named(default_objects, "Secret", "-db-migrate")
    assert hook_secret["metadata"]["annotations"]["helm.sh/hook"] == annotations["helm.sh/hook"]
    assert int(hook_secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])
    assert set(hook_secret["stringData"]) == {"DATABASE_URL"}
    external = named(gpu_objects, "Job", "-db-migrate")
    assert external["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert chart_check.migration_problems(gpu_objects, "external") == []
    env = chart_secrets.pod_env(gpu_objects, external["spec"]["template"]["spec"])
    assert env["DATABASE_URL"] == "<secret farm-database/url>"     # the operator's Secret, there before install
    spec = external["spec"]
    assert (spec["parallelism"], spec["completions"], spec["template"]["spec"]["restartPolicy"]) == (1, 1, "Never")
    assert spec["template"]["spec"]["containers"][0]["command"] == ["vidfarm", "db", "upgrade"]


def test_a_pre_install_hook_reading_what_the_release_makes_later_is_caught(gpu_objects):
    objects = copy.deepcopy(gpu_objects)
    job = named(objects, "Job", "-db-migrate")["spec"]["template"]["spec"]
    job["containers"][0]["envFrom"] = [{"configMapRef": {"name": "vidfarm"}}, {"secretRef": {"name": "vidfarm-worker"}}]
    assert chart_check.migration_problems(objects, "external") == [
        "migrations: at pre-install the Job reads ConfigMap/vidfarm, which the release has not made yet",
        "migrations: at pre-install the Job reads Secret/vidfarm-worker, which the release has not made yet"]


def test_a_hook_that_could_race_the_pods_is_caught(default_objects):
    objects = copy.deepcopy(default_objects)
    job = named(objects, "Job", "-db-migrate")
    job["metadata"]["annotations"]["helm.sh/hook"] = "pre-install,pre-upgrade"   # before the database exists
    job["spec"]["parallelism"] = 2
    next(o for o in objects if o["kind"] == "ConfigMap")["data"]["VIDFARM_DB_AUTO_UPGRADE"] = "true"
    assert chart_check.migration_problems(objects, "postgresql") == [
        "migrations: the pods would upgrade the schema themselves (VIDFARM_DB_AUTO_UPGRADE is not false)",
        "migrations: the Job runs as hook ['pre-install', 'pre-upgrade'], expected ['post-install', 'pre-upgrade']",
        "migrations: the Job may run more than one pod at once",
        "migrations: at pre-install the Job reads Secret/vidfarm-db-migrate, which the release has not made yet"]


def test_an_upgrade_that_would_start_on_an_empty_database_is_refused():
    with pytest.raises(helm.HelmRenderError, match="records in SQLite on the media volume.*database.sqlite.singleNode"):
        SecretsApi(single_secret_chart(None)).render_upgrade({})
    with pytest.raises(helm.HelmRenderError, match="database of secrets.databaseUrl.*database.type=external"):
        SecretsApi(single_secret_chart("postgresql+psycopg://farm:pw@db.example/farm")).render_upgrade({})
    kept = SecretsApi(single_secret_chart(None)).render_upgrade(
        {"database": {"type": "sqlite", "sqlite": {"singleNode": True}}})
    assert "DATABASE_URL" not in chart_secrets.secret_data(kept)["vidfarm-worker"]


def test_web_believes_the_ingress_as_one_proxy(default_objects):
    """Behind the Ingress every request comes from the controller: without ProxyFix the login
    rate limit would key every user on its address (issue 11 item 5)."""
    config = named(default_objects, "ConfigMap", "vidfarm")["data"]
    assert config["VIDFARM_TRUSTED_PROXIES"] == "1"
    web = named(default_objects, "Deployment", "-web")["spec"]["template"]["spec"]["containers"][0]
    assert any(ref.get("configMapRef") for ref in web["envFrom"])
