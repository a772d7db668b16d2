"""Alerts as raised, across jobs, and their webhook deliveries.

An alert is raised by the first results version that lists it (fever, no mask, watchlist:
``workers.results``) and is kept once, whatever later versions do: a re-identification lists
the same fever alert again, and it must not ring twice. A later version that no longer lists
it marks it withdrawn (a person taken off the watchlist). The person is named by identity id
(ON DELETE SET NULL: erasing someone leaves "an alert about a track at 3.2 s", no name).
An alert is about that person too: a re-identification that names its track anew (ann, now
bob, from the same frame) lists another alert, so ann's is withdrawn and bob's raised beside
it (rung or folded as below); named ann again, her alert stands again. An unknown face's
fever or no-mask alert whose track is now named takes the name (who it was is news, not
another alert: it does not ring again). A job's own gallery's names are on no row: its
alerts are by track and frame only.

A live camera's alerts are raised as each segment is processed (``raise_live``: no job yet,
``job_id`` null) and delivered at once; the hour's recording, made a job later, lists them
again under that job without delivering them: each rings once, live. Alerts that a later
version of the recording's results raises (a re-identification) are delivered.

Each alert goes to every webhook URL once; each (alert, URL) delivery records its attempts
(the tries taken, one under way included), the last status code and error, and when it was
delivered. A delivery is also its own outbox
entry: ``next_attempt_at`` says when its next try is due (while a try is under way, when that
try will have ended), so a task about to POST claims it atomically (``claim``: a second task
for it, queued again while the first was merely slow, finds it claimed and sends nothing) and
counts the try then, and the watchdog queues again those whose try is long overdue (``overdue``:
their task was never queued, the broker lost it, or its worker was killed) and fails those whose tries were all taken
and whose last never ended (``exhausted``).

Repeats: a person's track breaks (turning away, an occlusion, a segment border) and the new
track raises the same alert again. An alert of the same kind about the same named person
(never an unknown face), in the same job (an upload or recording, by video time ``t``) or on
the same live camera (by capture time), less than ``alert_repeat_s`` after the last one that
rang is recorded as a repeat of it (``repeat_of``) and gets no delivery; one that comes later
rings, and the window counts from it. A repeat is decided when its alert is raised and never
changes. An alert that rang still counts after a later version withdrew it: people were told.
A later version of a job (a re-identification) that raises an alert for a person it already
rang about (that kind, any time in the recording) makes it a repeat of the nearest one: the
recording is past, what is new is who else was in it; a track that lost its name (its alert
now about an unknown face) repeats the alert that rang about its frame. Live alerts fold with
live ones only: a recording's first version lists them again, folded the same way by video
time, and rings nothing. Erasing a person unsets the identity: their alerts are no longer
anyone's and fold no further, and no name is handed to them again (``forget_person``): a
track of theirs that a re-analysis names someone else raises that person's alert anew.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Callable, Collection, Hashable, Sequence

from sqlalchemy import (Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, delete,
                        func, select, update)
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.appearances import identity_ids
from core.models import Base, Identity, Job, aware, iso_utc

if TYPE_CHECKING:     # only named in annotations: core.records opens the schema, which imports this
    from core.records import Records

DELIVERY_STATES = ("pending", "delivered", "failed")
# A delivery's retry may be claimed this much before it is due: Celery runs a retry at its ETA
# on the worker's clock, which may run a little ahead of the one that recorded the due time
# (a retry turned away would wait for the watchdog). Far shorter than any try's hold.
CLAIM_EARLY_S = 2.0


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Alert(Base):
    __tablename__ = "alerts"
    # Once per results version: a track named anew raises its new person's alert at the same
    # frame, beside the withdrawn alert about the one it was named before (0008).
    __table_args__ = (UniqueConstraint("job_id", "kind", "track", "frame", "results_version",
                                       name="uq_alerts_job_kind_track_frame_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # None: a live alert (raised as its camera's segment was processed, before any job had it).
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    camera: Mapped[str | None] = mapped_column(String(64), default=None)   # a camera's (live or recording)
    kind: Mapped[str] = mapped_column(String(16))
    track: Mapped[int] = mapped_column(Integer)
    frame: Mapped[int] = mapped_column(Integer)
    t: Mapped[float] = mapped_column(Float)
    identity_id: Mapped[int | None] = mapped_column(ForeignKey("identities.id", ondelete="SET NULL"), default=None)
    # What was measured ("38.2 C (threshold 37.5 C)"); never a name: watchlist alerts say
    # who through identity_id, so an erasure leaves no name behind here.
    detail: Mapped[str | None] = mapped_column(Text, default=None)
    # Its person was erased (``forget_person``): no identity, as an unknown face's alert, but
    # never anyone else's (0009).
    person_erased: Mapped[bool] = mapped_column(Boolean, default=False)
    results_version: Mapped[int] = mapped_column(Integer)      # the version that raised it
    withdrawn: Mapped[bool] = mapped_column(Boolean, default=False)
    raised_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, index=True)
    # The alert that rang about this person shortly before: this one was not delivered. Null:
    # it rang (the retention sweep deletes a live alert that rang with its repeats, ``expire_live``).
    repeat_of: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"), default=None,
                                                  index=True)
    # A live alert: when its frame was captured (unix time of the camera), what repeats count by.
    captured_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class AlertDelivery(Base):
    __tablename__ = "alert_deliveries"
    # The watchdog's sweep looks for pending deliveries by due time every minute (0010).
    __table_args__ = (Index("ix_alert_deliveries_status_next_attempt_at", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    # When the next try is due: at once when made, the retry's time after a failed try, the
    # end of a try under way while one is. Null only on a row an older version wrote: due then
    # from its creation (``_due_at``).
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=_now)


def _key(alert: dict) -> tuple:
    return alert["kind"], alert["track"], alert["frame"]


def _row_key(alert: Alert) -> tuple:
    return alert.kind, alert.track, alert.frame


def raise_new(s: Session, job_id: str, version: int, alerts: list[dict], identities: dict[int, str | None],
              urls: tuple[str, ...], shared_gallery: bool, repeat_s: float = 0.0) -> list[int]:
    """Record the alerts of results ``version`` that are new for the job (in the transaction
    that publishes it), with one pending delivery per URL each, and mark withdrawn those it
    no longer lists. ``identities``: the track -> name of that version. Returns the new
    deliveries' ids (nothing is done when the job is at another version).

    A camera's recording: its first version lists the alerts that rang live as its segments
    were processed (``raise_live``), so they get no delivery; a later version (a
    re-identification after someone was enrolled or put on the watchlist, a re-analysis) rings
    the alerts it raises for the first time, as an upload's would.

    ``repeat_s``: the repeat window (module doc), in video time; 0 rings every alert. A job's
    own gallery's names are not the farm's people (no identity id): its alerts fold by the
    name the track has in this version."""
    job = s.execute(select(Job.results_version, Job.camera_id).where(Job.id == job_id).with_for_update()).first()
    if job is None or job.results_version != version:
        return []
    if job.camera_id and version == 1:
        urls = ()
    ids = identity_ids(s, {n for n in identities.values() if n} if shared_gallery else set())
    rows = list(s.scalars(select(Alert).where(Alert.job_id == job_id).order_by(Alert.id.desc())))
    fresh = [_alert(item, ids, identities, job_id=job_id, camera=job.camera_id, results_version=version)
             for item in _pair(rows, alerts, lambda item: ids.get(identities.get(item["track"])))]
    if shared_gallery:
        def person(alert: Alert) -> Hashable:
            return alert.identity_id
    else:
        def person(alert: Alert) -> Hashable:
            return identities.get(alert.track)
    rang = [a for a in rows if a.repeat_of is None]     # withdrawn ones too: people were told
    s.add_all(fresh)
    s.flush()
    # A track that lost its name: what rang about its frame under the name stands for it
    # (nobody new was seen), whatever the repeat window, as the one row did before names
    # counted. Unknown faces are otherwise never folded.
    rang_at: dict[tuple, Alert] = {}
    for alert in rang:
        rang_at.setdefault(_row_key(alert), alert)      # the newest
    for alert in fresh:
        if person(alert) is None and _row_key(alert) in rang_at:
            alert.repeat_of = rang_at[_row_key(alert)].id
    fresh = [a for a in fresh if a.repeat_of is None]
    rings = fold_repeats(fresh, person, lambda a: a.t, repeat_s, rang_any_time=rang)
    return _with_deliveries(s, rings, urls)


def _pair(rows: list[Alert], alerts: list[dict], who: Callable[[dict], int | None]) -> list[dict]:
    """Pair a job's alert rows (newest first) with the alerts of its new results version, each
    about the person ``who`` says (an identity id; None for an unknown face, or for any face
    of a job's own gallery, whose names are on no row): a row of the same kind, track, frame
    and person stands for its alert, else (fever, no mask) a row of an unknown face there
    (``_nobody_yet``), which takes the name (who it was is news, not another event). Marks
    every row withdrawn or not; returns the alerts no row stands for, to be raised."""
    unpaired: dict[tuple, list[Alert]] = {}
    for row in rows:
        row.withdrawn = True
        unpaired.setdefault(_row_key(row), []).append(row)
    named_anew, fresh = [], []
    for item in alerts:
        same = [r for r in unpaired.get(_key(item), []) if r.identity_id == who(item)]
        if same:
            unpaired[_key(item)].remove(same[0])
            same[0].withdrawn = False
        else:
            named_anew.append(item)
    for item in named_anew:
        unknown = [r for r in unpaired.get(_key(item), []) if _nobody_yet(r)] if who(item) is not None else []
        if unknown:
            unpaired[_key(item)].remove(unknown[0])
            unknown[0].withdrawn, unknown[0].identity_id = False, who(item)
        else:
            fresh.append(item)
    return fresh


def _nobody_yet(row: Alert) -> bool:
    """An alert that no person was named on: an unknown face's fever or no mask, which the
    name its track is given later may take. Not a watchlist alert's, whose person was there
    when it was raised, nor an erased person's: theirs are nobody's for good."""
    return row.identity_id is None and not row.person_erased and row.kind != "watchlist"


def forget_person(s: Session, identity_id: int) -> None:
    """The person is being erased (in the transaction that deletes the identity): their alerts
    stay, as alerts about a track at a moment, named by nobody, now or later."""
    s.execute(update(Alert).where(Alert.identity_id == identity_id).values(identity_id=None, person_erased=True))


def raise_live(s: Session, camera_id: str, alerts: list[dict], identities: dict[int, str | None],
               urls: tuple[str, ...], repeat_s: float = 0.0) -> tuple[list[int], list[dict]]:
    """Record a live camera's alerts of one processed segment (each raised once by the live
    stitch), with one pending delivery per URL each unless it repeats one that rang on this
    camera less than ``repeat_s`` before (capture time). Returns the deliveries' ids, and each
    alert's ``{id, repeat_of}`` in the order given (for the camera's events: a page folds a
    repeat as the Alerts page does). ``identities``: the camera's track -> name (the shared
    gallery's). Each alert carries ``captured_at`` (unix s) when known; one without it always
    rings."""
    ids = identity_ids(s, {n for n in identities.values() if n})
    fresh = []
    for item in alerts:
        alert = _alert(item, ids, identities, job_id=None, camera=camera_id, results_version=0)
        if item.get("captured_at") is not None:
            alert.captured_at = datetime.fromtimestamp(item["captured_at"], timezone.utc)
        fresh.append(alert)
    s.add_all(fresh)
    s.flush()
    times = [a.captured_at for a in fresh if a.captured_at is not None]
    rang = list(s.scalars(select(Alert).where(
        Alert.job_id.is_(None), Alert.camera == camera_id, Alert.repeat_of.is_(None), Alert.identity_id.is_not(None),
        Alert.captured_at >= min(times) - timedelta(seconds=repeat_s), Alert.id.not_in([a.id for a in fresh])))
    ) if times and repeat_s > 0 else []

    def at(alert: Alert) -> float:
        return aware(alert.captured_at).timestamp() if alert.captured_at is not None else 0.0

    def person(alert: Alert) -> Hashable:     # no capture time: no window to fold it in
        return alert.identity_id if alert.captured_at is not None else None
    rings = fold_repeats(fresh, person, at, repeat_s, rang=rang)
    return _with_deliveries(s, rings, urls), [{"id": a.id, "repeat_of": a.repeat_of} for a in fresh]


def fold_repeats(fresh: list[Alert], person: Callable[[Alert], Hashable], at: Callable[[Alert], float],
                 repeat_s: float, rang: Sequence[Alert] = (), rang_any_time: Sequence[Alert] = ()) -> list[Alert]:
    """Mark each of the ``fresh`` alerts (flushed: they have ids) that repeats one that rang
    (module doc); returns those that ring. ``rang``: alerts that rang before, of the same
    camera; ``rang_any_time``: those of the job's earlier results versions (a person rung
    about there makes this version's alerts about them repeats, whenever they are). Any
    alert with ``id``, ``kind`` and ``repeat_of`` will do: `vidfarm watch` folds its own,
    which no record holds (``tasks.live_watch.WatchRepeats``)."""
    if repeat_s <= 0:
        return fresh
    rang, rings = list(rang), []
    for alert in sorted(fresh, key=at):
        who = person(alert)
        if who is None:                 # an unknown face (or an erased person): never folded
            rings.append(alert)
            continue
        same = [r for r in rang_any_time if r.kind == alert.kind and person(r) == who]
        if same:
            alert.repeat_of = min(same, key=lambda r: abs(at(r) - at(alert))).id
            continue
        before = [r for r in rang if r.kind == alert.kind and person(r) == who and 0 <= at(alert) - at(r) < repeat_s]
        if before:
            alert.repeat_of = max(before, key=at).id
        else:
            rings.append(alert)
            rang.append(alert)
    return rings


def _alert(item: dict, ids: dict[str, int], identities: dict[int, str | None], **where) -> Alert:
    """One raised alert's row (``where``: its job or camera, and results version)."""
    return Alert(kind=item["kind"], track=item["track"], frame=item["frame"], t=item["t"],
                 identity_id=ids.get(identities.get(item["track"])),
                 detail=None if item["kind"] == "watchlist" else item.get("detail"), **where)


