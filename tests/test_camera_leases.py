"""Camera leases (``core.camera_leases``) and the fence on the registry's writes, in a real Redis."""

from __future__ import annotations

import time

import pytest

from cli.redis_server import RedisServer
from core.camera_leases import CameraLeases, lease_key
from core.cameras import READDRESSED, UNWATCHED, CameraRegistry


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield CameraRegistry.from_url(server.url)


def line(segment: int) -> dict:
    return {"segment": segment, "first_frame": 30 * segment, "frames": 30, "captured_at": 100.0 + segment,
            "ready_at": 102.0 + segment, "latency_s": 2.0, "faces": 1, "alerts": [
                {"kind": "no_mask", "track": 1, "frame": 30 * segment, "t": 0.0, "detail": "no mask",
                 "captured_at": 100.0 + segment}]}


def test_one_owner_at_a_time_and_a_new_token_for_each(registry):
    camera_id = registry.add("Lease", "rtsp://cam/lease")["id"]
    a, b = CameraLeases(registry.redis, "a", lease_s=5), CameraLeases(registry.redis, "b", lease_s=5)
    token = a.acquire(camera_id)
    assert token == 1 and a.acquire(camera_id) == token      # held already: the same token, renewed
    assert b.acquire(camera_id) is None and a.holder(camera_id) == ("a", 1)
    assert a.renew(camera_id, token) and not b.renew(camera_id, token) and not a.renew(camera_id, token + 1)
    b.release(camera_id, token)                               # not b's to give back
    assert a.holder(camera_id) == ("a", 1)
    a.release(camera_id, token)
    assert a.holder(camera_id) is None
    assert b.acquire(camera_id) == 2 and not a.renew(camera_id, token)
    registry.delete(camera_id)
    assert registry.redis.keys(f"*{camera_id}*") == []


def test_a_camera_deleted_is_not_taken_and_leaves_no_fence(registry):
    """An ingester that listed a camera just before it was deleted asks for it after: it is
    not taken, and no fence is started again (CI once found the key left after a delete)."""
    camera_id = registry.add("Gone", "rtsp://cam/gone")["id"]
    leases = CameraLeases(registry.redis, "a", lease_s=5)
    assert leases.acquire(camera_id) == 1
    registry.delete(camera_id)
    assert leases.acquire(camera_id) is None
    assert registry.redis.keys(f"*{camera_id}*") == []


def test_an_expired_lease_goes_to_the_next_replica(registry):
    camera_id = registry.add("Expiry", "rtsp://cam/expiry")["id"]
    a, b = CameraLeases(registry.redis, "a", lease_s=5), CameraLeases(registry.redis, "b", lease_s=5)
    old = a.acquire(camera_id)
    registry.redis.pexpire(lease_key(camera_id), 1)           # a stopped renewing a lease time ago
    time.sleep(0.01)
    new = b.acquire(camera_id)
    assert new == old + 1 and not a.renew(camera_id, old) and a.acquire(camera_id) is None
    assert 0 < registry.redis.pttl(lease_key(camera_id)) <= 5000
    registry.delete(camera_id)


def segment_done(registry, camera_id: str, segment: int, fps: float, token: int | None) -> bool:
    """A segment's state and event, then its alert's (as ``tasks.camera_ingest`` writes them)."""
    return registry.segment_done(camera_id, line(segment), fps, token=token,
                                 folds=[{"id": segment, "repeat_of": None}])


def test_the_fence_refuses_a_stale_owners_writes(registry):
    camera_id = registry.add("Fence", "rtsp://cam/fence")["id"]
    a, b = CameraLeases(registry.redis, "a", lease_s=5), CameraLeases(registry.redis, "b", lease_s=5)
    old = a.acquire(camera_id)
    start = registry.last_event_id(camera_id)
    assert registry.set_status(camera_id, "live", token=old)
    assert segment_done(registry, camera_id, 0, 15.0, token=old)
    registry.redis.delete(lease_key(camera_id))               # a's lease ran out while it stalled
    new = b.acquire(camera_id)
    assert segment_done(registry, camera_id, 1, 15.0, token=new)
    before = (registry.state(camera_id), registry.events(camera_id, start, block_ms=10))
    # a wakes up and carries on: its status, segment and alert are refused and change nothing.
    assert not registry.segment_done(camera_id, line(2), 12.0, token=old)
    assert not registry.holds(camera_id, old) and registry.holds(camera_id, new)     # it would ring nothing
    assert not registry.set_status(camera_id, "reconnecting (stale)", token=old)
    assert (registry.state(camera_id), registry.events(camera_id, start, block_ms=10)) == before
    events = before[1]
    assert [(kind, data.get("segment")) for _, kind, data in events] == \
        [("status", None), ("segment", 0), ("alert", None), ("segment", 1), ("alert", None)]
    assert registry.state(camera_id)["fps"] == 15.0
    # Writes without a token (one ingester, no leases) are not fenced.
    assert registry.set_status(camera_id, "live")
    registry.delete(camera_id)
    assert not registry.segment_done(camera_id, line(3), 15.0, token=new)    # deleted: refused too
    assert registry.redis.keys(f"*{camera_id}*") == []


