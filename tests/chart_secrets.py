"""The chart's credentials, checked on the rendered objects: no Secret holds a value that is the
same on every install (a fixed default), no credential appears outside a Secret, every
component's Redis URL carries the Redis password, and each component can read only what it
needs (the admin token and the cookie-signing key reach web alone)."""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

import yaml

from tests.chart_netpol import COMPONENT, DATABASE_CLIENTS, REDIS_CLIENTS

WEB_ONLY = ("VIDFARM_API_TOKEN", "VIDFARM_SECRET_KEY")
WORKLOADS = ("Deployment", "StatefulSet", "Job")


def secret_data(objects: list[dict]) -> dict[str, dict[str, str]]:
    """Secret name -> {key: value}, from stringData and (decoded) data."""
    found = {}
    for s in (o for o in objects if o["kind"] == "Secret"):
        data = {k: base64.b64decode(v).decode() for k, v in (s.get("data") or {}).items()}
        found[s["metadata"]["name"]] = data | (s.get("stringData") or {})
    return found


def credentials_in(value: str) -> list[str]:
    """The secret part of a Secret's value: a URL's password (a URL without one holds none),
    else the whole value (a token, a key, 'user:password', a config file)."""
    url = urlsplit(value)
    if url.scheme and url.netloc:
        return [url.password] if url.password is not None else []
    return [value]


def fixed_credential_problems(first: list[dict], second: list[dict]) -> list[str]:
    """Two renders of the same values: a credential they share is the same on every install
    (`lookup` finds nothing offline, so each render generates afresh what the chart generates)."""
    again = secret_data(second)
    problems = []
    for name, data in sorted(secret_data(first).items()):
        for key, value in sorted(data.items()):
            for credential in credentials_in(value):
                if not credential:
                    problems.append(f"secrets: Secret {name}: {key} holds an empty credential")
                elif credential in credentials_in(again.get(name, {}).get(key, "")):
                    problems.append(f"secrets: Secret {name}: {key} holds a fixed value, the same on every "
                                    f"install; leave it unset and the chart generates one")
    return problems


def leak_problems(objects: list[dict]) -> list[str]:
    """No credential of a Secret in any other object (a ConfigMap, an env value, a command)."""
    credentials = {c: name for name, data in secret_data(objects).items()
                   for value in data.values() for c in credentials_in(value) if len(c) >= 8}
    problems = []
    for obj in (o for o in objects if o["kind"] != "Secret"):
        text = yaml.dump(obj, Dumper=yaml.CSafeDumper)      # libyaml: the pure-Python dumper is slow
        problems += [f"secrets: {obj['kind']}/{obj['metadata']['name']} holds a credential of Secret {name}"
                     for credential, name in credentials.items() if credential in text]
    return problems


def secrets_reachable(pod_spec: dict) -> set[str]:
    """Names of the Secrets a pod reads: envFrom, env valueFrom, secret and projected volumes."""
    names = set()
    for c in pod_spec.get("initContainers", []) + pod_spec["containers"]:
        names |= {e["secretRef"]["name"] for e in c.get("envFrom", []) if "secretRef" in e}
        names |= {e["valueFrom"]["secretKeyRef"]["name"] for e in c.get("env", [])
                  if "secretKeyRef" in (e.get("valueFrom") or {})}
    for v in pod_spec.get("volumes", []):
        if "secret" in v:
            names.add(v["secret"]["secretName"])
        names |= {s["secret"]["name"] for s in (v.get("projected") or {}).get("sources", []) if "secret" in s}
    return names


def pod_env(objects: list[dict], pod_spec: dict) -> dict[str, str]:
    """The environment of a pod's containers; a value from a Secret the chart does not render
    (the operator's own) reads '<secret NAME/KEY>'."""
    secrets = secret_data(objects)
    config = {o["metadata"]["name"]: o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"}
    env = {}
    for c in pod_spec["containers"]:
        for source in c.get("envFrom", []):
            if "secretRef" in source:
                env |= secrets.get(source["secretRef"]["name"], {})
            else:
                env |= config.get(source["configMapRef"]["name"], {})
        for e in c.get("env", []):
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                env[e["name"]] = secrets.get(ref["name"], {}).get(ref["key"], f"<secret {ref['name']}/{ref['key']}>")
            else:
                env[e["name"]] = e.get("value", "")
    return env


def component_problems(objects: list[dict], database_type: str) -> list[str]:
    secrets = secret_data(objects)
    redis_password = next((data["REDISCLI_AUTH"] for name, data in secrets.items() if name.endswith("-redis")), None)
    web_credentials = {v for name, data in secrets.items() if name.endswith("-web")
                       for k, v in data.items() if k in WEB_ONLY}
    problems = []
    if redis_password is None and any(o["kind"] in WORKLOADS and o["metadata"]["name"].endswith("-redis") for o in objects):
        problems.append("secrets: the chart's Redis has no password (no REDISCLI_AUTH in a -redis Secret)")
    for workload in (o for o in objects if o["kind"] in WORKLOADS):
        component = workload["spec"]["template"]["metadata"]["labels"][COMPONENT]
        spec = workload["spec"]["template"]["spec"]
        env = pod_env(objects, spec)
        if component in REDIS_CLIENTS:
            if "REDIS_URL" not in env:
                problems.append(f"secrets: {component} has no REDIS_URL")
            elif redis_password is not None and urlsplit(env["REDIS_URL"]).password != redis_password:
                problems.append(f"secrets: {component}'s REDIS_URL does not carry the Redis password")
        if component in DATABASE_CLIENTS and database_type != "sqlite" and "DATABASE_URL" not in env:
            problems.append(f"secrets: {component} has no DATABASE_URL (it would fall back to SQLite)")
        if component == "web":
            problems += [f"secrets: web has no {key}" for key in WEB_ONLY if not env.get(key)]
            continue
        problems += [f"secrets: {component} gets {key}, which only web may hold" for key in WEB_ONLY if key in env]
        readable = {v for name in secrets_reachable(spec) for v in secrets.get(name, {}).values()}
        if readable & web_credentials:
            problems.append(f"secrets: {component} can read web's API token or secret key")
    return problems
