"""The process's farm: its settings, records, blob storage and queue.

The settings are parsed once, by the process's entry point (the web factory's ``web.wsgi``,
a worker's start in ``tasks.worker``, the CLI's ``main``), which hands them here with
``configure``. The Celery tasks (adapters, with no caller to hand them anything) and the CLI
take their ``farm()`` from here and pass it to the use cases; the use cases themselves
(``services.*``) never read this module. A process that has no entry point of ours (a test,
a notebook) gets the environment's."""

from __future__ import annotations

from functools import lru_cache

from core.records import Records, open_records
from core.settings import Settings, get_settings
from core.storage import BlobStore
from services.farm import Farm, open_blob_store
from tasks import client

_configured: list[Settings] = []


def configure(settings: Settings) -> Settings:
    """Make ``settings`` this process's (records and store then open from them)."""
    reset()
    _configured[:] = [settings]
    return settings


def settings() -> Settings:
    # Unconfigured (no entry point of ours ran): the environment's, as parsed (and cached) by
    # get_settings, so a test that changes the environment and clears that cache is heard.
    return _configured[0] if _configured else get_settings()


def records() -> Records:
    return open_records(settings().sqlalchemy_url, settings().db_auto_upgrade)


@lru_cache(maxsize=1)
def store() -> BlobStore:
    return open_blob_store(settings())


def farm() -> Farm:
    # Built on each call (the handles below are kept): a test that changes the environment
    # is heard, as by settings().
    return Farm(settings(), records(), store(), client)


def reset() -> None:
    """Forget handles inherited through fork, and settings read before the environment
    changed; they are opened again on first use."""
    _configured.clear()
    open_records.cache_clear()
    store.cache_clear()
