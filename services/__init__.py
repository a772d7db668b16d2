"""The application's use cases (submit, delete, enrol, erase, list...), called by web/, cli/ and
the Celery tasks alike. They import no model, codec or analyzer: work that needs one is queued
to a worker by task name (``tasks.client``)."""
