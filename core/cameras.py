"""Cameras in Redis: the registry (what the farm watches) and what its ingester says of each.

- ``vidfarm:cameras``: a hash, camera id -> ``{id, name, url, created_at}`` (the url's scheme
  in lower case, however it was written).
- ``vidfarm:camera:<id>:state``: a hash the ingester keeps: ``status`` (and ``token``, the
  lease it was written under: read while nobody holds that lease, it is ``UNWATCHED``),
  ``behind_s`` (while its analysis trails capture: ``tasks.live_watch.LiveWatch.behind_s``), ``fps``,
  ``last_segment_at`` and ``latencies`` (the last ``LATENCY_WINDOW`` segments' latencies).
- ``vidfarm:camera:<id>:events``: a Redis stream (capped at ``EVENTS_KEPT``) of the camera's
  events, ``{kind, data}``: ``segment`` (one per processed segment), ``alert`` (each of its
  alerts; both say which alert each repeats, if it is a repeat: ``repeat_of``), ``status``
  (``{status, behind_s}``) and ``view`` (a piece of the live view is drawn).
- ``vidfarm:camera:<id>:view``: a list of the newest ``VIEW_KEPT`` live-view pieces, oldest
  first, where a page that opens starts.
- ``vidfarm:camera:<id>:watched``: set (for ``WATCHED_S``) while a page shows the live view;
  pieces are drawn only then.
  Stream ids are the Server-Sent Events' ids, so a client that reconnects with
  ``Last-Event-ID`` misses nothing still kept.

``vidfarm:camera:<id>:lease`` and ``:fence``: which ingest replica owns the camera
(``core.camera_leases``); the ingester's writes carry its fencing token.

One stream, one camera: ``add`` (and ``update``, a camera given a new address) refuses an
address already registered (``same_stream`` says when two addresses are one stream), checking
the whole registry inside a transaction (WATCH on the hash), so of two registrations of one
stream at once exactly one succeeds,
and a registry restored from any older AOF is checked as it is. No separate index: a second
record of the addresses would have to be kept in step on every delete and after every
restore, and a registry is tens of cameras, not millions.

Live state belongs with the broker, not the job records: it changes every few seconds and
means nothing once the farm stops. Deleting a camera removes all three; its ingester sees it
gone and stops.
"""

from __future__ import annotations

import json
import re
import statistics
import time
import uuid
from urllib.parse import urlsplit

import idna
import redis

from core.camera_leases import REGISTRY, fence_key, is_stale, lease_holder, lease_key

