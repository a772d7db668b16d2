"""Beat and Flower load none of the analysis code: the chart gives beat 256Mi, and the
worker's app (``tasks.app``, whose include list brings onnxruntime, OpenCV and PyAV) took
259 MiB resident in beat alone (measured: chart-style processes, docs/operations-check.md).
Beat still sends its schedule, by name, to the queues the routes give."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from cli.redis_server import RedisServer
from tests import chart_check
from tests.conftest import child_env, repo_root

HEAVY = ("onnxruntime", "cv2", "av", "insightface")

# What `celery -A APP beat|flower` loads before it runs: the app, then its default modules.
LOADED = """
import json, sys
from celery.app.utils import find_app
app = find_app(sys.argv[1])
app.loader.import_default_modules()
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def chart_app(component: str) -> str:
    objects = chart_check.render({})
    deployment = next(o for o in objects if o["kind"] == "Deployment"
                      and o["metadata"]["name"] == f"vidfarm-{component}")
    command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    return command[command.index("-A") + 1]


def test_beat_and_flower_as_the_chart_runs_them_load_no_model_or_codec_library():
    for component in ("beat", "flower"):
        app = chart_app(component)
        loaded = subprocess.run([sys.executable, "-c", LOADED, app], capture_output=True, text=True,
                                cwd=repo_root(), env=child_env(), timeout=120, check=True)
        assert set(json.loads(loaded.stdout)) & set(HEAVY) == set(), (component, app)


def test_beat_of_that_app_sends_its_schedule_by_name_to_the_routed_queue(tmp_path):
    redis = RedisServer(tmp_path / "redis").start()
    # A 2 s lease: beat sends vidfarm.reclaim (routed to the ingest queue) every second.
    env = child_env(REDIS_URL=redis.url, VIDFARM_SEGMENT_LEASE_S="2", VIDFARM_DATA_DIR=str(tmp_path / "data"))
    beat = subprocess.Popen([sys.executable, "-m", "celery", "-A", chart_app("beat"), "beat", "--loglevel", "INFO",
                             "--schedule", str(tmp_path / "celerybeat-schedule")],
                            cwd=repo_root(), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        import redis as redis_client

        broker = redis_client.Redis.from_url(redis.url)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not broker.llen("ingest"):
            assert beat.poll() is None, beat.stderr.read()[-2000:]
            time.sleep(0.2)
        message = json.loads(broker.lindex("ingest", 0))
        assert message["headers"]["task"] == "vidfarm.reclaim"
    finally:
        beat.terminate()
        beat.wait(timeout=30)
        redis.stop()


def test_flower_as_the_farm_runs_it_lists_every_queue_with_only_an_ingest_worker(tmp_path):
    """Flower lists the queues of the workers it knows (and the configured ones only while it
    knows none): with the farm at rest, one worker on ``ingest`` and the autoscaled pools at 0,
    its broker page and ``/api/queues/length`` listed ``ingest`` alone. Real Flower, as the
    chart and `vidfarm up` start it, and a real worker on ``ingest`` alone."""
    import base64
    import urllib.request

    from cli.farm import FLOWER_APP
    from cli.redis_server import free_port
    from tests.waiting import wait_until

    assert chart_app("flower") == FLOWER_APP
    redis = RedisServer(tmp_path / "redis").start()
    env = child_env(REDIS_URL=redis.url, VIDFARM_DATA_DIR=str(tmp_path / "data"))
    port, auth = free_port(), base64.b64encode(b"admin:a-password").decode()
    started = []
    try:
        for name, args, extra in (("worker", ["tasks.beat_app", "worker", "-Q", "ingest", "--pool", "solo",
                                              "-n", "ingest@flowertest"], {}),
                                  ("flower", [FLOWER_APP, "flower", f"--port={port}", "--address=127.0.0.1"],
                                   {"FLOWER_BASIC_AUTH": "admin:a-password"})):
            with open(tmp_path / f"{name}.log", "w") as log:
                started.append(subprocess.Popen([sys.executable, "-m", "celery", "-A", *args], cwd=repo_root(),
                                                env={**env, **extra}, stdout=log, stderr=subprocess.STDOUT))

        def api(path: str):
            request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Basic {auth}"})
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())
        workers = wait_until(lambda: "ingest@flowertest" in api("/api/workers?refresh=1") and api("/api/workers"),
                             120, "Flower to know the ingest worker", poll=0.5, tolerate=(OSError,))
        assert [q["name"] for q in workers["ingest@flowertest"]["active_queues"]] == ["ingest"]
        assert sorted(q["name"] for q in api("/api/queues/length")["active_queues"]) == ["cpu", "gpu", "ingest", "live"]
    finally:
        for process in started:
            process.kill()
            process.wait(timeout=30)
        redis.stop()
