"""Serving a blob over HTTP with Range support, from whichever store the settings name.

The bytes come through ``BlobStore.read_range`` (the S3 store: a ranged GET proxied through,
so the bucket need not be reachable from browsers, and a seek fetches only what it asks for;
the local store: the file). A player's ``Range: bytes=a-b`` gets 206 with ``Content-Range``;
a range past the end, or several ranges at once, 416."""

from __future__ import annotations

from flask import Response, request, stream_with_context

from web.context import farm


def send_blob(key: str, mimetype: str) -> Response:
    store = farm().store
    size = store.size(key)          # FileNotFoundError when it is gone
    start, stop, status = 0, size, 200
    if request.range is not None:
        span = request.range.range_for_length(size) if request.range.units == "bytes" else None
        if span is None:
            return Response(status=416, headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"})
        (start, stop), status = span, 206
    response = Response(stream_with_context(store.read_range(key, start, stop)), status=status, mimetype=mimetype,
                        direct_passthrough=True)
    response.content_length = stop - start
    response.headers["Accept-Ranges"] = "bytes"
    if status == 206:
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    return response
