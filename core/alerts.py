"""Alerts as raised, across jobs, and their webhook deliveries.

An alert is raised by the first results version that lists it (fever, no mask, watchlist:
``workers.results``) and is kept once, whatever later versions do: a re-identification lists
the same fever alert again, and it must not ring twice. A later version that no longer lists
it marks it withdrawn (a person taken off the watchlist). The person is named by identity id
(ON DELETE SET NULL: erasing someone leaves "an alert about a track at 3.2 s", no name).

A live camera's alerts are raised as each segment is processed (``raise_live``: no job yet,
``job_id`` null) and delivered at once; the hour's recording, made a job later, lists them
again under that job without delivering them: each rings once, live. Alerts that a later
version of the recording's results raises (a re-identification) are delivered.

Each alert goes to every webhook URL once; each (alert, URL) delivery records its attempts,
the last status code and error, and when it was delivered.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from sqlalchemy import (Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint, delete, func,
                        select, update)
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.appearances import identity_ids
from core.models import Base, Identity, Job, aware

if TYPE_CHECKING:     # only named in annotations: core.records opens the schema, which imports this
    from core.records import Records

DELIVERY_STATES = ("pending", "delivered", "failed")


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("job_id", "kind", "track", "frame", name="uq_alerts_job_kind_track_frame"),)

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
    results_version: Mapped[int] = mapped_column(Integer)      # the version that raised it
    withdrawn: Mapped[bool] = mapped_column(Boolean, default=False)
    raised_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, index=True)


class AlertDelivery(Base):
    __tablename__ = "alert_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


def _key(alert: dict) -> tuple:
    return alert["kind"], alert["track"], alert["frame"]


def raise_new(s: Session, job_id: str, version: int, alerts: list[dict], identities: dict[int, str | None],
              urls: tuple[str, ...], shared_gallery: bool) -> list[int]:
    """Record the alerts of results ``version`` that are new for the job (in the transaction
    that publishes it), with one pending delivery per URL each, and mark withdrawn those it
    no longer lists. ``identities``: the track -> name of that version. Returns the new
    deliveries' ids (nothing is done when the job is at another version).

    A camera's recording: its first version lists the alerts that rang live as its segments
    were processed (``raise_live``), so they get no delivery; a later version (a
    re-identification after someone was enrolled or put on the watchlist, a re-analysis) rings
    the alerts it raises for the first time, as an upload's would."""
    job = s.execute(select(Job.results_version, Job.camera_id).where(Job.id == job_id).with_for_update()).first()
    if job is None or job.results_version != version:
        return []
    if job.camera_id and version == 1:
        urls = ()
    known = {(a.kind, a.track, a.frame): a for a in s.scalars(select(Alert).where(Alert.job_id == job_id))}
    ids = identity_ids(s, {n for n in identities.values() if n} if shared_gallery else set())
    listed = {_key(a) for a in alerts}
    for key, alert in known.items():
        alert.withdrawn = key not in listed
    fresh = [_alert(item, ids, identities, job_id=job_id, camera=job.camera_id, results_version=version)
             for item in alerts if _key(item) not in known]
    return _with_deliveries(s, fresh, urls)


def raise_live(s: Session, camera_id: str, alerts: list[dict], identities: dict[int, str | None],
               urls: tuple[str, ...]) -> list[int]:
    """Record a live camera's alerts of one processed segment (each raised once by the live
    stitch), with one pending delivery per URL each; returns the deliveries' ids. ``identities``:
    the camera's track -> name (the shared gallery's)."""
    ids = identity_ids(s, {n for n in identities.values() if n})
    fresh = [_alert(item, ids, identities, job_id=None, camera=camera_id, results_version=0) for item in alerts]
    return _with_deliveries(s, fresh, urls)


def _alert(item: dict, ids: dict[str, int], identities: dict[int, str | None], **where) -> Alert:
    """One raised alert's row (``where``: its job or camera, and results version)."""
    return Alert(kind=item["kind"], track=item["track"], frame=item["frame"], t=item["t"],
                 identity_id=ids.get(identities.get(item["track"])),
                 detail=None if item["kind"] == "watchlist" else item.get("detail"), **where)


def _with_deliveries(s: Session, fresh: list[Alert], urls: tuple[str, ...]) -> list[int]:
    """Add the new alerts and one pending delivery per URL each; the deliveries' ids."""
    s.add_all(fresh)
    s.flush()
    deliveries = [AlertDelivery(alert_id=alert.id, url=url) for alert in fresh for url in urls]
    s.add_all(deliveries)
    s.flush()
    return [d.id for d in deliveries]


class Alerts:
    def __init__(self, records: Records):
        self.records = records

    def raise_new(self, *args, **kwargs) -> list[int]:
        with self.records.session() as s:
            return raise_new(s, *args, **kwargs)

    def raise_live(self, *args, **kwargs) -> list[int]:
        with self.records.session() as s:
            return raise_live(s, *args, **kwargs)

    def expire_live(self, cutoff: datetime) -> int:
        """Delete live camera alerts raised before ``cutoff`` (with their deliveries): they are
        kept as long as camera recordings are. Returns how many went."""
        with self.records.session() as s:
            return s.execute(delete(Alert).where(Alert.job_id.is_(None), Alert.raised_at < cutoff)).rowcount

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

    def record_attempt(self, delivery_id: int, status: str, status_code: int | None, error: str | None) -> None:
        values = {"attempts": AlertDelivery.attempts + 1, "status": status, "status_code": status_code}
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
                     "delivered_at": aware(d.delivered_at).isoformat() if d.delivered_at else None})
            return found

    def page(self, limit: int, offset: int = 0, job_id: str | None = None) -> list[dict]:
        """Alerts newest first, across jobs (or of one), with their deliveries; live camera
        alerts (no job, no source name) among them."""
        query = (select(Alert, Identity.name, Job.source_name).outerjoin(Job, Job.id == Alert.job_id)
                 .outerjoin(Identity, Identity.id == Alert.identity_id)
                 .order_by(Alert.raised_at.desc(), Alert.id.desc()).limit(limit).offset(offset))
        if job_id:
            query = query.where(Alert.job_id == job_id)
        with self.records.session() as s:
            rows = [(payload(alert, name), alert.id, alert.withdrawn, alert.raised_at, source)
                    for alert, name, source in s.execute(query)]
        deliveries = self.deliveries([alert_id for _, alert_id, *_ in rows])
        return [{**body, "id": alert_id, "withdrawn": withdrawn, "source_name": source,
                 "raised_at": aware(raised).isoformat() if raised else None, "deliveries": deliveries.get(alert_id, [])}
                for body, alert_id, withdrawn, raised, source in rows]

    def counts(self, job_ids: list[str]) -> dict[str, int]:
        """Alerts (not withdrawn) per job, for a page of jobs in one query."""
        if not job_ids:
            return {}
        with self.records.session() as s:
            return dict(s.execute(select(Alert.job_id, func.count()).where(
                Alert.job_id.in_(job_ids), Alert.withdrawn.is_(False)).group_by(Alert.job_id)).all())


def payload(alert: Alert, identity: str | None) -> dict:
    """The webhook body (and the API's view) of an alert."""
    detail = alert.detail
    if alert.kind == "watchlist":
        detail = f"{identity} is on the watchlist" if identity else "a person on the watchlist (since removed)"
    return {"kind": alert.kind, "job": alert.job_id, "camera": alert.camera, "track": alert.track,
            "t": alert.t, "identity": identity, "detail": detail}
