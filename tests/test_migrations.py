"""Schema migrations (Alembic): a database of vidfarm 0.1, with real rows, upgraded to today's
schema on SQLite and on PostgreSQL keeps every row usable; the revisions build exactly the
models; many processes may open an old database at once. Each new revision adds its own data
check to ``test_a_0_1_database_keeps_every_row_through_the_upgrade``."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from werkzeug.security import generate_password_hash

from core import schema
from tests import schema_v0_1
from tests.test_records import postgres_url

OLD_PASSWORD = "a password from 0.1"


@pytest.fixture
def new_database(request, tmp_path):
    """A function making empty databases of the test's dialect; PostgreSQL ones are private
    to the test and dropped after it."""
    made = []

    def make() -> str:
        if request.param == "sqlite":
            return f"sqlite:///{tmp_path / f'db{len(made)}.sqlite'}"
        admin, name = postgres_url()
        made.append((admin, name))
        return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    yield make
    for admin, name in made:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


both_dialects = pytest.mark.parametrize("new_database", ["sqlite", "postgresql"], indirect=True)


def build_0_1(url: str) -> sqlalchemy.Engine:
    """An empty database exactly as vidfarm 0.1's create_all made it."""
    engine = sqlalchemy.create_engine(url)
    statements = schema_v0_1.SQLITE if engine.dialect.name == "sqlite" else schema_v0_1.POSTGRESQL
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    return engine


def describe(engine: sqlalchemy.Engine) -> dict:
    """A database's tables as reflection sees them: columns, keys, constraints, indexes."""
    inspector = sqlalchemy.inspect(engine)
    tables = {}
    for table in sorted(set(inspector.get_table_names()) - {"alembic_version"}):
        tables[table] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
            "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
            "foreign_keys": sorted((tuple(fk["constrained_columns"]), fk["referred_table"],
                                    tuple(fk["referred_columns"]), fk["options"].get("ondelete"))
                                   for fk in inspector.get_foreign_keys(table)),
            "unique": sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)),
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                              for i in inspector.get_indexes(table)),
        }
    return tables


@both_dialects
def test_the_first_revision_is_the_schema_of_0_1(new_database):
    old = build_0_1(new_database())
    migrated_url = new_database()
    schema.upgrade(migrated_url, "0001_baseline")
    migrated = sqlalchemy.create_engine(migrated_url)
    try:
        assert describe(migrated) == describe(old)
        if old.dialect.name == "sqlite":     # and, there, the very same CREATE statements
            query = "SELECT name, sql FROM sqlite_master WHERE name NOT LIKE 'alembic%' ORDER BY name"
            with old.connect() as a, migrated.connect() as b:
                assert [(n, " ".join(s.split())) for n, s in b.exec_driver_sql(query) if s] == \
                       [(n, " ".join(s.split())) for n, s in a.exec_driver_sql(query) if s]
    finally:
        old.dispose()
        migrated.dispose()


@both_dialects
def test_the_migrations_build_exactly_the_models(new_database):
    """What autogenerate would write for the models against a migrated database: nothing. A
    model change without its revision (or the reverse) fails here."""
    url = new_database()
    schema.upgrade(url)
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, schema.schema_metadata()) == []
            assert schema.current_revision(conn) == schema.head()
    finally:
        engine.dispose()


def unit_vector(seed: int) -> np.ndarray:
    """An embedding: a float32 unit vector of ArcFace's size (its values matter only to the matching)."""
    vector = np.random.default_rng(seed).standard_normal(512).astype(np.float32)
    return vector / np.linalg.norm(vector)


def results_doc(version: int, tracks: list[tuple[int, str | None, np.ndarray]]) -> dict:
    """A results.json (contract 3) of a 2-frame recording with one face per track per frame."""
    faces = [{"box": [10, 10, 50, 50], "score": 0.9, "track": track, "identity": name,
              "similarity": 0.9 if name else None, "mask": None, "mask_score": None, "temperature_c": None}
             for track, name, _ in tracks]
    return {"schema": "vidfarm.results/1", "version": version,
            "source": {"path": "lobby.mp4", "width": 64, "height": 64, "fps": 2.0, "frames": 2,
                       "duration_s": 1.0, "has_audio": False},
            "chunks": 2, "frames": [{"index": i, "t": i / 2, "faces": faces} for i in range(2)],
            "tracks": [{"track": track, "identity": name, "first_frame": 0, "last_frame": 1,
                        "best_similarity": 0.9 if name else None, "mask": None, "max_temperature_c": None,
                        "embedding": [round(float(v), 6) for v in vector]} for track, name, vector in tracks],
            "alerts": [], "timing": {"wall_s": 1.0, "stages": {}}}


