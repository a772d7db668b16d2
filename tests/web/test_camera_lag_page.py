"""The camera pages in a real browser follow how far behind a camera's analysis is, as the
ingester reports it (``CameraRegistry.set_status``; tests/web/test_cameras_api.py makes a real
camera fall behind). A module of its own: no ingester runs here to write the camera's status."""

from __future__ import annotations

import pytest

from tests.web.test_browser import CHROMIUM, browser, log_in  # noqa: F401  (fixtures)
from tests.web.test_pages_fit_and_access import WIDTHS

pytestmark = [pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent")]


def test_the_camera_pages_say_how_far_behind_a_camera_is_until_it_catches_up(
        browser, live_server, accounts_by_role, farm):  # noqa: F811
    from core.cameras import CameraRegistry

    registry = CameraRegistry.from_url(farm.redis_url)
    camera_id = registry.add("Lagging camera", "rtsp://127.0.0.1:9/lagging")["id"]
    registry.set_status(camera_id, "live", behind_s=52)
    context = browser.new_context(viewport=WIDTHS["desktop"])
    camera_page, list_page = context.new_page(), context.new_page()
    try:
        log_in(camera_page, live_server, accounts_by_role["viewer"].username)
        camera_page.goto(f"{live_server}/cameras/{camera_id}")
        list_page.goto(f"{live_server}/cameras")
        row = f"tr[data-camera='{camera_id}'] .status"
        assert camera_page.inner_text("#live-status") == "live, 52 s behind"      # as rendered
        assert list_page.inner_text(row) == "live, 52 s behind"
        # What the scripts make of the status events (the camera page: its stream starts after
        # the newest event it was rendered with, so none is missed) and the API (the list's poll).
        for status, behind_s, shown in (("live", 58, "live, 58 s behind"), ("live", None, "live")):
            registry.set_status(camera_id, status, behind_s=behind_s)
            for page, where in ((camera_page, "#live-status"), (list_page, row)):
                page.wait_for_function("([where, shown]) => document.querySelector(where).textContent === shown",
                                       arg=[where, shown], timeout=15_000)
    finally:
        context.close()
        registry.delete(camera_id)