LATENCY_WINDOW = 100
EVENTS_KEPT = 1000
VIEW_KEPT = 10
WATCHED_S = 30.0      # a live view is drawn while a page marked it watched this recently
# The status of a camera whose status was written under a lease that nobody holds now.
UNWATCHED = "waiting for an ingester"
# The status of a camera whose address was just edited: its ingester drops the old stream at
# its next poll and connects to the new one (then ``connecting``, ``live``).
READDRESSED = "reconnecting (its address changed)"
# The status of a camera while no worker serves the live queue: its watch waits for one
# (``tasks.live_workers.LiveWorkerGate``).
WAITING_FOR_LIVE_WORKER = "waiting for a live worker"
NAME_PATTERN = r"^\w[\w .'()#-]{0,63}$"
# A stream address: its scheme, then a host part, no spaces. Whether it answers is the
# ingester's to find out (the camera's status says why not), not the registry's.
# webrtc://: a browser camera, which publishes through the web app (``core.camera_offers``).
# The scheme in any case (RFC 3986: schemes are case-insensitive), spelt out letter by letter:
# the pattern is also the OpenAPI document's, and JSON Schema patterns carry no flags.
# The host part (up to the first / ? or #) is printable ASCII, brackets only around an IPv6
# address (RFC 3986's IPv6address): urlsplit refuses an unclosed "[", a bracket around anything
# else, and characters such as "＃" there. So the pattern, which the API documents, is the whole
# rule: the API's fuzz test found addresses the pattern took and the registry then refused.
_H16 = "[0-9A-Fa-f]{1,4}"
_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_LS32 = rf"(?:{_H16}:{_H16}|{_OCTET}(?:\.{_OCTET}){{3}})"
_IPV6 = "|".join([
    rf"(?:{_H16}:){{6}}{_LS32}",
    rf"::(?:{_H16}:){{5}}{_LS32}",
    rf"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
    rf"(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}{_LS32}",
    rf"(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}",
    rf"(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
    rf"(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}",
    rf"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}",
    rf"(?:(?:{_H16}:){{0,6}}{_H16})?::",
])
_HOST_CHAR = r'[!"$-.0->@-Z\\^-~]'          # printable ASCII but / ? # [ ]
# An internationalised host name (kamera.bürö.example) is taken too: letters, digits, "-", "_",
# dots and characters past ASCII (in the Basic Multilingual Plane, as JSON Schema's patterns
# read them) but spaces, controls, most format characters (ZWNJ and ZWJ kept: IDNs use them;
# a few others, U+00AD or U+061C, pass and are mapped away or refused by IDNA below),
# surrogates, private use and noncharacters. ``ascii_host`` turns it into what DNS and FFmpeg
# take before anything else reads it, so urlsplit never sees it (it refuses "＃", say).
_IDN_CHAR = (r"[\u00a1-\u167f\u1681-\u1fff\u200c\u200d\u2010-\u2027\u2030-\u205e\u2070-\u2fff"
             r"\u3001-\ud7ff\uf900-\ufdcf\ufdf0-\ufefe\uff00-\ufff8]")
_IDN_HOST = rf"[-.0-9A-Z_a-z]*{_IDN_CHAR}(?:[-.0-9A-Z_a-z]|{_IDN_CHAR})*"
URL_PATTERN = (r"^([rR][tT][sS][pP][sS]?|[hH][tT][tT][pP][sS]?|[wW][eE][bB][rR][tT][cC])://"
               rf"(?:{_HOST_CHAR}+|(?:{_HOST_CHAR}*@)?(?:\[(?:{_IPV6})\]|{_IDN_HOST})(?::[0-9]*)?)"
               r"(?:[/?#][^\x00-\x20\x7f]*)?$")                          # no space or control character
BROWSER_URL = "webrtc://browser"
MAX_URL = 2048
NAME_RULE = "1-64 letters, digits, spaces or . ' ( ) # - _, starting with a letter or digit"
URL_RULE = ("a stream address (rtsp://, rtsps://, http://, https://, or webrtc:// for a browser camera), "
            "no spaces or control characters, an IPv6 address in [ ])")


class CameraError(ValueError):
    """A camera that cannot be registered; the message is one line."""


class DuplicateCamera(CameraError):
    """The stream is registered already, as ``camera`` (``{id, name, url, created_at}``)."""

    def __init__(self, camera: dict):
        self.camera = camera
        super().__init__(f"this stream is already registered as camera {camera['name']!r} (id {camera['id']}); "
                         "to change its address or password, edit that camera")


DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}


def _state_key(camera_id: str) -> str:
    return f"vidfarm:camera:{camera_id}:state"


def _events_key(camera_id: str) -> str:
    return f"vidfarm:camera:{camera_id}:events"


def _view_key(camera_id: str) -> str:
    return f"vidfarm:camera:{camera_id}:view"


def _watched_key(camera_id: str) -> str:
    return f"vidfarm:camera:{camera_id}:watched"


def _keys(camera_id: str) -> tuple[str, ...]:
    """Everything kept of a camera besides its registry entry."""
    return _state_key(camera_id), _events_key(camera_id), _view_key(camera_id), _watched_key(camera_id)