def fill_0_1(engine: sqlalchemy.Engine, data_dir) -> dict:
    """Rows as vidfarm 0.1 wrote them (its column values, its password hashes and token
    digests), and a finished job's blobs with two results versions. What the test expects back."""
    now = datetime(2026, 10, 1, 12, 0, tzinfo=timezone.utc)
    token = "old-api-token-" + uuid.uuid4().hex
    job_id = uuid.uuid4().hex
    alice, carol = unit_vector(1), unit_vector(3)
    rows = {
        # ids 1, 2 and 4: user 3 was deleted in 0.1
        "users": [{"id": i, "username": name, "password_hash": generate_password_hash(OLD_PASSWORD),
                   "role": role, "created_at": now}
                  for i, name, role in ((1, "admin", "admin"), (2, "ann", "viewer"), (4, "otto", "operator"))],
        "api_tokens": [{"id": 1, "user_id": 2, "label": "laptop",
                        "token_sha256": hashlib.sha256(token.encode()).hexdigest(), "created_at": now}],
        "identities": [{"id": 1, "name": "alice", "watchlist": True, "created_at": now},
                       {"id": 2, "name": "bob", "watchlist": False, "created_at": now}],
        "face_embeddings": [{"id": 1, "identity_id": 1, "vector": alice.tobytes(), "source": "alice.jpg",
                             "crop_key": "gallery/alice-1.jpg", "created_at": now},
                            {"id": 2, "identity_id": 2, "vector": unit_vector(2).tobytes(), "source": "bob.jpg",
                             "crop_key": None, "created_at": now}],
        "jobs": [{"id": job_id, "status": "done", "source_name": "lobby.mp4",
                  "source_key": f"jobs/{job_id}/source", "error": None, "chunks_total": 2, "options": "{}",
                  "media": json.dumps({"width": 64, "height": 64}), "timing": json.dumps({"split_s": 0.5}),
                  "results_version": 2, "gallery_fingerprint": "0" * 40, "created_at": now,
                  "updated_at": now, "finished_at": now}],
        "segments": [{"job_id": job_id, "index": i, "status": "done", "start_frame": i, "frames": 1,
                      "pts": json.dumps([i]), "end_pts": i + 1, "error": None, "worker": "w1", "seconds": 0.25,
                      "started_at": now, "finished_at": now, "attempts": 1} for i in range(2)],
    }
    with engine.begin() as conn:
        for table, table_rows in rows.items():
            columns = list(table_rows[0])
            quoted = ", ".join(f'"{c}"' for c in columns)
            conn.execute(sqlalchemy.text(f'INSERT INTO {table} ({quoted}) VALUES ({", ".join(":" + c for c in columns)})'),
                         table_rows)
        if conn.dialect.name == "postgresql":   # rows written with their ids: move the sequences past them
            for table in rows:
                if table != "jobs" and table != "segments":
                    conn.exec_driver_sql(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")
    output = data_dir / "blobs" / "jobs" / job_id / "output"
    (output / "versions").mkdir(parents=True)
    tracks = [(1, "alice", alice), (2, None, carol)]
    for version in (1, 2):
        (output / "versions" / f"results-{version}.json").write_text(json.dumps(results_doc(version, tracks)))
    (output / "results.json").write_text(json.dumps(results_doc(2, tracks)))
    return {"rows": rows, "token": token, "job_id": job_id, "carol": carol}


def table_rows(engine: sqlalchemy.Engine, table: str, columns: list[str]) -> list[tuple]:
    quoted = ", ".join(f'"{c}"' for c in columns)
    with engine.connect() as conn:
        return [tuple(row) for row in conn.exec_driver_sql(f"SELECT {quoted} FROM {table} ORDER BY 1, 2")]


@both_dialects
def test_a_0_1_database_keeps_every_row_through_the_upgrade(new_database, tmp_path, monkeypatch):
    from cli.redis_server import RedisServer
    from core.accounts import Accounts
    from core.settings import get_settings
    from services import runtime
    from tasks import app as celery_app
    from tests.conftest import restore_environment
    from tests.web.conftest import csrf_token

    url = new_database()
    old = build_0_1(url)
    kept = fill_0_1(old, tmp_path)
    before = {table: table_rows(old, table, list(rows[0])) for table, rows in kept["rows"].items()}

    assert schema.upgrade(url) is None            # 0.1 had no revision table
    assert schema.current(old) == schema.head()
    for table, rows in kept["rows"].items():       # every row and every value of 0.1 is still there
        assert table_rows(old, table, list(rows[0])) == before[table], table
    old.dispose()

    # A Redis of its own: the re-identification below queues the video's redraw, and this
    # process's Celery client must not be left on another test's farm, stopped by now.
    redis_server = RedisServer(tmp_path / "redis").start()
    monkeypatch.setenv("VIDFARM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.delenv("VIDFARM_API_TOKEN", raising=False)
    get_settings.cache_clear()
    runtime.reset()
    celery_app.point_at(redis_server.url)
    try:
        accounts = Accounts(runtime.records())
        assert accounts.authenticate("ann", OLD_PASSWORD).username == "ann"      # the old password
        assert accounts.user_for_token(kept["token"]).username == "ann"          # the old API token
        from tests.web.conftest import make_app

        app = make_app()
        client, job = app.test_client(), kept["job_id"]
        bearer = {"Authorization": f"Bearer {kept['token']}"}
        assert client.get(f"/api/v1/jobs/{job}", headers=bearer).get_json()["status"] == "done"
        assert client.get(f"/api/v1/jobs/{job}/results", headers=bearer).get_json()["version"] == 2
        assert client.get(f"/api/v1/jobs/{job}/results?version=1", headers=bearer).get_json()["version"] == 1
        page = client.get("/login").get_data(as_text=True)                        # the web login too
        login = client.post("/login", data={"username": "otto", "password": OLD_PASSWORD,
                                            "csrf_token": csrf_token(page)})
        assert login.status_code == 302 and client.get("/jobs").status_code == 200

        # Re-identification runs on the old job: a newly enrolled person is named in version 3.
        from tasks.reanalysis import reidentify_job

        runtime.records().add_embeddings("carol", [kept["carol"].tobytes()], ["carol.jpg"], [None])
        assert reidentify_job(job) == {"job": job, "version": 3}
        latest = client.get(f"/api/v1/jobs/{job}/results", headers=bearer).get_json()
        assert latest["version"] == 3
        assert [(t["track"], t["identity"]) for t in latest["tracks"]] == [(1, "alice"), (2, "carol")]
        assert {a["detail"] for a in latest["alerts"]} == {"alice is on the watchlist"}

        # 0002_user_sessions: every user has a token of their own, 0.1's cookies (an id alone)
        # are refused on purpose, and ids are never given twice.
        users = accounts.list_users()
        assert len({u.session_token for u in users}) == 3 and all(len(u.session_token) >= 32 for u in users)
        assert accounts.user_for_session("4") is None
        accounts.delete_user(4)
        assert accounts.create_user("newcomer", OLD_PASSWORD, "viewer").id == 5

        # 0004_review: nobody must change their password; the old job enters people search
        # and the alerts with its next results version (3), without face crops (its segment
        # files are not kept here).
        assert not any(u.must_change_password for u in users)
        found = client.get("/api/v1/identities/alice/appearances", headers=bearer).get_json()
        assert [(a["job"], a["track"], a["first_t"], a["thumbnail"]) for a in found] == [(job, 1, 0.0, None)]
        assert client.get(f"/api/v1/jobs/{job}", headers=bearer).get_json()["alerts"] == 1

        # 0005_recordings: the old job is an upload (no camera, no capture time), so the
        # recordings' retention never deletes it, however old it is.
        from datetime import datetime, timedelta, timezone

        old_job = runtime.records().get_job(job)
        assert (old_job.camera_id, old_job.recorded_at) == (None, None)
        assert runtime.records().recordings_before(datetime.now(timezone.utc) + timedelta(days=36500)) == []
    finally:
        runtime.records().engine.dispose()
        monkeypatch.undo()        # the session's environment first: then point back at its farm
        restore_environment()
        redis_server.stop()


def downgrade(url: str, revision: str) -> None:
    from alembic import command

    engine = schema._migration_engine(url)
    try:
        with engine.begin() as connection:
            command.downgrade(schema._config(connection), revision)
    finally:
        engine.dispose()


def with_an_old_alert(new_database, tmp_path, revision: str, raised: datetime) -> tuple[str, sqlalchemy.Engine, dict]:
    """A 0.1 database (``fill_0_1``) upgraded to ``revision``, holding alert 7 of its job as
    that revision wrote it: alice on the watchlist, at the first frame, raised at ``raised``.
    Its url, engine and what ``fill_0_1`` kept."""
    url = new_database()
    old = build_0_1(url)
    kept = fill_0_1(old, tmp_path)
    schema.upgrade(url, revision)
    with old.begin() as conn:
        conn.execute(sqlalchemy.text(
            "INSERT INTO alerts (id, job_id, camera, kind, track, frame, t, identity_id, detail, results_version, "
            "withdrawn, raised_at) VALUES (7, :job, NULL, 'watchlist', 1, 0, 0.0, 1, NULL, 2, :no, :at)"),
            {"job": kept["job_id"], "no": False, "at": raised})
    return url, old, kept


@both_dialects
def test_alerts_of_before_0007_rang_and_a_new_alert_about_that_person_repeats_them(new_database, tmp_path):
    """0007_alert_repeats rebuilds the alerts table on SQLite: the alerts of before and their
    deliveries stay (each of them rang: no repeat_of), and a re-identification's new alert
    about the same person folds under the one that rang before the upgrade."""
    from core.alerts import Alerts
    from core.records import Records

    raised = datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc)
    url, old, kept = with_an_old_alert(new_database, tmp_path, "0006_live_alerts", raised)
    with old.begin() as conn:
        conn.execute(sqlalchemy.text(
            "INSERT INTO alert_deliveries (id, alert_id, url, status, attempts, created_at, delivered_at) "
            "VALUES (3, 7, 'http://a.example/hook', 'delivered', 1, :at, :at)"), {"at": raised})
    before = table_rows(old, "alert_deliveries", ["id", "alert_id", "url", "status"])
    assert schema.upgrade(url) == "0006_live_alerts"
    assert table_rows(old, "alerts", ["id", "track", "repeat_of", "captured_at"]) == [(7, 1, None, None)]
    assert table_rows(old, "alert_deliveries", ["id", "alert_id", "url", "status"]) == before
    old.dispose()

    records = Records(url)
    try:
        with records.session() as s:
            s.execute(sqlalchemy.text("UPDATE jobs SET results_version = 3"))
        new = {"kind": "watchlist", "track": 2, "frame": 1, "t": 0.5, "detail": None}
        old_alert = {"kind": "watchlist", "track": 1, "frame": 0, "t": 0.0, "detail": None}
        alerts = Alerts(records)
        assert alerts.raise_new(kept["job_id"], 3, [old_alert, new], {1: "alice", 2: "alice"},
                                ("http://a.example/hook",), shared_gallery=True, repeat_s=300) == []
        listed = {a["track"]: a for a in alerts.page(10, job_id=kept["job_id"])}
        assert (listed[1]["id"], listed[1]["repeats"], listed[2]["repeat_of"]) == (7, 1, 7)
        assert [d["status"] for d in listed[1]["deliveries"]] == ["delivered"]
    finally:
        records.engine.dispose()


@both_dialects
def test_after_0008_a_track_named_anew_keeps_its_old_alert_beside_the_new_one(new_database, tmp_path):
    """0008_alerts_renamed_tracks: an alert of before stays as it was; a re-identification that
    names its track anew (alice, now bob) withdraws it and raises bob's at the same frame (the
    old unique key had room for one); a downgrade keeps the first of the two."""
    from core.alerts import Alerts
    from core.records import Records

    url, old, kept = with_an_old_alert(new_database, tmp_path, "0007_alert_repeats",
                                       datetime(2026, 11, 1, tzinfo=timezone.utc))
    assert schema.upgrade(url) == "0007_alert_repeats"
    assert table_rows(old, "alerts", ["id", "track", "identity_id", "withdrawn"]) == [(7, 1, 1, False)]

    records = Records(url)
    try:
        with records.session() as s:
            s.execute(sqlalchemy.text("UPDATE jobs SET results_version = 3"))
        seen = {"kind": "watchlist", "track": 1, "frame": 0, "t": 0.0, "detail": None}
        assert len(Alerts(records).raise_new(kept["job_id"], 3, [seen], {1: "bob"}, ("http://a.example/hook",),
                                             shared_gallery=True, repeat_s=300)) == 1
    finally:
        records.engine.dispose()
    assert table_rows(old, "alerts", ["identity_id", "withdrawn"]) == [(1, True), (2, False)]
    downgrade(url, "0007_alert_repeats")
    assert table_rows(old, "alerts", ["id", "identity_id"]) == [(7, 1)]       # alice's, the first
    assert table_rows(old, "alert_deliveries", ["id", "alert_id"]) == []
    old.dispose()


@both_dialects
def test_many_processes_opening_a_0_1_database_at_once_upgrade_it_once(new_database, tmp_path):
    """gunicorn's workers and Celery workers start together on an old database: one migrates,
    the others wait for it, nobody fails and the rows are kept."""
    import subprocess
    import sys

    from tests.conftest import child_env

    url = new_database()
    old = build_0_1(url)
    kept = fill_0_1(old, tmp_path)
    code = ("import sys; from core.records import Records; r = Records(sys.argv[1]); r.create_schema(); "
            "print(r.get_job(sys.argv[2]).status)")
    processes = [subprocess.Popen([sys.executable, "-c", code, url, kept["job_id"]], env=child_env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(6)]
    outcomes = [(p.wait(120), p.stdout.read().strip(), p.stderr.read()) for p in processes]
    assert [(code, out) for code, out, _ in outcomes] == [(0, "done")] * 6, [err for *_, err in outcomes]
    assert schema.current(old) == schema.head()
    assert len(table_rows(old, "users", ["id", "username"])) == 3
    old.dispose()


@both_dialects
def test_a_process_not_allowed_to_upgrade_refuses_an_old_database(new_database):
    from core.records import Records

    url = new_database()
    build_0_1(url).dispose()
    records = Records(url)
    with pytest.raises(schema.SchemaOutOfDate, match="vidfarm db upgrade"):
        records.create_schema(upgrade=False)
    records.create_schema()
    records.create_schema(upgrade=False)     # current now: no complaint
    records.engine.dispose()


@pytest.mark.parametrize("new_database", ["sqlite"], indirect=True)
def test_vidfarm_db_upgrades_an_old_database_and_says_where_it_is(new_database, tmp_path):
    import subprocess
    import sys

    from tests.conftest import child_env

    url = new_database()
    build_0_1(url).dispose()
    env = child_env(VIDFARM_DATA_DIR=str(tmp_path), DATABASE_URL=url)

    def db(action: str) -> str:
        run = subprocess.run([sys.executable, "-m", "cli.main", "db", action], env=env,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        return run.stdout

    assert "behind" in db("current")
    assert db("upgrade").strip() == f"database at {schema.head()} (was none)"
    assert db("current").strip() == f"{schema.head()}  (current)"
    assert f"{schema.head()}  (after" in db("history")
    env["DATABASE_URL"] = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    run = subprocess.run([sys.executable, "-m", "cli.main", "db", "upgrade"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and run.stderr.startswith("vidfarm: error: database:") and run.stderr.count("\n") == 1


@both_dialects
def test_after_0010_a_delivery_pending_before_the_upgrade_is_due_and_the_sweep_takes_it(new_database, tmp_path):
    """0010_deliveries_next_attempt: every delivery of before is due from its creation, so one
    left pending (its task lost) is queued again by the watchdog's sweep; one delivered is not.
    A downgrade keeps the rows."""
    from core.alerts import Alerts
    from core.records import Records

    made = datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc)
    url, old, _ = with_an_old_alert(new_database, tmp_path, "0009_alerts_person_erased", made)
    with old.begin() as conn:
        conn.execute(sqlalchemy.text(
            "INSERT INTO alert_deliveries (id, alert_id, url, status, attempts, created_at, delivered_at) VALUES "
            "(3, 7, 'http://a.example/hook', 'pending', 0, :at, NULL), "
            "(4, 7, 'http://b.example/hook', 'delivered', 1, :at, :at)"), {"at": made})
    assert schema.upgrade(url) == "0009_alerts_person_erased"
    records = Records(url)
    try:
        assert Alerts(records).overdue(made - timedelta(minutes=1), 6) == []       # due from its creation
        assert Alerts(records).overdue(made + timedelta(minutes=1), 6) == [3]
    finally:
        records.engine.dispose()
    downgrade(url, "0009_alerts_person_erased")
    assert table_rows(old, "alert_deliveries", ["id", "status"]) == [(3, "pending"), (4, "delivered")]
    old.dispose()


@both_dialects
def test_after_0011_the_histograms_go_on_from_the_rows_of_before_and_a_delete_takes_nothing_back(new_database):
    """0011_histogram_totals: /metrics' histograms start from what the records held, counted
    as /metrics counted them (each segment with its time; each done job from its latest run's
    start), so the series go on without a reset at the upgrade; a job deleted after it takes
    nothing back."""
    from core.models import Job, Segment
    from core.records import Records
    from tests.test_metrics_history import delete_job, scrape

    url = new_database()
    schema.upgrade(url, "0010_deliveries_next_attempt")
    now = datetime.now(timezone.utc).replace(microsecond=250000)
    jobs = [{"id": "a" * 32, "status": "done", "created_at": now - timedelta(seconds=3), "finished_at": now},
            {"id": "b" * 32, "status": "done", "created_at": now - timedelta(days=2), "finished_at": now,
             "timing": {"run_started": (now - timedelta(seconds=20)).timestamp()}},
            {"id": "c" * 32, "status": "failed", "created_at": now - timedelta(seconds=3), "finished_at": now}]
    segments = [{"job_id": "a" * 32, "index": i, "status": "done", "start_frame": i, "frames": 1, "pts": [i],
                 "end_pts": i + 1, "seconds": seconds} for i, seconds in enumerate((1.5, 0.5, None))]
    records = Records(url)
    try:
        with records.session() as s:
            s.execute(sqlalchemy.insert(Job), [{"source_name": "a.mp4", "source_key": "jobs/a", **job} for job in jobs])
            s.execute(sqlalchemy.insert(Segment), segments)
        assert schema.upgrade(url) == "0010_deliveries_next_attempt"
        expected = {("vidfarm_segment_seconds_count", ()): 2, ("vidfarm_segment_seconds_sum", ()): 2.0,
                    ("vidfarm_segment_seconds_bucket", (("le", "1"),)): 1,
                    ("vidfarm_segment_seconds_bucket", (("le", "2"),)): 2,
                    ("vidfarm_job_seconds_count", ()): 2, ("vidfarm_job_seconds_sum", ()): pytest.approx(23, abs=1e-5),
                    ("vidfarm_job_seconds_bucket", (("le", "5"),)): 1,
                    ("vidfarm_job_seconds_bucket", (("le", "30"),)): 2}
        assert {key: scrape(records)[key] for key in expected} == expected
        delete_job(records, "a" * 32)
        delete_job(records, "b" * 32)
        assert {key: scrape(records)[key] for key in expected} == expected
    finally:
        records.engine.dispose()
    downgrade(url, "0010_deliveries_next_attempt")


@both_dialects
def test_an_older_vidfarm_on_a_database_a_newer_one_upgraded_says_so_in_one_line(new_database, tmp_path):
    """Going back to an older release without putting back the backup: `vidfarm db current`
    called the database "behind", `vidfarm db upgrade` was Alembic's traceback ("Can't locate
    revision identified by ..."), and `vidfarm up` a traceback or "the worker fork server exited"."""
    import subprocess
    import sys

    from core.records import Records
    from tests.conftest import child_env

    url = new_database()
    records = Records(url)
    records.create_schema()
    with records.engine.begin() as connection:
        connection.execute(sqlalchemy.text("UPDATE alembic_version SET version_num = '0999_of_a_newer_vidfarm'"))
    with pytest.raises(schema.SchemaOutOfDate, match="newer than this vidfarm knows"):
        records.create_schema()
    records.engine.dispose()
    env = child_env(VIDFARM_DATA_DIR=str(tmp_path), DATABASE_URL=url)

    def db(action: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cli.main", "db", action], env=env,
                              capture_output=True, text=True, timeout=120)

    assert db("current").stdout.strip() == "0999_of_a_newer_vidfarm  (newer than this vidfarm)"
    upgrade = db("upgrade")
    assert upgrade.returncode == 1 and upgrade.stderr.splitlines() == [
        f"vidfarm: error: the database is at revision 0999_of_a_newer_vidfarm, newer than this vidfarm knows "
        f"(it needs {schema.head()}): run the vidfarm that upgraded it, or put back the backup taken before "
        f"that upgrade (README, \"Upgrading\")"]
