"""What the person page and the people API share: appearances and photos as views with URLs."""

from __future__ import annotations

from flask import url_for

from core.appearances import Appearances
from services import people
from web.context import farm


def thumbnail_url(job_id: str, track: int) -> str:
    return url_for("people_api.track_thumbnail", job_id=job_id, track=track)


def appearances(name: str, page: int, per_page: int) -> tuple[list[dict], bool] | None:
    """A page of the person's appearances (newest first) and whether another page follows;
    None when nobody has that name."""
    rows = Appearances(farm().records).of_identity(name, limit=per_page + 1, offset=(page - 1) * per_page)
    if rows is None:
        return None
    views = [{"job": row["job"], "track": row["track"], "first_t": row["first_t"], "last_t": row["last_t"],
              "thumbnail": thumbnail_url(row["job"], row["track"]) if row["has_thumbnail"] else None,
              "source_name": row["source_name"], "recorded_at": row["recorded_at"]} for row in rows[:per_page]]
    return views, len(rows) > per_page


def photos(name: str) -> list[dict]:
    return [{"id": p["id"], "source": p["source"], "created_at": p["created_at"],
             "crop_url": url_for("people.photo", name=name, photo_id=p["id"]) if p["crop"] else None}
            for p in people.photos(farm(), name)]


def photo_path(name: str, photo_id: int):
    crop = next((p["crop"] for p in people.photos(farm(), name) if p["id"] == photo_id), None)
    return farm().store.local_path(crop) if crop else None


def track_faces(job_id: str) -> dict[int, dict]:
    """Per indexed track of the job: its face crop's URL (or None) and whether it names someone."""
    return {track: {"thumbnail": thumbnail_url(job_id, track) if row["has_thumbnail"] else None,
                    "named": row["identity_id"] is not None}
            for track, row in Appearances(farm().records).of_job(job_id).items()}
