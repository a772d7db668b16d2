"""WSGI entry point: ``gunicorn web.wsgi:app``."""

from core.settings import get_settings
from core.storage import BlobStoreUnavailable
from services import runtime
from web import create_app

settings = runtime.configure(get_settings())   # parsed once, here
farm = runtime.farm()   # opens the records: the schema is upgraded (or checked) at start, not in the first request
try:
    farm.store.check()
except BlobStoreUnavailable as error:    # a wrong S3 endpoint, bucket or key: say so and stop
    raise SystemExit(f"vidfarm web: blob store: {error}") from None
app = create_app(settings, farm)
