"""Erasing a person, the part a request does (``tasks.erasure`` does the rest in the
background): the identity, its embeddings and face crops go at once, so no job matches them
from then on; and the report of what an erasure removed."""

from __future__ import annotations

from core.erasures import Erasures
from core.models import iso_utc
from services.farm import Farm, queue_follow_up


def start(farm: Farm, name: str) -> dict | None:
    """Delete the person named ``name`` from the gallery now and queue the rest of their
    erasure. Returns the erasure's report so far; None when there is no such person."""
    erasures, store = Erasures(farm.records), farm.store
    started = erasures.start(name)
    if started is None:
        return None
    for key in started.crop_keys:
        store.delete_prefix(key)
    erasure = erasures.get(started.erasure_id)
    erasures.set(erasure.id, report={**erasure.report, "crops_removed": len(started.crop_keys)})
    queue_follow_up(farm, "vidfarm.erase", erasure.id)      # the id only: no name travels through the broker
    return report_of(erasures.get(erasure.id))


def report_of(erasure) -> dict:
    """The public view of an erasure: what it removed so far (never whom)."""
    return {"id": erasure.id, "status": erasure.status,
            "created_at": iso_utc(erasure.created_at),
            "finished_at": iso_utc(erasure.finished_at),
            **_totals(erasure.report.get("jobs", {})), **erasure.report}


def _totals(jobs: dict) -> dict:
    return {"jobs_republished": sum(1 for j in jobs.values() if j.get("results_version")),
            "versions_deleted": sum(len(j.get("versions_deleted", [])) for j in jobs.values()),
            "segment_files_scrubbed": sum(j.get("segment_files_scrubbed", 0) for j in jobs.values()),
            "videos_rerendered": sum(1 for j in jobs.values() if j.get("video", "").startswith("re-rendered"))}


def find(farm: Farm, erasure_id: str) -> dict | None:
    erasure = Erasures(farm.records).get(erasure_id)
    return None if erasure is None else report_of(erasure)
