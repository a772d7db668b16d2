"""`make chart-check`: the Helm chart rendered offline (helm-python-sdk, no helm binary, no
cluster) for the default values, a GPU-enabled values file and one for cameras and webhooks, linted, every object validated
with kubernetes-validate --strict for Kubernetes 1.30, the autoscaler's Role compared with
what its code calls (``autoscaler.backends.kubernetes.API_USAGE``), and the security checks:
no fixed credential in any Secret and each component's credentials (tests/chart_secrets.py),
who may talk to whom under the NetworkPolicies (tests/chart_netpol.py), the admission policy
on the autoscaler's pod patches (tests/chart_admission.py), and the schema upgrade hook Job.

    python -m tests.chart_check [VALUES.yaml ...]    exit 1 with one line per problem
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import yaml

from autoscaler.backends.kubernetes import API_USAGE
from tests.chart_admission import admission_problems
from tests.chart_netpol import connectivity_problems
from tests.chart_secrets import component_problems, fixed_credential_problems, leak_problems, secrets_reachable

CHART = Path(__file__).resolve().parents[1] / "helm" / "vidfarm"
KUBE_VERSION = "1.30.0"
NAMESPACE = "farm"
VALUE_FILES = {"default values": None, "GPU values (ci/gpu-values.yaml)": CHART / "ci" / "gpu-values.yaml",
               "live values (ci/live-values.yaml)": CHART / "ci" / "live-values.yaml",
               "S3 values (ci/s3-values.yaml)": CHART / "ci" / "s3-values.yaml"}


def values_of(path: Path | None) -> dict:
    return helm.values_from_yaml(path.read_text()) if path else {}


def render(values: dict, namespace: str = NAMESPACE) -> list[dict]:
    manifests = helm.Chart.load(CHART).render(values, name="vidfarm", namespace=namespace, is_install=True)
    # libyaml's safe loader (PyYAML's pure-Python one took most of a render's time)
    return [doc for path, text in sorted(manifests.items()) if path.endswith((".yaml", ".yml"))
            for doc in yaml.load_all(text, Loader=yaml.CSafeLoader) if doc]


def lint_problems(values: dict) -> list[str]:
    report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBE_VERSION}")
    return [f"lint: {m['path']}: {m['error']}" for m in report["messages"] if m["severity"] >= 2] + \
           [f"lint: {error}" for error in report["errors"]]


# kubernetes-validate reads and parses its schema files again for every object it validates
# (the definitions file alone is megabytes of JSON): read once per process. jsonschema never
# changes the schemas it is given.
kubernetes_validate.utils.schema_contents = lru_cache(maxsize=None)(kubernetes_validate.utils.schema_contents)


def schema_problems(objects: list[dict]) -> list[str]:
    problems = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:     # a jsonschema error, copied
            where = "/".join(str(p) for p in error.path)
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: {where}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: {error.message}")
    return problems


def role_grants(objects: list[dict]) -> set[tuple[str, str, str]]:
    """(api group, resource, verb) the autoscaler's Role grants."""
    grants = set()
    for role in (o for o in objects if o["kind"] == "Role" and o["metadata"]["name"].endswith("-autoscaler")):
        for rule in role.get("rules", []):
            grants |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    return grants


