"""WSGI entry point: ``gunicorn web.wsgi:app``."""

from services import runtime
from web import create_app

runtime.records()   # upgrade (or check) the database schema at start, not in the first request
app = create_app()
