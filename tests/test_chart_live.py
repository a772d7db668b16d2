"""The chart's live parts, rendered offline: the camera ingester Deployment, the live workers,
the autoscaler's live settings (read back through the real Settings), and who may reach the
cameras and the alert webhooks."""

from __future__ import annotations

import copy

import pytest

from core.settings import Settings
from tests import chart_check, chart_netpol
from tests.chart_secrets import pod_env

LIVE_VALUES = chart_check.VALUE_FILES["live values (ci/live-values.yaml)"]


@pytest.fixture(scope="module")
def default_objects() -> list[dict]:
    return chart_check.render({})


@pytest.fixture(scope="module")
def live_values() -> dict:
    return chart_check.values_of(LIVE_VALUES)


@pytest.fixture(scope="module")
def live_objects(live_values) -> list[dict]:
    return chart_check.render(live_values)


def deployment(objects, suffix) -> dict:
    return next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"].endswith(suffix))


def container(objects, suffix) -> dict:
    return deployment(objects, suffix)["spec"]["template"]["spec"]["containers"][0]


def env_of(objects, suffix) -> dict:
    return pod_env(objects, deployment(objects, suffix)["spec"]["template"]["spec"])


def test_the_camera_ingester_runs_two_replicas_with_leases_by_default(default_objects, live_objects):
    ingest = deployment(default_objects, "-camera-ingest")
    assert ingest["spec"]["replicas"] == 2 and container(default_objects, "-camera-ingest")["command"] == \
        ["vidfarm", "ingest"]
    env = env_of(default_objects, "-camera-ingest")
    assert env["VIDFARM_INGEST_LEASE_S"] == "10" and env["REDIS_URL"].startswith("redis://")
    assert env["DATABASE_URL"].startswith("postgresql+psycopg://")        # the gallery it matches against
    assert {"name": "media", "mountPath": "/data"} in container(default_objects, "-camera-ingest")["volumeMounts"]
    assert any(o["kind"] == "PodDisruptionBudget" and o["metadata"]["name"].endswith("-camera-ingest")
               for o in default_objects)
    assert deployment(live_objects, "-camera-ingest")["spec"]["replicas"] == 3
    assert env_of(live_objects, "-camera-ingest")["VIDFARM_INGEST_LEASE_S"] == "15"
    # What the process reads is what the chart says.
    assert Settings(**{"ingest_lease_s": env_of(live_objects, "-camera-ingest")["VIDFARM_INGEST_LEASE_S"]}) \
        .ingest_lease_s == 15


def test_live_workers_serve_the_live_queue_and_are_autoscaled(default_objects):
    command = container(default_objects, "-worker-live")["command"]
    assert command[command.index("-Q") + 1] == "live" and "replicas" not in deployment(default_objects, "-worker-live")["spec"]
    assert container(default_objects, "-worker-cpu")["command"][command.index("-Q") + 1] == "cpu"
    role = next(o for o in default_objects if o["kind"] == "Role" and o["metadata"]["name"].endswith("-autoscaler"))
    assert "vidfarm-worker-live" in role["rules"][0]["resourceNames"]


def settings_of(objects, monkeypatch) -> Settings:
    """The autoscaler's settings as its pod would parse them."""
    for name, value in env_of(objects, "-autoscaler").items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_the_autoscaler_reads_the_live_settings_the_chart_gives(default_objects, live_objects, monkeypatch):
    command = container(default_objects, "-autoscaler")["command"]
    assert command[command.index("--queues") + 1] == "live,cpu"
    with monkeypatch.context() as mp:
        ours = settings_of(default_objects, mp)
    assert ours.database_url                                    # the records: each task's frames and cost
    assert (ours.autoscale_live.deployment, ours.autoscale_live.queue, ours.autoscale_live.size_by) == \
        ("vidfarm-worker-live", "live", "latency")
    assert (ours.autoscale_live.target_latency_s, ours.autoscale_live.spare_cameras, ours.autoscale_shared_max) == \
        (3.0, 1, 0)
    assert (ours.autoscale_cpu.size_by, ours.autoscale_cpu.target_wait_s) == ("wait", 60.0)
    with monkeypatch.context() as mp:
        theirs = settings_of(live_objects, mp)
    assert (theirs.autoscale_live.target_latency_s, theirs.autoscale_live.camera_fps,
            theirs.autoscale_live.spare_cameras, theirs.autoscale_live.max_replicas) == (4.0, 15.0, 2, 10)
    assert (theirs.autoscale_shared_max, theirs.autoscale_cpu.target_wait_s) == (12, 120.0)