def test_the_fence_moving_mid_write_aborts_it(registry, monkeypatch):
    """A new owner taking the camera between the fence check and the write: nothing written."""
    camera_id = registry.add("Race", "rtsp://cam/race")["id"]
    a, b = CameraLeases(registry.redis, "a", lease_s=5), CameraLeases(registry.redis, "b", lease_s=5)
    old = a.acquire(camera_id)
    start = registry.last_event_id(camera_id)
    real_publish = CameraRegistry._publish

    def publish_after_a_takeover(client, *args):
        if registry.redis.exists(lease_key(camera_id)):
            registry.redis.delete(lease_key(camera_id))
            b.acquire(camera_id)               # on another connection, between WATCH and EXEC
        return real_publish(client, *args)
    monkeypatch.setattr(CameraRegistry, "_publish", staticmethod(publish_after_a_takeover))
    assert not registry.segment_done(camera_id, line(0), 15.0, token=old)
    monkeypatch.undo()
    assert registry.events(camera_id, start, block_ms=10) == [] and registry.state(camera_id)["fps"] is None
    registry.delete(camera_id)


def test_replicas_are_counted_by_heartbeat_and_share_evenly(registry):
    a, b = CameraLeases(registry.redis, "a", lease_s=5), CameraLeases(registry.redis, "b", lease_s=5)
    assert a.heartbeat(now=1000.0) == 1 and b.heartbeat(now=1001.0) == 2
    assert a.heartbeat(now=1006.5) == 1         # b silent for more than a lease: gone
    b.heartbeat(now=1007.0)
    b.leave()
    assert a.heartbeat(now=1007.0) == 1
    a.leave()
    assert [CameraLeases.share(c, r) for c, r in [(0, 2), (1, 2), (2, 2), (3, 2), (5, 1), (4, 0)]] == \
        [0, 1, 1, 2, 5, 4]


def test_an_edited_address_says_at_once_that_the_camera_reconnects(registry):
    """A camera's address edited (PATCH) answered its old stream's status ("live") until the
    ingester read the new address at its next poll: the edit says it reconnects, and a late
    status of the old stream's watch does not undo that; the new watch's first status does."""
    camera_id = registry.add("Moved", "rtsp://cam/old")["id"]
    leases = CameraLeases(registry.redis, "a", lease_s=5)
    token = leases.acquire(camera_id)
    assert registry.set_status(camera_id, "live", token=token, behind_s=8, url="rtsp://cam/old")

    def shown():
        state = registry.state(camera_id)
        return state["status"], state["behind_s"]
    registry.update(camera_id, name="Moved again")          # a new name alone: the same stream, the same watch
    assert shown() == ("live", 8)
    start = registry.last_event_id(camera_id)
    registry.update(camera_id, url="rtsp://cam/new")
    assert shown() == (READDRESSED, None)
    assert [data for _, _, data in registry.events(camera_id, start, block_ms=10)] == [
        {"status": READDRESSED, "behind_s": None}]
    # The old watch, before its ingester's next poll: still the owner, its word no longer news.
    assert registry.set_status(camera_id, "reconnecting (the stream ended)", token=token, url="rtsp://cam/old")
    assert shown() == (READDRESSED, None)
    leases.release(camera_id, token)                        # dropped: nobody holds it for a moment
    assert shown() == (UNWATCHED, None)
    token = leases.acquire(camera_id)
    assert registry.set_status(camera_id, "connecting", token=token, url="rtsp://cam/new")
    assert shown() == ("connecting", None)
    leases.release(camera_id, token)
    registry.delete(camera_id)
    never = registry.add("Never watched", "rtsp://cam/never")["id"]
    registry.update(never, url="rtsp://cam/never-2")        # no ingester said anything: as before
    assert registry.state(never)["status"] == "connecting"
    registry.delete(never)


