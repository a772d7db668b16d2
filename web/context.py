"""The farm a web app works with (``services.farm.Farm``): opened from the settings the app
was created with (``web.create_app``), on first use, and kept on the app. Routes pass it to
the use cases. Opened lazily so that creating an app touches no database (``web.wsgi`` opens
it at start on purpose, to upgrade the schema before the first request)."""

from __future__ import annotations

from flask import current_app

from services.farm import Farm

EXTENSION = "vidfarm.farm"


def farm() -> Farm:
    opened = current_app.extensions.get(EXTENSION)
    if opened is None:     # two first requests at once open the same records and store: harmless
        opened = current_app.extensions[EXTENSION] = Farm.open(current_app.config["VIDFARM_SETTINGS"])
    return opened