def test_only_the_ingester_reaches_the_cameras_and_only_on_rtsp(default_objects, live_values, live_objects):
    cluster, endpoints, _ = chart_netpol.world(default_objects, {}, "farm")
    at = {e.name: e for e in endpoints}
    assert cluster.allows(at["camera-ingest"], at["camera"], 554)
    assert not cluster.allows(at["camera-ingest"], at["camera"], 80)
    assert not cluster.allows(at["camera-ingest"], at["internet"], 443)
    assert not cluster.allows(at["worker-live"], at["camera"], 554) and not cluster.allows(at["web"], at["camera"], 554)
    assert not cluster.allows(at["worker-ingest"], at["internet"], 443)        # no webhooks set: no way out
    assert chart_netpol.connectivity_problems(live_objects, live_values, "farm") == []


def test_the_ingest_workers_reach_the_webhooks_when_there_are_some(live_values, live_objects):
    cluster, endpoints, _ = chart_netpol.world(live_objects, live_values, "farm")
    at = {e.name: e for e in endpoints}
    assert cluster.allows(at["worker-ingest"], at["internet"], 443)
    assert not cluster.allows(at["worker-ingest"], at["internet"], 80)
    assert not cluster.allows(at["worker-cpu"], at["internet"], 443) and not cluster.allows(at["web"], at["internet"], 443)
    env = env_of(live_objects, "-worker-ingest")
    assert env["VIDFARM_ALERT_WEBHOOK_URLS"] == "https://alerts.example.com/vidfarm,https://hooks.example.net/security"
    assert len(env["VIDFARM_ALERT_WEBHOOK_SECRET"]) == 40 and env["VIDFARM_ALERT_WEBHOOK_ATTEMPTS"] == "4"
    assert env["VIDFARM_ALERT_REPEAT_S"] == "120"
    assert Settings(alert_webhook_urls=env["VIDFARM_ALERT_WEBHOOK_URLS"]).alert_webhook_urls == \
        ("https://alerts.example.com/vidfarm", "https://hooks.example.net/security")
    # Each install signs with a key of its own.
    again = env_of(chart_check.render(live_values), "-worker-ingest")
    assert again["VIDFARM_ALERT_WEBHOOK_SECRET"] != env["VIDFARM_ALERT_WEBHOOK_SECRET"]


def test_a_webhook_key_from_the_operators_secret(live_values):
    values = copy.deepcopy(live_values)
    values["alerts"]["webhooks"]["existingSecret"] = "farm-webhook"
    objects = chart_check.render(values)
    env = env_of(objects, "-worker-ingest")
    assert env["VIDFARM_ALERT_WEBHOOK_SECRET"] == "<secret farm-webhook/secret>"
    assert chart_check.schema_problems(objects) + chart_check.security_problems(values, objects) == []


def test_a_camera_rule_missing_is_caught(default_objects):
    objects = copy.deepcopy(default_objects)
    policy = next(o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"].endswith("-camera-ingest"))
    policy["spec"]["egress"] = [r for r in policy["spec"]["egress"] if all(p["port"] != 554 for p in r.get("ports", []))]
    assert "network: camera-ingest -> camera:554/TCP refused but needed" in \
        chart_netpol.connectivity_problems(objects, {}, "farm")
