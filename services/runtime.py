"""Per-process handles to settings, records and blob storage, opened on first use."""

from __future__ import annotations

from functools import lru_cache

from core.records import Records, open_records
from core.settings import Settings, get_settings
from core.storage import BlobStore, open_store


def settings() -> Settings:
    return get_settings()


def records() -> Records:
    return open_records(settings().sqlalchemy_url, settings().db_auto_upgrade)


@lru_cache(maxsize=1)
def store() -> BlobStore:
    return open_store(settings().data_dir)


def reset() -> None:
    """Forget handles inherited through fork; the child opens its own on first use."""
    open_records.cache_clear()
    store.cache_clear()