def rbac_problems(objects: list[dict]) -> list[str]:
    used = {(u.api_group, u.resource, u.verb) for u in API_USAGE}
    granted = role_grants(objects)
    fmt = lambda triples: ", ".join(f"{v} {g + '/' if g else ''}{r}" for g, r, v in sorted(triples))
    problems = []
    if used - granted:
        problems.append(f"autoscaler Role lacks what its code calls: {fmt(used - granted)}")
    if granted - used:
        problems.append(f"autoscaler Role grants what its code never calls: {fmt(granted - used)}")
    sa = next((o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount"), None)
    pod = next((o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-autoscaler")), None)
    bound = any(o["kind"] == "RoleBinding" and any(s["name"] == sa for s in o["subjects"]) for o in objects)
    if pod is None or pod["spec"]["template"]["spec"].get("serviceAccountName") != sa or not bound:
        problems.append("autoscaler Deployment does not run as the ServiceAccount its RoleBinding names")
    return problems


def worker_problems(objects: list[dict]) -> list[str]:
    """Workers must outlive their longest segment on SIGTERM, and leave replicas to the autoscaler."""
    config = next(o for o in objects if o["kind"] == "ConfigMap")["data"]
    problems = []
    for d in (o for o in objects if o["kind"] == "Deployment" and "-worker-" in o["metadata"]["name"]):
        name = d["metadata"]["name"]
        task, key = ("stitch", "VIDFARM_STITCH_TIME_LIMIT_S") if name.endswith("-worker-ingest") else \
            ("segment", "VIDFARM_SEGMENT_TIME_LIMIT_S")
        limit = int(config[key])
        if d["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30) <= limit:
            problems.append(f"{name}: terminationGracePeriodSeconds not above the {limit} s {task} time limit")
        if not name.endswith("-worker-ingest") and "replicas" in d["spec"]:
            problems.append(f"{name}: sets spec.replicas, which the autoscaler owns")
        if name.endswith("-worker-gpu"):
            limits = d["spec"]["template"]["spec"]["containers"][0]["resources"].get("limits", {})
            if "nvidia.com/gpu" not in limits:
                problems.append(f"{name}: no nvidia.com/gpu limit")
    return problems


def hook_phases(obj: dict) -> set[str]:
    return set(filter(None, obj["metadata"].get("annotations", {}).get("helm.sh/hook", "").split(",")))


def migration_problems(objects: list[dict], database_type: str) -> list[str]:
    """`vidfarm db upgrade` runs once per install or upgrade, in a hook Job, before the pods
    roll; the pods only check the schema."""
    config = next(o for o in objects if o["kind"] == "ConfigMap")["data"]
    problems = [] if config.get("VIDFARM_DB_AUTO_UPGRADE") == "false" else \
        ["migrations: the pods would upgrade the schema themselves (VIDFARM_DB_AUTO_UPGRADE is not false)"]
    jobs = [o for o in objects if o["kind"] == "Job" and o["metadata"]["name"].endswith("-db-migrate")]
    if not jobs:
        return problems + ["migrations: no db-migrate Job"]
    [job] = jobs
    phases, spec = hook_phases(job), job["spec"]
    install = "pre-install" if database_type == "external" else "post-install"   # after the release made the database
    if phases != {install, "pre-upgrade"}:
        problems.append(f"migrations: the Job runs as hook {sorted(phases)}, expected {sorted({install, 'pre-upgrade'})}")
    if spec.get("parallelism") != 1 or spec.get("completions") != 1 or \
            spec["template"]["spec"].get("restartPolicy") not in ("Never", "OnFailure"):
        problems.append("migrations: the Job may run more than one pod at once")
    if spec["template"]["spec"]["containers"][0]["command"] != ["vidfarm", "db", "upgrade"]:
        problems.append("migrations: the Job does not run `vidfarm db upgrade`")
    if "pre-install" in phases:
        problems += [f"migrations: at pre-install the Job reads {ref}, which the release has not made yet"
                     for ref in release_objects_used_before_install(objects, job)]
    return problems


def release_objects_used_before_install(objects: list[dict], job: dict) -> list[str]:
    """ConfigMaps, Secrets and claims the Job uses that the chart renders as plain (non-hook)
    objects or as later hooks: at pre-install they do not exist yet."""
    weight = lambda o: int(o["metadata"].get("annotations", {}).get("helm.sh/hook-weight", "0"))
    earlier = {(o["kind"], o["metadata"]["name"]) for o in objects
               if "pre-install" in hook_phases(o) and weight(o) < weight(job)}
    rendered = {(o["kind"], o["metadata"]["name"]) for o in objects}
    spec = job["spec"]["template"]["spec"]
    used = {("Secret", n) for n in secrets_reachable(spec)}
    for c in spec["containers"]:
        used |= {("ConfigMap", e["configMapRef"]["name"]) for e in c.get("envFrom", []) if "configMapRef" in e}
    used |= {("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"])
             for v in spec.get("volumes", []) if "persistentVolumeClaim" in v}
    return [f"{kind}/{name}" for kind, name in sorted((used & rendered) - earlier)]


def database_type(values: dict) -> str:
    return (values.get("database") or {}).get("type", "postgresql")


def security_problems(values: dict, objects: list[dict]) -> list[str]:
    """The security and database checks on one render (plus a second one for fixed values)."""
    return fixed_credential_problems(objects, render(values)) + leak_problems(objects) + \
        component_problems(objects, database_type(values)) + \
        connectivity_problems(objects, values, NAMESPACE) + admission_problems(objects, NAMESPACE) + \
        migration_problems(objects, database_type(values))


def check(value_files: dict[str, Path | None] = VALUE_FILES) -> list[str]:
    problems = []
    for label, path in value_files.items():
        try:
            values = values_of(path)
            objects = render(values)
        except (OSError, helm.HelmError) as error:
            # A values file the chart refuses (values.schema.json, a template's `fail`) or that
            # cannot be read: its reason as one problem, not a traceback.
            problems.append(f"{label}: {' '.join(str(error).split())}")
            print(f"chart-check: {label}: not rendered, 1 problem")
            continue
        found = lint_problems(values) + schema_problems(objects) + rbac_problems(objects) + \
            worker_problems(objects) + security_problems(values, objects)
        problems += [f"{label}: {p}" for p in found]
        print(f"chart-check: {label}: {len(objects)} objects rendered, {len(found)} problems")
    return problems


def main(argv: list[str]) -> int:
    value_files = {path: Path(path) for path in argv} if argv else VALUE_FILES
    problems = check(value_files)
    for problem in problems:
        print(f"chart-check: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