def view_piece_key(watch_id: str, segment: int) -> str:
    """Where a live-view piece is stored: beside its watch's segments (``tasks.live``)."""
    return f"live/{watch_id}/view/{segment:06d}.mp4"


def redacted(url: str) -> str:
    """The URL without its password (camera URLs often carry one), fit for logs and statuses."""
    return _PASSWORD.sub(r"\1:***@", url, count=1)


# user ":" password "@" (up to the authority's last "@", as FFmpeg splits it)
_PASSWORD = re.compile(r"^([a-z][a-z0-9+.-]*://[^:/?#@\s]*):[^/?#\s]*@", re.IGNORECASE)
_CREDENTIALS = re.compile(r"^[a-z][a-z0-9+.-]*://([^:/?#@\s]*):([^/?#\s]*)@", re.IGNORECASE)


def with_stored_password(url: str, stored: str) -> str:
    """``url`` with its masked password (``***``, as ``redacted`` shows it) replaced by the one
    ``stored`` has for the same user: an address edited from what the API or the page showed
    (a new path, say) keeps its password. CameraError when there is none to keep."""
    new = _CREDENTIALS.match(url)
    if new is None or new.group(2) != "***":
        return url
    old = _CREDENTIALS.match(stored)
    if old is None or old.group(1) != new.group(1):
        raise CameraError("the address's password is masked (***) and this camera has none stored for that "
                          "user: type the password")
    return url[:new.start(2)] + old.group(2) + url[new.end(2):]


def is_stream_address(url: str) -> bool:
    """A URL the registry (and `vidfarm watch`) takes as a camera's: scheme (any case), host,
    no spaces. fullmatch: Python's ``$`` also matches before a final newline (JSON Schema's does not)."""
    return len(url or "") <= MAX_URL and re.fullmatch(URL_PATTERN, url or "") is not None


def lower_scheme(url: str) -> str:
    """The address with its scheme in lower case, as it is stored and handed to FFmpeg, whose
    protocol lookup is case-sensitive ("RTSP://" is "Protocol not found" there)."""
    scheme, sep, rest = url.partition("://")
    return scheme.lower() + sep + rest if sep else url


def ascii_host(url: str) -> str:
    """A stream address (``is_stream_address``) with its host name in ASCII, as DNS and FFmpeg
    (whose resolver takes nothing else) know it: each label past ASCII in its punycode form
    (``kamera.bürö.example`` -> ``kamera.xn--br-gkaw.example``), mapped as a browser maps it
    (IDNA 2008 with UTS 46: capitals, decomposed letters and full-width forms are the same
    name); the rest as written. A label IDNA refuses (a symbol, a stray accent) is encoded as
    it is (as IDNA 2003 did), a name no DNS server knows: the camera's status then says it
    cannot be resolved, as for any other name that does not resolve."""
    scheme, sep, rest = url.partition("://")
    authority_end = min((rest.find(mark) for mark in "/?#" if mark in rest), default=len(rest))
    userinfo, at, host_port = rest[:authority_end].rpartition("@")
    host, colon, port = host_port.partition(":")     # an IDN host has no ":" nor brackets
    if host.isascii():
        return url
    host = ".".join(_ascii_label(label) for label in host.split("."))
    return f"{scheme}{sep}{userinfo}{at}{host}{colon}{port}{rest[authority_end:]}"


def _ascii_label(label: str) -> str:
    if label.isascii():
        return label
    try:
        return idna.encode(label, uts46=True).decode("ascii")
    except UnicodeError:      # idna.IDNAError is one
        return "xn--" + label.encode("punycode").decode("ascii")


