"""WSGI entry point: ``gunicorn web.wsgi:app``."""

from core.settings import get_settings
from services import runtime
from web import create_app

settings = runtime.configure(get_settings())   # parsed once, here
runtime.records()   # upgrade (or check) the database schema at start, not in the first request
app = create_app(settings)
