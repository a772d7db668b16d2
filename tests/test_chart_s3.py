"""The chart with its blobs in S3 (blobStore.type=s3): no shared volume, the bucket's settings
and credentials reach exactly the pods that use the store."""

from __future__ import annotations

import helm_python as helm
import pytest

from tests import chart_check, chart_secrets
from tests.test_chart import named

S3 = {"type": "s3", "s3": {"endpoint": "https://minio.storage.svc:9000", "bucket": "vidfarm-blobs"}}
STORE_USERS = ("-web", "-worker-ingest", "-worker-cpu", "-camera-ingest")


def pod(objects, kind, suffix) -> dict:
    return named(objects, kind, suffix)["spec"]["template"]["spec"]


def test_s3_needs_no_shared_volume_and_every_store_user_is_pointed_at_the_bucket():
    objects = chart_check.render({"blobStore": {**S3, "s3": {**S3["s3"], "existingSecret": "my-s3"}}})
    assert not [o for o in objects if o["kind"] == "PersistentVolumeClaim"]      # no ReadWriteMany volume
    for workload in STORE_USERS:
        spec = pod(objects, "Deployment", workload)
        media = next(v for v in spec["volumes"] if v["name"] == "media")
        assert media == {"name": "media", "emptyDir": {"sizeLimit": "20Gi"}}    # the read cache, 2 x 10 Gi
        env = chart_secrets.pod_env(objects, spec)
        assert env["VIDFARM_BLOB_STORE"] == "s3" and env["VIDFARM_S3_BUCKET"] == "vidfarm-blobs"
        assert env["VIDFARM_S3_ENDPOINT"] == "https://minio.storage.svc:9000"
        assert env["VIDFARM_S3_CACHE_BYTES"] == str(10 * 1024**3)
        assert env["AWS_ACCESS_KEY_ID"] == "<secret my-s3/AWS_ACCESS_KEY_ID>"
        assert env["AWS_SECRET_ACCESS_KEY"] == "<secret my-s3/AWS_SECRET_ACCESS_KEY>"
    for workload in ("-autoscaler", "-flower"):                 # they never touch a blob
        env = chart_secrets.pod_env(objects, pod(objects, "Deployment", workload))
        assert "AWS_SECRET_ACCESS_KEY" not in env


def test_keys_given_as_values_go_only_into_the_secrets_of_store_users():
    values = {"blobStore": {**S3, "s3": {**S3["s3"], "accessKeyId": "AKIAEXAMPLE", "secretAccessKey": "s3cr3t-value"}}}
    objects = chart_check.render(values)
    secrets = chart_secrets.secret_data(objects)
    holders = sorted(name for name, data in secrets.items() if data.get("AWS_SECRET_ACCESS_KEY") == "s3cr3t-value")
    assert holders == ["vidfarm-camera-ingest", "vidfarm-web", "vidfarm-worker"]
    env = chart_secrets.pod_env(objects, pod(objects, "Deployment", "-worker-cpu"))
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == ("AKIAEXAMPLE", "s3cr3t-value")
    assert "s3cr3t-value" not in str(named(objects, "ConfigMap", "vidfarm"))


def test_the_local_store_is_the_default_and_keeps_its_shared_volume():
    objects = chart_check.render({})
    [claim] = [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    env = chart_secrets.pod_env(objects, pod(objects, "Deployment", "-worker-cpu"))
    assert env["VIDFARM_BLOB_STORE"] == "local" and "VIDFARM_S3_BUCKET" not in env


def test_s3_without_a_bucket_or_with_sqlite_is_refused():
    with pytest.raises(helm.HelmRenderError, match="blobStore.s3.bucket"):
        chart_check.render({"blobStore": {"type": "s3"}})
    with pytest.raises(helm.HelmRenderError, match="sqlite.*blobStore.type=s3"):
        chart_check.render({"blobStore": S3, "database": {"type": "sqlite", "sqlite": {"singleNode": True}}})
    with pytest.raises(helm.HelmValuesError, match="endpoint"):
        chart_check.render({"blobStore": {**S3, "s3": {**S3["s3"], "endpoint": "minio:9000"}}})