def _due_at():
    """When a delivery's next try is due (SQL): a row of before 0010 without it, from its creation."""
    return func.coalesce(AlertDelivery.next_attempt_at, AlertDelivery.created_at)


def _with_deliveries(s: Session, rings: list[Alert], urls: tuple[str, ...]) -> list[int]:
    """One pending delivery per URL for each alert that rings (added already); their ids."""
    deliveries = [AlertDelivery(alert_id=alert.id, url=url) for alert in rings for url in urls]
    s.add_all(deliveries)
    s.flush()
    return [d.id for d in deliveries]


class Alerts:
    def __init__(self, records: Records):
        self.records = records

    def raise_new(self, *args, **kwargs) -> list[int]:
        with self.records.session() as s:
            return raise_new(s, *args, **kwargs)

    def raise_live(self, *args, **kwargs) -> tuple[list[int], list[dict]]:
        with self.records.session() as s:
            return raise_live(s, *args, **kwargs)

    def expire_live(self, cutoff: datetime) -> int:
        """Delete live camera alerts raised before ``cutoff`` (with their deliveries): they are
        kept as long as camera recordings are. An alert that rang goes with its repeats, though
        they were raised up to a repeat window later: they are one alert on the Alerts page, and
        a repeat left behind would point at nothing (``repeat_of`` set null: it would read as an
        alert that rang and was sent nowhere). Returns how many went."""
        expired = select(Alert.id).where(Alert.job_id.is_(None), Alert.raised_at < cutoff)
        with self.records.session() as s:     # one transaction: the repeats first, while their alert is there
            repeats = s.execute(delete(Alert).where(Alert.repeat_of.in_(expired))).rowcount
            return repeats + s.execute(delete(Alert).where(Alert.job_id.is_(None), Alert.raised_at < cutoff)).rowcount

    def delivery(self, delivery_id: int) -> tuple[AlertDelivery, dict] | None:
        """A delivery and the JSON body to POST for its alert; None when it is gone."""
        with self.records.session() as s:
            row = s.execute(select(AlertDelivery, Alert, Identity.name)
                            .join(Alert, Alert.id == AlertDelivery.alert_id)
                            .outerjoin(Identity, Identity.id == Alert.identity_id)
                            .where(AlertDelivery.id == delivery_id)).first()
            if row is None:
                return None
            delivery, alert, name = row
            return delivery, payload(alert, name)

    def claim(self, delivery_id: int, hold_s: float, max_attempts: int) -> bool:
        """Take a pending delivery whose try is due, for a try of up to ``hold_s``, and count that
        try (``attempts``): in one conditional update, so of two tasks for it only one gets it (on
        PostgreSQL the second waits for the first's row lock, then finds the due time moved on).
        Counted when taken, not when its outcome is recorded: a try whose worker is lost in the
        middle of its POST, or whose receiver never ends its answer, still uses one up, and the
        sweep fails the delivery once ``max_attempts`` were taken (``exhausted``). False: it is not
        pending, not due (another task's try is under way, or its retry is not yet due), every try
        was taken already, or it is gone."""
        now = _now()
        with self.records.session() as s:
            return s.execute(update(AlertDelivery).where(
                AlertDelivery.id == delivery_id, AlertDelivery.status == "pending",
                AlertDelivery.attempts < max_attempts, _due_at() <= now + timedelta(seconds=CLAIM_EARLY_S),
            ).values(next_attempt_at=now + timedelta(seconds=hold_s), attempts=AlertDelivery.attempts + 1)
            ).rowcount == 1

    def overdue(self, cutoff: datetime, max_attempts: int, waiting: Collection[int] = ()) -> list[int]:
        """The pending deliveries with a try left whose try was due before ``cutoff``: nobody is
        trying them (their task was lost, never queued, or its worker killed), unless they are
        ``waiting`` (the ids of deliveries whose task waits in a queue: it will come, and queueing
        another would only add a task that finds it claimed). Each is marked due now, so
        that the next sweep looks at it again only once it is overdue anew (its task queued again
        may wait behind others). Found and marked in one conditional update: a task that claims
        one meanwhile keeps its claim (marked due now after it, it was claimed again by the task
        queued here: two POSTs)."""
        lost = [AlertDelivery.status == "pending", _due_at() < cutoff, AlertDelivery.attempts < max_attempts]
        if waiting:
            lost.append(AlertDelivery.id.not_in(sorted(waiting)))
        with self.records.session() as s:
            return sorted(s.scalars(update(AlertDelivery).where(*lost)
                                    .values(next_attempt_at=_now()).returning(AlertDelivery.id)))

    def any_overdue(self, cutoff: datetime) -> bool:
        """Whether any pending delivery's try was due before ``cutoff`` (the sweep reads the
        broker only then)."""
        with self.records.session() as s:
            return s.scalar(select(AlertDelivery.id).where(AlertDelivery.status == "pending", _due_at() < cutoff)
                            .limit(1)) is not None

    def exhausted(self, cutoff: datetime, max_attempts: int) -> list[int]:
        """Fail the pending deliveries all of whose ``max_attempts`` tries were taken and whose
        last try should have ended before ``cutoff``: it never recorded its outcome (its worker
        was lost in the middle of the POST, or the receiver never ended its answer), and no task
        may take another. One conditional update: a try under way is not due, and is left to end."""
        error = "its last try never ended (its worker was lost, or the receiver did not finish answering)"
        with self.records.session() as s:
            return sorted(s.scalars(update(AlertDelivery).where(
                AlertDelivery.status == "pending", _due_at() < cutoff, AlertDelivery.attempts >= max_attempts,
            ).values(status="failed", last_error=error).returning(AlertDelivery.id)))

    def record_attempt(self, delivery_id: int, status: str, status_code: int | None, error: str | None,
                       retry_in_s: float | None = None) -> None:
        """The outcome of the try a claim took (and counted already). ``retry_in_s``: a pending
        delivery's next try is due then (its task's retry countdown)."""
        values = {"status": status, "status_code": status_code}
        if retry_in_s is not None:
            values["next_attempt_at"] = _now() + timedelta(seconds=retry_in_s)
        if error is not None:    # a delivery that worked in the end keeps what went wrong before
            values["last_error"] = " ".join(error.split())[:500]
        if status == "delivered":
            values["delivered_at"] = _now()
        with self.records.session() as s:
            s.execute(update(AlertDelivery).where(AlertDelivery.id == delivery_id).values(**values))

    def deliveries(self, alert_ids: list[int]) -> dict[int, list[dict]]:
        with self.records.session() as s:
            rows = s.scalars(select(AlertDelivery).where(AlertDelivery.alert_id.in_(alert_ids))
                             .order_by(AlertDelivery.id)) if alert_ids else []
            found: dict[int, list[dict]] = {}
            for d in rows:
                found.setdefault(d.alert_id, []).append(
                    {"url": d.url, "status": d.status, "attempts": d.attempts, "status_code": d.status_code,
                     "last_error": d.last_error,
                     "delivered_at": iso_utc(d.delivered_at)})
            return found

    def page(self, limit: int, offset: int = 0, job_id: str | None = None, folded: bool = False,
             kind: str | None = None) -> list[dict]:
        """Alerts newest first, across jobs (or of one; of one ``kind``), with their deliveries;
        live camera alerts (no job, no source name) among them. Each says which alert it repeats
        (``repeat_of``) and how many repeat it (``repeats``); ``folded``: only those that rang,
        each with its repeats, oldest first, under ``repeated``."""
        query = (select(Alert, Identity.name, Job.source_name).outerjoin(Job, Job.id == Alert.job_id)
                 .outerjoin(Identity, Identity.id == Alert.identity_id)
                 .order_by(Alert.raised_at.desc(), Alert.id.desc()).limit(limit).offset(offset))
        if job_id:
            query = query.where(Alert.job_id == job_id)
        if folded:
            query = query.where(Alert.repeat_of.is_(None))
        if kind:
            query = query.where(Alert.kind == kind)
        with self.records.session() as s:
            rows = [(payload(alert, name), alert, source) for alert, name, source in s.execute(query)]
            ids = [alert.id for _, alert, _ in rows]
            repeated: dict[int, list[dict]] = {}
            repeats = select(Alert).where(Alert.repeat_of.in_(ids)).order_by(Alert.t, Alert.id)
            for alert in s.scalars(repeats) if ids else ():
                repeated.setdefault(alert.repeat_of, []).append(
                    {"id": alert.id, "track": alert.track, "t": alert.t, "withdrawn": alert.withdrawn,
                     "raised_at": iso_utc(alert.raised_at), "captured_at": iso_utc(alert.captured_at)})
            found = [{**body, "withdrawn": alert.withdrawn, "source_name": source,
                      "raised_at": iso_utc(alert.raised_at), "captured_at": iso_utc(alert.captured_at),
                      "repeat_of": alert.repeat_of, "repeats": len(repeated.get(alert.id, []))}
                     for body, alert, source in rows]
        deliveries = self.deliveries(ids)
        for row in found:
            row["deliveries"] = deliveries.get(row["id"], [])
            if folded:
                row["repeated"] = repeated.get(row["id"], [])
        return found

    def counts(self, job_ids: list[str]) -> dict[str, int]:
        """Alerts (not withdrawn) per job, for a page of jobs in one query."""
        if not job_ids:
            return {}
        with self.records.session() as s:
            return dict(s.execute(select(Alert.job_id, func.count()).where(
                Alert.job_id.in_(job_ids), Alert.withdrawn.is_(False)).group_by(Alert.job_id)).all())


def payload(alert: Alert, identity: str | None) -> dict:
    """The webhook body (and the API's view) of an alert: its ``id`` is the one the API lists, by
    which a receiver de-duplicates (delivery is at least once). The task adds ``sent_at``."""
    detail = alert.detail
    if alert.kind == "watchlist":
        detail = f"{identity} is on the watchlist" if identity else "a person on the watchlist (since removed)"
    return {"id": alert.id, "kind": alert.kind, "job": alert.job_id, "camera": alert.camera, "track": alert.track,
            "t": alert.t, "identity": identity, "detail": detail}
