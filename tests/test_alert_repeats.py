"""Repeated alerts, on SQLite and PostgreSQL: a person's new track within ``alert_repeat_s`` of
the alert that rang about them is recorded as a repeat of it and gets no webhook delivery
(core.alerts). The farm's end-to-end case (a recording with two tracks of a watch-listed man,
real Celery workers and a real receiver) is in tests/test_alert_webhooks.py."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select, update

from core.alerts import Alert, AlertDelivery, Alerts
from core.models import Job
from tests.test_appearances import finished_job
from tests.test_records import records  # noqa: F401  (the fixture: SQLite and PostgreSQL)

URLS = ("http://a.example/hook", "http://b.example/hook")
WINDOW_S = 300.0


def watch(track: int, t: float, kind: str = "watchlist") -> dict:
    detail = "face without a mask" if kind == "no_mask" else None
    return {"kind": kind, "track": track, "frame": round(t * 10), "t": t, "detail": detail}


def enrol(records, *names: str) -> None:  # noqa: F811
    for name in names:
        records.add_embeddings(name, [np.ones(4, np.float32).tobytes()], [f"{name}.jpg"], [None])


def rows(records, **where) -> list[tuple]:  # noqa: F811
    """(track, t, repeat_of's track or None, deliveries) of the alerts, by id."""
    with records.session() as s:
        alerts = list(s.scalars(select(Alert).filter_by(**where).order_by(Alert.id)))
        track_of = {a.id: a.track for a in alerts}
        sent = {a.id: len(list(s.scalars(select(AlertDelivery).where(AlertDelivery.alert_id == a.id))))
                for a in alerts}
        return [(a.track, a.t, track_of.get(a.repeat_of), sent[a.id]) for a in alerts]


def publish(records, job: str, version: int, alerts: list[dict], names: dict, repeat_s: float = WINDOW_S,  # noqa: F811
            shared_gallery: bool = True) -> list[int]:
    with records.session() as s:
        s.execute(update(Job).where(Job.id == job).values(results_version=version))
    return Alerts(records).raise_new(job, version, alerts, names, URLS, shared_gallery=shared_gallery,
                                     repeat_s=repeat_s)


def test_a_second_track_of_a_person_within_the_window_is_a_repeat_and_is_not_sent(records):  # noqa: F811
    enrol(records, "ann")
    job = finished_job(records)
    delivered = publish(records, job, 1, [watch(1, 2.0), watch(2, 65.0)], {1: "ann", 2: "ann"})
    assert len(delivered) == len(URLS)                     # one alert rang, to each URL
    assert rows(records, job_id=job) == [(1, 2.0, None, 2), (2, 65.0, 1, 0)]
    # The API lists both (one entry per track, as results.json does), the repeat pointing at
    # the alert that rang; folded (the Alerts page) only that one, with its repeat under it.
    listed = {a["track"]: a for a in Alerts(records).page(10, job_id=job)}
    assert listed[2]["repeat_of"] == listed[1]["id"] and listed[2]["deliveries"] == []
    assert (listed[1]["repeat_of"], listed[1]["repeats"], listed[2]["repeats"]) == (None, 1, 0)
    folded = Alerts(records).page(10, job_id=job, folded=True)
    assert [(a["track"], [r["track"] for r in a["repeated"]]) for a in folded] == [(1, [2])]
    assert Alerts(records).counts([job]) == {job: 2}      # the jobs list counts every alert raised


def test_the_window_counts_from_the_last_alert_that_rang(records):  # noqa: F811
    enrol(records, "ann")
    job = finished_job(records)
    # 0 s rings; 200 s repeats it; 320 s is 320 s after the one that rang (not 120 s after the
    # last repeat): it rings, and 400 s repeats that one.
    times = [0.0, 200.0, 320.0, 400.0]
    delivered = publish(records, job, 1, [watch(n, t) for n, t in enumerate(times, start=1)],
                        {n: "ann" for n in range(1, 5)})
    assert len(delivered) == 2 * len(URLS)
    assert rows(records, job_id=job) == [(1, 0.0, None, 2), (2, 200.0, 1, 0), (3, 320.0, None, 2), (4, 400.0, 3, 0)]


def test_different_people_kinds_and_unknown_faces_each_ring(records):  # noqa: F811
    enrol(records, "ann", "bob")
    job = finished_job(records)
    alerts = [watch(1, 1.0), watch(2, 5.0),                               # ann, then bob
              watch(1, 1.0, "no_mask"), watch(3, 2.0, "no_mask"), watch(4, 3.0, "no_mask"),  # ann, 2 strangers
              watch(5, 9.0, "no_mask")]                                   # ann again, no mask: a repeat
    delivered = publish(records, job, 1, alerts, {1: "ann", 2: "bob", 3: None, 4: None, 5: "ann"})
    assert len(delivered) == 5 * len(URLS)
    with records.session() as s:
        repeats = s.execute(select(Alert.kind, Alert.track).where(Alert.repeat_of.is_not(None))).all()
    assert repeats == [("no_mask", 5)]


def test_a_window_of_zero_rings_every_alert(records):  # noqa: F811
    enrol(records, "ann")
    job = finished_job(records)
    delivered = publish(records, job, 1, [watch(1, 2.0), watch(2, 3.0)], {1: "ann", 2: "ann"}, repeat_s=0)
    assert len(delivered) == 2 * len(URLS)
    assert rows(records, job_id=job) == [(1, 2.0, None, 2), (2, 3.0, None, 2)]


def test_outside_the_window_both_ring_and_a_job_own_gallery_folds_by_name(records):  # noqa: F811
    enrol(records, "ann")
    job = finished_job(records)
    assert len(publish(records, job, 1, [watch(1, 2.0), watch(2, 302.5)], {1: "ann", 2: "ann"})) == 2 * len(URLS)
    # A job matched against its own gallery: its names are not the farm's people (no identity
    # id), yet two tracks it names alike are one person in that recording.
    own = finished_job(records)
    delivered = publish(records, own, 1, [watch(1, 2.0), watch(2, 9.0)], {1: "cleo", 2: "cleo"},
                        shared_gallery=False)
    assert len(delivered) == len(URLS) and rows(records, job_id=own)[1][2] == 1


def test_a_re_identification_rings_for_new_people_only_and_withdrawn_alerts_still_count(records):  # noqa: F811
    enrol(records, "ann", "bob")
    job = finished_job(records)
    assert len(publish(records, job, 1, [watch(1, 10.0)], {1: "ann", 2: None, 3: None})) == len(URLS)
    # Version 2: track 1 is no longer on the list (ann's first alert is withdrawn), track 2 is
    # ann too, 20 minutes later; track 3 is bob, newly enrolled. The staff heard of ann: her new
    # alert is a repeat of the one that rang, however late; bob's rings.
    delivered = publish(records, job, 2, [watch(2, 1210.0), watch(3, 1300.0)], {1: None, 2: "ann", 3: "bob"})
    assert len(delivered) == len(URLS)
    assert rows(records, job_id=job) == [(1, 10.0, None, 2), (2, 1210.0, 1, 0), (3, 1300.0, None, 2)]
    listed = {a["track"]: a for a in Alerts(records).page(10, job_id=job)}
    assert listed[1]["withdrawn"] and not listed[2]["withdrawn"]


def test_a_track_named_anew_withdraws_its_old_person_alerts_and_raises_the_new_one(records):  # noqa: F811
    """A gallery change re-identifies a stored job and its watch-listed track 1 is now bob, not
    ann, from the same frame. Before, ann's alerts stayed (they have that track and frame),
    saying ann was there, and bob's were never raised."""
    enrol(records, "ann", "bob")
    job = finished_job(records)
    seen = [watch(1, 10.0), watch(1, 10.0, "no_mask")]
    assert len(publish(records, job, 1, seen, {1: "ann"})) == 2 * len(URLS)
    # bob was rung about by no earlier version: both of his ring (the republish rules).
    assert len(publish(records, job, 2, seen, {1: "bob"})) == 2 * len(URLS)

    def listed() -> list[tuple]:
        return sorted(((a["kind"], a["identity"], a["detail"], a["withdrawn"], len(a["deliveries"]))
                       for a in Alerts(records).page(10, job_id=job)), key=lambda row: (row[0], row[1] or ""))
    assert listed() == [("no_mask", "ann", "face without a mask", True, 2),
                        ("no_mask", "bob", "face without a mask", False, 2),
                        ("watchlist", "ann", "ann is on the watchlist", True, 2),
                        ("watchlist", "bob", "bob is on the watchlist", False, 2)]
    assert Alerts(records).counts([job]) == {job: 2}
    # The same names again: nothing new. Back to ann: her alerts stand again, rung already.
    assert publish(records, job, 3, seen, {1: "bob"}) == []
    assert publish(records, job, 4, seen, {1: "ann"}) == []
    assert [(kind, who, withdrawn) for kind, who, _, withdrawn, _ in listed()] == [
        ("no_mask", "ann", False), ("no_mask", "bob", True), ("watchlist", "ann", False), ("watchlist", "bob", True)]
    # Named nobody (no watchlist alert then): the face without a mask is an unknown's, and
    # repeats what rang about that frame (nobody new was seen).
    assert publish(records, job, 5, [seen[1]], {1: None}) == []
    assert [(kind, who) for kind, who, _, withdrawn, _ in listed() if not withdrawn] == [("no_mask", None)]
    assert rows(records, job_id=job)[-1] == (1, 10.0, 1, 0)


def test_a_track_that_loses_its_name_rings_nothing_with_repeats_off(records):  # noqa: F811
    """No repeat window (alert_repeat_s 0): a track named ann, then nobody, is the same face at
    the same frame: its alert rang under her name, and is not sent again as an unknown's."""
    enrol(records, "ann")
    job = finished_job(records)
    bare = watch(1, 10.0, "no_mask")
    assert len(publish(records, job, 1, [bare], {1: "ann"}, repeat_s=0)) == len(URLS)
    assert publish(records, job, 2, [bare], {1: None}, repeat_s=0) == []
    assert rows(records, job_id=job) == [(1, 10.0, None, 2), (1, 10.0, 1, 0)]


def test_an_unknown_face_named_later_takes_the_name_but_an_erased_person_alert_is_nobody_else(records):  # noqa: F811
    """A stranger without a mask rang; once enrolled (bob), the re-identification names that
    alert, and rings nothing. A watchlist alert whose person was erased has no name left,
    and is nobody else's: the track named someone else raises that person's alert."""
    enrol(records, "ann", "bob")
    job = finished_job(records)
    bare, seen = watch(2, 20.0, "no_mask"), watch(1, 10.0)
    assert len(publish(records, job, 1, [seen, bare], {1: "ann", 2: None})) == 2 * len(URLS)
    assert publish(records, job, 2, [seen, bare], {1: "ann", 2: "bob"}) == []
    records.delete_identity("ann")
    assert publish(records, job, 3, [bare], {1: None, 2: "bob"}) == []        # the erasure's version
    assert len(publish(records, job, 4, [{**seen, "track": 1}, bare], {1: "bob", 2: "bob"})) == len(URLS)
    listed = sorted((a["kind"], a["track"], a["identity"] or "", a["withdrawn"], a["repeat_of"] is None)
                    for a in Alerts(records).page(10, job_id=job))
    assert listed == [("no_mask", 2, "bob", False, True), ("watchlist", 1, "", True, True),
                      ("watchlist", 1, "bob", False, True)]


def test_an_erased_person_fever_or_no_mask_alert_is_nobody_else_and_never_takes_a_name(records):  # noqa: F811
    """ann's face without a mask rang; ann is erased. A re-analysis of the recording (the face
    is still in the video) names that track bob, a look-alike. Before, bob took her alert, as
    a stranger's would: it read as rung about bob (its POSTs had named ann), bob was never
    announced, and his later alerts folded under hers (an erased person's alerts fold
    nothing). Hers stays nobody's; bob's is raised and rings. Nor does her name come back on
    it when she is enrolled again. A stranger's alert still takes the name it is given."""
    from core.erasures import Erasures

    enrol(records, "ann", "bob", "cleo")
    job = finished_job(records)
    hers, strangers = watch(1, 10.0, "no_mask"), watch(2, 20.0, "no_mask")
    assert len(publish(records, job, 1, [hers, strangers], {1: "ann", 2: None})) == 2 * len(URLS)
    assert Erasures(records).start("ann") is not None
    assert publish(records, job, 2, [hers, strangers], {1: None, 2: None}) == []      # the erasure's version
    later = watch(3, 30.0, "no_mask")       # bob again, within the window: a repeat of his own alert
    assert len(publish(records, job, 3, [hers, strangers, later], {1: "bob", 2: "cleo", 3: "bob"})) == len(URLS)
    enrol(records, "ann")                   # enrolled again: a new person to the records
    assert len(publish(records, job, 4, [hers, strangers], {1: "ann", 2: "cleo"})) == len(URLS)

    def listed() -> list[tuple]:
        page = {a["id"]: a for a in Alerts(records).page(10, job_id=job)}
        return sorted((a["track"], a["identity"] or "", a["withdrawn"], len(a["deliveries"]),
                       page[a["repeat_of"]]["identity"] if a["repeat_of"] else None) for a in page.values())
    assert listed() == [(1, "", True, 2, None),          # ann's, erased: nobody's, withdrawn, as sent
                        (1, "ann", False, 2, None),      # the new ann's: rang
                        (1, "bob", True, 2, None),       # bob's: rang, withdrawn by version 4
                        (2, "cleo", False, 2, None),     # the stranger's, named
                        (3, "bob", True, 0, "bob")]      # a repeat of bob's (version 4 lists no track 3)


def test_a_live_camera_folds_by_capture_time_across_segments(records):  # noqa: F811
    enrol(records, "ann")
    alerts = Alerts(records)
    start = 1_800_000_000.0

    def live(camera: str, track: int, captured_s: float, name: str | None = "ann") -> int:
        item = {**watch(track, captured_s), "captured_at": start + captured_s}
        return len(alerts.raise_live(camera, [item], {track: name}, URLS, repeat_s=WINDOW_S)[0])

    # Segment by segment, as the ingester rings them: ann on the gate camera at 0 s, again
    # (a new track after a segment border) at 40 s, again after 6 minutes; the lobby camera
    # sees her at 41 s; an unknown face never folds.
    assert [live("gate", 1, 0.0), live("gate", 2, 40.0), live("lobby", 1, 41.0), live("gate", 3, 360.0),
            live("gate", 4, 361.0, None), live("gate", 5, 362.0, None)] == [2, 0, 2, 2, 2, 2]
    assert rows(records, camera="gate") == [(1, 0.0, None, 2), (2, 40.0, 1, 0), (3, 360.0, None, 2),
                                            (4, 361.0, None, 2), (5, 362.0, None, 2)]
    # Two tracks of her in one segment: the later one repeats the earlier.
    both = [{**watch(7, 900.0), "captured_at": start + 900.0}, {**watch(6, 905.0), "captured_at": start + 905.0}]
    deliveries, folds = alerts.raise_live("gate", list(reversed(both)), {6: "ann", 7: "ann"}, URLS, repeat_s=WINDOW_S)
    assert len(deliveries) == 2
    assert rows(records, camera="gate")[-2:] == [(6, 905.0, 7, 0), (7, 900.0, None, 2)]
    # What the camera's events carry, in the order given: each one's id, and what it repeats.
    assert folds[0]["repeat_of"] == folds[1]["id"] and folds[1]["repeat_of"] is None
    # Window 0: every live alert rings.
    assert len(alerts.raise_live("gate", [{**watch(8, 901.0), "captured_at": start + 901.0}], {8: "ann"}, URLS,
                                 repeat_s=0)[0]) == 2


def test_the_retention_sweep_takes_a_live_alert_that_rang_with_its_repeats(records):  # noqa: F811
    """A repeat is part of the alert that rang (the Alerts page shows it folded under it): the
    sweep deletes them together when the one that rang is past the retention, though a repeat
    was raised a little later (less than the window). Left behind, a repeat would point at
    nothing (the foreign key sets it null on both databases) and read as an alert that rang
    and was sent nowhere."""
    from datetime import datetime, timedelta, timezone

    enrol(records, "ann")
    alerts = Alerts(records)
    long_ago, start = datetime.now(timezone.utc) - timedelta(days=40), 1_800_000_000.0
    for track, captured_s in [(1, 0.0), (2, 40.0), (3, 400.0), (4, 420.0)]:      # 2 repeats 1, 4 repeats 3
        alerts.raise_live("gate", [{**watch(track, captured_s), "captured_at": start + captured_s}], {track: "ann"},
                          URLS, repeat_s=WINDOW_S)
        with records.session() as s:       # raised that long ago, as the camera captured them
            s.execute(update(Alert).where(Alert.track == track).values(raised_at=long_ago + timedelta(
                seconds=captured_s)))
    job = finished_job(records)                                  # a recording's alerts: not the sweep's
    publish(records, job, 1, [watch(1, 2.0), watch(2, 9.0)], {1: "ann", 2: "ann"})
    assert [(track, repeat_of) for track, _, repeat_of, _ in rows(records, camera="gate")] == [
        (1, None), (2, 1), (3, None), (4, 3)]
    # The retention ends between the alert that rang (0 s) and its repeat (40 s).
    assert alerts.expire_live(long_ago + timedelta(seconds=20)) == 2
    assert rows(records, camera="gate") == [(3, 400.0, None, 2), (4, 420.0, 3, 0)]
    assert [(a["track"], [r["track"] for r in a["repeated"]]) for a in alerts.page(10, folded=True)
            if a["job"] is None] == [(3, [4])]
    assert rows(records, job_id=job) == [(1, 2.0, None, 2), (2, 9.0, 1, 0)]
