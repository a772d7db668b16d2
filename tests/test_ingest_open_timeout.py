"""The camera ingester opens a camera with the operator's open timeout
(``VIDFARM_CAMERA_OPEN_TIMEOUT_S``), not the default 10 s: a camera on a slow link needs more,
and a dead one should be reported sooner where the operator asks."""

from __future__ import annotations

import pytest

from tests.rtsp_camera import SilentServer, running_ingest
from tests.waiting import wait_until


@pytest.fixture
def registry(farm):
    from core.cameras import CameraRegistry

    return CameraRegistry.from_url(farm.redis_url)


def test_the_ingester_gives_a_silent_camera_the_configured_open_timeout(registry, monkeypatch):
    from core.settings import get_settings

    monkeypatch.setenv("VIDFARM_CAMERA_OPEN_TIMEOUT_S", "1.5")
    get_settings.cache_clear()
    with SilentServer() as server, running_ingest(registry):
        camera_id = registry.add("Silent", server.url)["id"]
        try:
            status = wait_until(lambda: (lambda s: s if "no usable answer" in s else None)(
                registry.state(camera_id)["status"]), 30, "the camera's open to time out")
        finally:
            registry.delete(camera_id)
    assert f"{server.url}: no usable answer within 1.5 s" in status, status
