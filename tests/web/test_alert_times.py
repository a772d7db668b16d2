"""The Alerts page's times in a real browser, from a PostgreSQL database whose session time zone
is not UTC (a server set up in local time: PostgreSQL hands back its times with that offset).
The page used to cut the ISO string: it showed Kolkata's clock, and under a repeat labelled it
UTC. Each time is shown as the other pages show them: date and time in UTC, to the second."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest
import sqlalchemy
from werkzeug.serving import make_server

from cli.redis_server import free_port
from tests.test_records import postgres_url
from tests.web.conftest import PASSWORD, make_app
from tests.web.test_browser import CHROMIUM, browser, log_in  # noqa: F401  (fixtures)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent")

RAISED = datetime(2026, 12, 6, 9, 41, 0, 750_000, tzinfo=timezone.utc)    # fractions of a second too
CAPTURED_S = RAISED.timestamp() + 60.0


@pytest.fixture
def kolkata_database():
    """A fresh PostgreSQL database whose sessions speak Kolkata's time (+05:30)."""
    admin, name = postgres_url()
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f"ALTER DATABASE \"{name}\" SET timezone TO 'Asia/Kolkata'"))
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def served(farm, kolkata_database):
    """The web app on that database, over real HTTP; a viewer; two live alerts about one person
    (the second a repeat: it shows its capture time under the first), raised at ``RAISED``."""
    from core.accounts import Accounts
    from core.alerts import Alert, Alerts
    from core.records import Records
    from tests.test_alert_repeats import enrol

    records = Records(kolkata_database)
    records.create_schema()
    Accounts(records).create_user("kolkata-viewer", PASSWORD, "viewer")
    enrol(records, "ann")
    seen = [{"kind": "watchlist", "track": track, "frame": 3, "t": 0.3, "detail": None,
             "captured_at": CAPTURED_S + 60 * n} for n, track in enumerate((1, 2))]
    _, folds = Alerts(records).raise_live("gate", seen, {1: "ann", 2: "ann"}, (), repeat_s=300.0)
    assert folds[1]["repeat_of"] == folds[0]["id"]
    with records.session() as s:
        s.execute(sqlalchemy.update(Alert).values(raised_at=RAISED))
    assert Alerts(records).page(1)[0]["raised_at"] == "2026-12-06T09:41:00.750000+00:00"   # given in UTC
    records.engine.dispose()
    server = make_server("127.0.0.1", free_port(), make_app(database_url=kolkata_database), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_port}"
    server.shutdown()
    thread.join()
    server.server_close()


def test_the_alerts_page_shows_times_in_utc_whatever_offset_the_database_gives(browser, served):  # noqa: F811
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    try:
        log_in(page, served, "kolkata-viewer")
        page.goto(f"{served}/alerts")
        row = page.locator("tr[data-alert]")
        assert row.count() == 1
        assert row.locator("td[data-label=Raised]").inner_text() == "2026-12-06 09:41:00 UTC"
        row.locator("details.repeats summary").click()
        repeat = row.locator("li[data-repeat]").inner_text()
        assert "captured 2026-12-06 09:43:00 UTC, track 2" in repeat, repeat
    finally:
        context.close()


def test_the_records_give_every_time_in_utc_whatever_offset_the_database_gives(kolkata_database):
    """What the API and the pages are given (jobs, users, people and their photos; alerts above):
    ISO 8601 in UTC (+00:00), not the database session's +05:30 (nor SQLite's naive form)."""
    from core.accounts import Accounts
    from core.records import Records
    from services.jobs import job_view
    from web.api_users import user_view

    records = Records(kolkata_database)
    records.create_schema()
    try:
        job = records.add_job("gate.mp4", "uploads/gate.mp4")
        user = Accounts(records).create_user("kolkata-admin", PASSWORD, "admin")
        records.add_embeddings("ann", [bytes(2048)], ["ann.jpg"], [None])
        times = [job_view(records, job.id)["created_at"], user_view(user)["created_at"],
                 records.identities("ann")[0]["created_at"], records.identity_photos("ann")[0]["created_at"]]
        for moment in times:
            assert moment.endswith("+00:00"), times
            assert abs(datetime.fromisoformat(moment) - datetime.now(timezone.utc)).total_seconds() < 600
    finally:
        records.engine.dispose()
