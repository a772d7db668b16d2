"""WebRTC offers for browser cameras, handed from the web app to the camera's ingester in Redis.

The browser's media goes straight to the process that holds the camera (the ingester), not
through the web app; only the offer and its answer pass here. The web app pushes the offer
onto ``vidfarm:camera:<id>:offers`` with a reply key and waits for the answer there; the
camera's ``BrowserSource`` pops it, answers (or says why not) and receives the track. An
offer nobody took in time is skipped by the ingester: its browser has been told so already.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Callable

import redis

MAX_SDP = 64 * 1024
KEEP_S = 60          # keys left behind by a side that gave up expire after this


class OfferError(ValueError):
    """An offer that cannot be sent; the message is one line."""


# Publishers' offers (a browser camera sending its video) and viewers' (a page playing the
# camera's live view over WebRTC, ``workers.live.playback``) wait in lists of their own.
KINDS = ("offers", "viewers")


def _offers_key(camera_id: str, kind: str = "offers") -> str:
    return f"vidfarm:camera:{camera_id}:{kind}"


def check_offer(offer: dict) -> dict:
    if not isinstance(offer, dict) or offer.get("type") != "offer":
        raise OfferError('an offer is {"type": "offer", "sdp": "..."}')
    sdp = offer.get("sdp")
    if not isinstance(sdp, str) or not sdp.startswith("v=0") or len(sdp) > MAX_SDP:
        raise OfferError(f"sdp: a session description (starting v=0, at most {MAX_SDP // 1024} KiB)")
    return {"type": "offer", "sdp": sdp}


class CameraOffers:
    def __init__(self, client: redis.Redis, kind: str = "offers"):
        if kind not in KINDS:
            raise ValueError(f"kind: one of {KINDS}")
        self.redis, self.kind = client, kind

    def exchange(self, camera_id: str, offer: dict, timeout: float) -> dict | None:
        """The web app's side: send an offer, wait for the answer (``{sdp, type}`` or
        ``{error}``); None when no ingester answered within ``timeout`` seconds."""
        offer = check_offer(offer)
        reply_key = f"vidfarm:camera:{camera_id}:answer:{uuid.uuid4().hex}"
        message = {"offer": offer, "reply": reply_key, "until": time.time() + timeout}
        with self.redis.pipeline() as pipe:
            pipe.rpush(_offers_key(camera_id, self.kind), json.dumps(message))
            pipe.expire(_offers_key(camera_id, self.kind), KEEP_S)
            pipe.execute()
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            # One wait of 15 s outlasts the client's socket timeout (redis-py's default: 5 s),
            # whose TimeoutError was a 500 where no ingester answered: wait a second at a time.
            got = self.redis.blpop([reply_key], timeout=max(0.01, min(1.0, left)))
            if got is not None:
                return json.loads(got[1])
        return None

    def next(self, camera_id: str, timeout: float) -> tuple[dict, Callable[[dict], None]] | None:
        """The ingester's side: the oldest offer still awaited (waiting up to ``timeout``; 0:
        only one already there) and how to answer it."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left > 0:
                got = self.redis.blpop([_offers_key(camera_id, self.kind)], timeout=max(0.01, left))
                raw = None if got is None else got[1]
            else:
                raw = self.redis.lpop(_offers_key(camera_id, self.kind))
            if raw is None:
                return None
            message = json.loads(raw)
            if message["until"] > time.time():
                return message["offer"], self._replier(message["reply"])
            # its browser was told nobody answered: skip it

    def _replier(self, reply_key: str) -> Callable[[dict], None]:
        def reply(answer: dict) -> None:
            with self.redis.pipeline() as pipe:
                pipe.rpush(reply_key, json.dumps(answer))
                pipe.expire(reply_key, KEEP_S)
                pipe.execute()
        return reply
