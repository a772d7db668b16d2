"""What every request and response goes through, whoever asks: body limits, the proxies
trusted for the client's address, and the security headers.

Body limits: only a signed-in user with the right role may send a large body, and only to an
upload route; every other request (any anonymous one included) is refused past
``max_form_bytes`` with 413 before its body is read, so nothing reaches the disk.
"""

from __future__ import annotations

from apiflask import abort
from flask import current_app, request
from werkzeug.middleware.proxy_fix import ProxyFix

from web.auth import request_user

# Upload routes and the role each needs; every other route takes a small body.
UPLOAD_ROUTES = {"ui.upload": "operator", "api.create_job": "operator",
                 "gallery.enrol": "admin", "identities.enrol": "admin", "people.add_photo": "admin"}

# No inline script or style, no plugins, no framing; images may be data: URLs (the face crops
# shown right after an enrolment are); video may be a blob: URL (the live view's MediaSource).
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data:; media-src 'self' blob:; object-src 'none'; "
                           "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def limit_body():
    """before_request, ahead of CSRF and the form parser: Werkzeug refuses a body longer than
    ``request.max_content_length`` (413) from its Content-Length before reading any of it,
    or, when the body is chunked, as soon as it has read that much."""
    role = UPLOAD_ROUTES.get(request.endpoint)
    user = request_user()
    if role is None or user is None or not user.can(role):
        request.max_content_length = current_app.config["VIDFARM_SETTINGS"].max_form_bytes


def json_changes_only():
    """before_request: an API change (PATCH) is JSON. A body sent another way (``curl -d``,
    whose default is a form) would read as no field at all: a rename or watchlist flag that
    answers 200 and changes nothing. No API route reads such a form at all (uploads are
    multipart): a POST of one (registering a camera with ``curl -d``) was told its fields
    were "Missing data", which they were not."""
    if not request.path.startswith("/api/") or not request.content_length:
        return
    if request.method == "PATCH" and not request.is_json:
        abort(415, "send the change as JSON (Content-Type: application/json)")
    if request.mimetype == "application/x-www-form-urlencoded":
        abort(415, "send JSON (Content-Type: application/json), or multipart/form-data for an upload")


def is_small_body_limit() -> bool:
    """Whether this request was held to the small limit (for the 413 message)."""
    return request.max_content_length == current_app.config["VIDFARM_SETTINGS"].max_form_bytes


def security_headers(response):
    """after_request: for every response, pages, API, images and errors alike."""
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"           # frame-ancestors for older browsers
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "static":
        # Face crops, videos, results and pages name and show people: no shared cache keeps them.
        response.headers["Cache-Control"] = "private, no-store"
    return response


def trust_proxies(app, count: int) -> None:
    """Behind ``count`` reverse proxies (the chart's Ingress: 1), take the client's address and
    scheme from their X-Forwarded-For / -Proto; with 0 those headers are anyone's to forge."""
    if count:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count)