def stream_key(url: str) -> str | None:
    """What makes two addresses one stream: the scheme and host (any case), the port (the
    scheme's default when none is given), then the path and query exactly (servers read them
    case-sensitively; ``?channel=2`` is another stream). Credentials do not count: the same
    camera with a new password is the same stream (re-registering it is refused, naming the
    camera to edit instead), and two sets of credentials must not make one camera watched
    twice. None for a browser camera (``webrtc://``): its address names no stream, each
    registration is its own publisher."""
    scheme = url.partition("://")[0].lower()
    if scheme == "webrtc":
        return None
    try:
        parts = urlsplit(url)
    except ValueError:        # one registered before is_stream_address refused these: as written
        return url
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme)
        host = (parts.hostname or "").lower()
        host = f"[{host}]" if ":" in host else host        # an IPv6 address keeps its brackets
    except ValueError:        # not a number for a port: compare the host part as written
        host, port = parts.netloc.rpartition("@")[2].lower(), None
    port = f":{port}" if port else ""
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{host}{port}{parts.path or '/'}{query}"


def same_stream(a: str, b: str) -> bool:
    key = stream_key(a)
    return key is not None and key == stream_key(b)


def check_camera(name: str, url: str) -> tuple[str, str]:
    if not re.fullmatch(NAME_PATTERN, name or ""):
        raise CameraError(f"invalid name {name!r}: {NAME_RULE}")
    if not is_stream_address(url):
        raise CameraError(f"invalid url: {URL_RULE}")
    return name.strip(), ascii_host(lower_scheme(url))


