"""The farm a web app works with (``services.farm.Farm``): opened from the settings the app
was created with (``web.create_app``), on first use, and kept on the app. Routes pass it to
the use cases. Opened lazily so that creating an app touches no database (``web.wsgi`` opens
it at start on purpose, to upgrade the schema before the first request).

Also which requests answer an error as JSON ``{error}`` rather than an HTML page: the API's,
the page routes that a page's script calls with fetch (``json_errors``), and a page script's
request that asks for JSON (``asks_json``: upload.js posts to the Upload page's own route)."""

from __future__ import annotations

from flask import current_app, request

from services.farm import Farm

EXTENSION = "vidfarm.farm"


def farm() -> Farm:
    opened = current_app.extensions.get(EXTENSION)
    if opened is None:     # two first requests at once open the same records and store: harmless
        opened = current_app.extensions[EXTENSION] = Farm.open(current_app.config["VIDFARM_SETTINGS"])
    return opened


JSON_ERRORS = "vidfarm_json_errors"


def json_errors(view):
    """Mark a page route that a page's script calls with fetch (a WebRTC offer, say): its errors
    (503 Redis away, 404, a CSRF token gone stale) answer JSON ``{error}``, as the API's do, so
    the script can show the reason; an HTML error page would read to it as garbage."""
    setattr(view, JSON_ERRORS, True)
    return view


def answers_json() -> bool:
    """Whether this request's errors are answered as JSON (the API's, and ``json_errors`` routes)."""
    if request.path.startswith("/api/"):
        return True
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    return bool(getattr(view, JSON_ERRORS, False))


def asks_json() -> bool:
    """Whether this request's answer, errors included, is JSON: ``answers_json``, or a page's
    script that asks for it (upload.js posts each recording to the Upload page's own route with
    ``Accept: application/json``; an HTML page would read to it as "Upload failed (HTTP 400)")."""
    return answers_json() or request.accept_mimetypes.best == "application/json"