def test_an_edit_between_the_old_watch_s_address_check_and_its_write_still_stands(registry, monkeypatch):
    """The old watch's status checked the address, then wrote: an edit that came between (here
    while its write is being queued) was overwritten, the camera shown "live" on its old stream
    until the next poll. The check is in the write's transaction: the edit aborts it, and the
    check, made again, finds the address changed. A stale owner's status of an old address is
    refused (it was taken as written)."""
    camera_id = registry.add("Raced", "rtsp://cam/raced")["id"]
    leases = CameraLeases(registry.redis, "a", lease_s=5)
    token = leases.acquire(camera_id)
    assert registry.set_status(camera_id, "connecting", token=token, url="rtsp://cam/raced")
    editor = CameraRegistry(registry.redis)          # the web app, on its own
    publish = registry._publish

    def edited_meanwhile(pipe, camera, kind, data):
        if registry.get(camera)["url"] == "rtsp://cam/raced":
            editor.update(camera_id, url="rtsp://cam/raced-2")
        publish(pipe, camera, kind, data)
    monkeypatch.setattr(registry, "_publish", edited_meanwhile)
    assert registry.set_status(camera_id, "live", token=token, url="rtsp://cam/raced")
    assert registry.state(camera_id)["status"] == READDRESSED
    monkeypatch.undo()
    leases.release(camera_id, token)
    assert leases.acquire(camera_id) == token + 1
    assert not registry.set_status(camera_id, "live", token=token, url="rtsp://cam/raced")
    registry.delete(camera_id)


def test_an_edit_replaces_a_status_written_as_it_is_committed(registry, monkeypatch):
    """The edit looked whether an ingester had said anything (hexists) outside its transaction:
    a camera's first status written between that look and the edit's commit (here just before
    it) stood, "connecting" on the old stream, until the next poll. The look is in the
    transaction, the state watched: that status aborts it, and the edit, again, replaces it."""
    import redis

    camera_id = registry.add("First word", "rtsp://cam/first")["id"]
    leases = CameraLeases(registry.redis, "a", lease_s=5)
    token = leases.acquire(camera_id)
    ingester = CameraRegistry(registry.redis)
    execute = redis.client.Pipeline.execute
    said = []

    def first_word_as_it_commits(pipe, *args, **kwargs):
        if not said:        # the edit's commit (the first), not the status's own
            said.append(None)
            said[0] = ingester.set_status(camera_id, "connecting", token=token, url="rtsp://cam/first")
        return execute(pipe, *args, **kwargs)
    monkeypatch.setattr(redis.client.Pipeline, "execute", first_word_as_it_commits)
    registry.update(camera_id, url="rtsp://cam/first-2")
    monkeypatch.undo()
    assert said == [True] and registry.state(camera_id)["status"] == READDRESSED
    leases.release(camera_id, token)
    registry.delete(camera_id)


def test_a_status_nobody_holds_the_camera_for_is_not_shown_as_current(registry):
    """An ingester that stopped, or died and whose lease lapsed, leaves its last status
    behind: a farm restarted, or without a running ingester, showed its cameras "live"."""
    camera_id = registry.add("Unheld", "rtsp://cam/unheld")["id"]
    leases = CameraLeases(registry.redis, "a", lease_s=5)
    token = leases.acquire(camera_id)
    assert registry.set_status(camera_id, "live", token=token, behind_s=12)

    def shown():
        state = registry.state(camera_id)
        return state["status"], state["behind_s"]
    assert shown() == ("live", 12)
    leases.release(camera_id, token)                # its ingester stopped
    assert shown() == ("waiting for an ingester", None)
    token = leases.acquire(camera_id)               # taken again: not live before its new watch says so
    assert registry.state(camera_id)["status"] == "waiting for an ingester"
    assert registry.set_status(camera_id, "connecting", token=token)
    assert registry.state(camera_id)["status"] == "connecting"
    registry.redis.pexpire(lease_key(camera_id), 1)   # its ingester died: the lease lapsed
    time.sleep(0.01)
    assert registry.state(camera_id)["status"] == "waiting for an ingester"
    assert registry.set_status(camera_id, "live")     # no leases (one ingester): as written
    assert registry.state(camera_id)["status"] == "live"
    registry.delete(camera_id)