class CameraRegistry:
    def __init__(self, client: redis.Redis):
        self.redis = client

    @classmethod
    def from_url(cls, redis_url: str) -> "CameraRegistry":
        return cls(redis.Redis.from_url(redis_url, decode_responses=True))

    # --- the registry --------------------------------------------------------------------

    def add(self, name: str, url: str) -> dict:
        """Register a camera; DuplicateCamera if its stream is registered already."""
        name, url = check_camera(name, url)
        camera = {"id": uuid.uuid4().hex, "name": name, "url": url, "created_at": round(time.time(), 3)}
        return self._write_camera(lambda cameras: camera)

    def update(self, camera_id: str, name: str | None = None, url: str | None = None) -> dict | None:
        """Change a camera's name or stream address (None: kept), checked as ``add`` checks them;
        the camera as it is now, None if there is no such camera. The address as the API shows
        it (``redacted``: its password masked) keeps the password stored, also with its path or
        host changed (``with_stored_password``), so a client or form that sends back what it was
        shown changes nothing but what was edited. The ingester that holds the camera
        reads a new address at its next poll and watches that stream instead; until then the
        camera's status says so (``READDRESSED``, written with the edit), not what its old
        stream did a moment ago."""

        def changed(cameras: dict[str, dict]) -> dict | None:
            camera = cameras.get(camera_id)
            if camera is None:
                return None
            new_url = None if url is None else with_stored_password(url, camera["url"])
            new_name, new_url = check_camera(camera["name"] if name is None else name,
                                             camera["url"] if new_url is None else new_url)
            return {**camera, "name": new_name, "url": new_url}

        def readdressed(pipe, before: dict, after: dict):
            # What its ingester said of the old stream is no longer news. Only a status an
            # ingester wrote is replaced (one never watched says so already), and its lease
            # token stays: while nobody holds that lease, it reads as UNWATCHED, as before.
            # Read in the transaction (the state is watched): a status the old watch writes
            # meanwhile aborts it, and the edit, checking again, replaces that one too.
            if after["url"] == before["url"] or not pipe.hexists(_state_key(camera_id), "status"):
                return None

            def writes(pipe) -> None:
                pipe.hset(_state_key(camera_id), "status", READDRESSED)
                pipe.hdel(_state_key(camera_id), "behind_s")
                self._publish(pipe, camera_id, "status", {"status": READDRESSED, "behind_s": None})
            return writes
        return self._write_camera(changed, readdressed, watched=(_state_key(camera_id),))

    def _write_camera(self, made, also=None, watched: tuple[str, ...] = ()) -> dict | None:
        """Write the camera ``made(cameras)`` returns (None: nothing to write) unless another
        camera has its stream (DuplicateCamera). Every camera is read and the one written in one
        transaction: a registration, edit or delete between the two aborts it (WATCH) and it
        checks again. ``also(pipe, before, camera)``: reads (``pipe`` executes at once, the
        ``watched`` keys watched too) that return more writes for that transaction, a
        ``writes(pipe)`` or None (``before``: the camera as it was, None for a new one)."""
        with self.redis.pipeline() as pipe:
            while True:
                pipe.watch(REGISTRY, *watched)
                cameras = {c["id"]: c for c in map(json.loads, pipe.hvals(REGISTRY))}
                camera = made(cameras)
                if camera is None:
                    pipe.unwatch()
                    return None
                existing = next((c for c in cameras.values()
                                 if c["id"] != camera["id"] and same_stream(c["url"], camera["url"])), None)
                if existing is not None:
                    pipe.unwatch()
                    raise DuplicateCamera(existing)
                more = None if also is None else also(pipe, cameras.get(camera["id"]), camera)
                pipe.multi()
                pipe.hset(REGISTRY, camera["id"], json.dumps(camera))
                if more is not None:
                    more(pipe)
                try:
                    pipe.execute()
                    return camera
                except redis.WatchError:
                    continue

    def cameras(self) -> list[dict]:
        """Every registered camera (its url as given, password included: for the ingester)."""
        return sorted((json.loads(v) for v in self.redis.hvals(REGISTRY)), key=lambda c: c["created_at"])

    def get(self, camera_id: str) -> dict | None:
        value = self.redis.hget(REGISTRY, camera_id)
        return None if value is None else json.loads(value)

    def delete(self, camera_id: str) -> bool:
        removed = self.redis.hdel(REGISTRY, camera_id)
        self.redis.delete(*_keys(camera_id), lease_key(camera_id), fence_key(camera_id))
        return bool(removed)

    def state(self, camera_id: str) -> dict:
        """``{status, behind_s, fps, last_segment_at, latency_p50_s, latency_p95_s}`` (nothing
        known yet: ``connecting`` and nulls)."""
        pipe = self.redis.pipeline(transaction=False)
        raw, lease = pipe.hgetall(_state_key(camera_id)).get(lease_key(camera_id)).execute()
        latencies = json.loads(raw.get("latencies", "[]"))
        holder = lease_holder(lease)
        if "token" in raw and (holder is None or holder[1] != int(raw["token"])):
            # The ingester that wrote it no longer holds the camera (it stopped, or died and
            # its lease lapsed) and no new watch has spoken yet: its last word ("live") is not news.
            raw = {**raw, "status": UNWATCHED}
            raw.pop("behind_s", None)
        return {"status": raw.get("status", "connecting"),
                "behind_s": None if "behind_s" not in raw else float(raw["behind_s"]),
                "fps": None if "fps" not in raw else float(raw["fps"]),
                "last_segment_at": None if "last_segment_at" not in raw else float(raw["last_segment_at"]),
                "latency_p50_s": percentile(latencies, 50), "latency_p95_s": percentile(latencies, 95)}

    # --- the ingester's side -------------------------------------------------------------

    def set_status(self, camera_id: str, status: str, token: int | None = None,
                   behind_s: float | None = None, url: str | None = None) -> bool:
        """behind_s: how far the camera's analysis trails capture, None while it keeps up;
        token: the writer's fencing token (``core.camera_leases``); False: the write was
        refused (a newer owner holds the camera, or it was deleted). url: the address the
        writer watches; a status of an address since edited is not written (``READDRESSED``
        stands until the ingester drops that watch, at its next poll), checked in the write's
        transaction: an edit between the check and the write aborts it, and it checks again."""

        def writes(pipe) -> None:
            if behind_s is None:
                pipe.hdel(_state_key(camera_id), "behind_s")
            if token is None:
                pipe.hdel(_state_key(camera_id), "token")
            fields = {"status": status, "behind_s": behind_s, "token": token}
            pipe.hset(_state_key(camera_id), mapping={k: v for k, v in fields.items() if v is not None})
            self._publish(pipe, camera_id, "status", {"status": status, "behind_s": behind_s})
        return self._write(camera_id, token, writes, url=url) is not None

    def holds(self, camera_id: str, token: int | None) -> bool:
        """Whether the camera is still registered and ``token`` is still its fence (None: no
        leases, one ingester): what a writer checks before work that must be done once, by the
        owner (ringing a segment's alerts) and whose outcome it then writes, fenced."""
        return self.get(camera_id) is not None and (token is None or not is_stale(self.redis, camera_id, token))

    def segment_done(self, camera_id: str, line: dict, fps: float, token: int | None = None,
                     folds: list[dict] | None = None) -> bool:
        """One processed segment (a ``live.jsonl`` line) with its alerts as recorded: the state,
        its ``segment`` event, then one ``alert`` event per alert, in one transaction.

        ``folds``, in the line's order: each alert's ``{id, repeat_of}`` (``repeat_of``: the
        alert that rang about that person shortly before, None if it rang), as the records
        decided (``core.alerts``); None: they could not be recorded, both None. The segment
        event's alerts carry them too, so no consumer of either event takes a repeat for a new
        alert or has to decide again what a repeat is. Alert events that rang go first, so a
        page has the alert a repeat folds under before the repeat (two tracks of one person in
        one segment). token: the writer's fencing token (``core.camera_leases``); False: the
        write was refused (a newer owner holds the camera, or it was deleted)."""
        folds = folds or [{"id": None, "repeat_of": None}] * len(line["alerts"])
        alerts = [{**alert, "id": fold["id"], "repeat_of": fold["repeat_of"]}
                  for alert, fold in zip(line["alerts"], folds)]
        # An alert event says when its own frame was captured (as its record does), not its
        # segment's first, and how long after that it was raised.
        events = sorted(({**alert, **_raised(alert["captured_at"], line["ready_at"])}
                         for alert in alerts), key=lambda event: event["repeat_of"] is not None)
        state = self.redis.hgetall(_state_key(camera_id))
        latencies = (json.loads(state.get("latencies", "[]")) + [line["latency_s"]])[-LATENCY_WINDOW:]

        def writes(pipe) -> None:
            pipe.hset(_state_key(camera_id), mapping={
                "fps": round(fps, 3), "last_segment_at": line["ready_at"], "latencies": json.dumps(latencies)})
            self._publish(pipe, camera_id, "segment", {**line, "alerts": alerts})
            for event in events:
                self._publish(pipe, camera_id, "alert", event)
        return self._write(camera_id, token, writes) is not None

    def _write(self, camera_id: str, token: int | None, writes, url: str | None = None) -> list | None:
        """The writes, in one transaction, while the camera is registered and, with a token,
        while it is still the camera's fence: the replies of the writes' commands, None (nothing
        written) otherwise; with a url, only while that is still the camera's address ([],
        nothing written, otherwise: the writer still owns the camera). All checked and written
        atomically: WATCH aborts the writes if the fence or the registry changes between, and
        they are checked again (a fence moved: None). So no write lands after a delete's HDEL
        (and the delete's DEL, after it, removes any that landed before): nothing needs
        looking at again afterwards."""
        with self.redis.pipeline() as pipe:
            while True:
                pipe.watch(REGISTRY, *([fence_key(camera_id)] if token is not None else []))
                if token is not None and pipe.get(fence_key(camera_id)) != str(token):
                    return None
                value = pipe.hget(REGISTRY, camera_id)
                if value is None:
                    return None     # deleted meanwhile: leave nothing behind
                if url is not None and url != json.loads(value)["url"]:
                    return []       # still the owner: the watch ends at the ingester's next poll
                pipe.multi()
                writes(pipe)
                try:
                    return pipe.execute()
                except redis.WatchError:
                    continue

    def view_ready(self, camera_id: str, piece: dict) -> list[dict]:
        """A live-view piece is drawn: list it and announce it. Returns the pieces that fell
        off the list (their files can go): the piece itself when the camera is gone."""
        key = _view_key(camera_id)

        def writes(pipe) -> None:    # one transaction: two workers never drop the same piece
            pipe.rpush(key, json.dumps(piece))
            pipe.lrange(key, 0, -VIEW_KEPT - 1)
            pipe.ltrim(key, -VIEW_KEPT, -1)
            self._publish(pipe, camera_id, "view", piece)
        replies = self._write(camera_id, None, writes)
        return [piece] if replies is None else [json.loads(p) for p in replies[1]]

    def mark_watched(self, camera_id: str) -> None:
        """A page shows this camera's live view (for the next ``WATCHED_S``)."""
        if self.get(camera_id) is not None:
            self.redis.set(_watched_key(camera_id), 1, ex=round(WATCHED_S))

    def watched(self, camera_id: str) -> bool:
        return bool(self.redis.exists(_watched_key(camera_id)))

    def view(self, camera_id: str) -> list[dict]:
        """The newest live-view pieces, oldest first."""
        return [json.loads(p) for p in self.redis.lrange(_view_key(camera_id), 0, -1)]

    def recent(self, camera_id: str, kind: str, count: int, scanned: int = EVENTS_KEPT) -> list[dict]:
        """The newest ``count`` events of one kind (among the last ``scanned``), newest first."""
        return self.recent_and_cursor(camera_id, kind, count, scanned)[0]

    def recent_and_cursor(self, camera_id: str, kind: str, count: int,
                          scanned: int = EVENTS_KEPT) -> tuple[list[dict], str]:
        """``recent``, and the newest event's id when they were read ("0-0" without any), both
        from one read: a listener that starts after that id (a page that lists these) gets
        every later event and none of these again."""
        entries = self.redis.xrevrange(_events_key(camera_id), count=scanned)
        found = []
        for _, fields in entries:
            if fields["kind"] == kind:
                found.append(json.loads(fields["data"]))
                if len(found) == count:
                    break
        return found, entries[0][0] if entries else "0-0"

    def publish(self, camera_id: str, kind: str, data: dict) -> str:
        return self._publish(self.redis, camera_id, kind, data)

    @staticmethod
    def _publish(client, camera_id: str, kind: str, data: dict):
        return client.xadd(_events_key(camera_id), {"kind": kind, "data": json.dumps(data)},
                           maxlen=EVENTS_KEPT, approximate=True)

    def events(self, camera_id: str, after: str, block_ms: int) -> list[tuple[str, str, dict]]:
        """Events after stream id ``after`` ("$": only new ones), waiting up to ``block_ms``
        for the first: ``[(id, kind, data)]``."""
        replies = self.redis.xread({_events_key(camera_id): after}, block=block_ms, count=100) or []
        return [(event_id, fields["kind"], json.loads(fields["data"]))
                for _, entries in replies for event_id, fields in entries]

    def last_event_id(self, camera_id: str) -> str:
        """The newest event's id ("0-0" without any): where a new listener starts."""
        newest = self.redis.xrevrange(_events_key(camera_id), count=1)
        return newest[0][0] if newest else "0-0"


def _raised(captured_at: float, ready_at: float) -> dict:
    """An alert event's times: its frame's capture, when it was raised, and the time between."""
    return {"captured_at": captured_at, "ready_at": ready_at, "latency_s": round(ready_at - captured_at, 3)}


def status_text(status: str, behind_s: float | None) -> str:
    """A camera's status as people read it, with how far its analysis trails capture when it
    does ("live, 52 s behind")."""
    return status if behind_s is None else f"{status}, {behind_s:g} s behind"


def percentile(values: list[float], q: int) -> float | None:
    """The q-th percentile (1-99) of some latencies, inclusive method; None without any."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 3)
