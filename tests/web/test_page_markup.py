"""Every page's markup: no id twice on a page (the gallery repeated ``id="csrf_token"`` once per
form), and a "skip to content" link that keyboard users reach first and that takes them to the
page's main landmark."""

from __future__ import annotations

from collections import Counter
from html.parser import HTMLParser

import pytest

from tests.web.conftest import logged_in_client
from tests.web.test_browser import CHROMIUM, browser, log_in  # noqa: F401  (fixtures)
from tests.web.test_pages_fit_and_access import pages, recordings  # noqa: F401  (fixtures)


class Ids(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.ids += [value for name, value in attrs if name == "id"]


def repeated_ids(html: str) -> list[str]:
    parser = Ids()
    parser.feed(html)
    return sorted(name for name, times in Counter(parser.ids).items() if times > 1)


@pytest.fixture(scope="module")
def camera(farm):
    """A camera on the list (nothing needs to answer at its address for its pages to show)."""
    from core.cameras import CameraRegistry

    registry = CameraRegistry.from_url(farm.redis_url)
    camera_id = registry.add("Markup camera", "rtsp://127.0.0.1:9/none")["id"]
    yield camera_id
    registry.delete(camera_id)


def every_page(recordings, camera) -> dict[str, str]:  # noqa: F811
    return {**pages(recordings), "cameras": "/cameras", "camera": f"/cameras/{camera}"}


def test_no_page_repeats_an_id(web_app, client, accounts_by_role, recordings, camera):  # noqa: F811
    found = {"login": repeated_ids(client.get("/login").get_data(as_text=True))}
    admin = logged_in_client(web_app, accounts_by_role["admin"])
    for name, path in every_page(recordings, camera).items():
        response = admin.get(path)
        assert response.status_code in (200, 404), (path, response.status_code)
        found[name] = repeated_ids(response.get_data(as_text=True))
    assert {name: ids for name, ids in found.items() if ids} == {}


def on_screen(locator) -> bool:
    box = locator.bounding_box()
    return box["x"] >= 0 and box["y"] >= 0 and box["width"] > 1 and box["height"] > 1


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent")
def test_the_first_tab_reaches_skip_to_content_and_enter_moves_focus_to_the_main_landmark(
        browser, live_server, accounts_by_role, recordings, camera):  # noqa: F811
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    try:
        # (The login page has no menu to skip and focuses its first field itself.)
        log_in(page, live_server, accounts_by_role["admin"].username)
        for name, path in every_page(recordings, camera).items():
            page.goto(live_server + path)
            page.keyboard.press("Tab")
            link = page.locator(":focus")
            assert link.inner_text() == "Skip to content", name
            assert on_screen(link), name                                                # shown when focused
            page.keyboard.press("Enter")
            assert page.evaluate("document.activeElement.tagName") == "MAIN", name
            # The next Tab goes on from the content, not back through the menu.
            page.keyboard.press("Tab")
            assert page.evaluate("!!document.activeElement.closest('main')"), name
        page.goto(live_server + "/jobs")
        assert not on_screen(page.get_by_text("Skip to content"))                    # hidden until focused
    finally:
        context.close()
