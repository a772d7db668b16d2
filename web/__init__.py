"""The Flask application: REST API (and, later, the UI) over the farm's records and storage."""

from __future__ import annotations

from flask import Flask, jsonify

from core.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or get_settings()
    app = Flask(__name__)
    app.config["VIDFARM_SETTINGS"] = settings
    # Werkzeug refuses bodies past this with 413 before they are read.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes + 1024 * 1024

    from web.api import api

    app.register_blueprint(api)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.errorhandler(413)
    def too_large(_error):
        return jsonify(error=f"upload exceeds the {settings.max_upload_bytes} byte limit"), 413

    return app
