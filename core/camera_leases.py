"""Who ingests which camera: leases in Redis with fencing tokens.

Several ingest replicas (``vidfarm ingest``, the chart's ingest Deployment) share the cameras.
Each camera is owned by at most one replica at a time:

- ``vidfarm:camera:<id>:lease``: ``"<owner> <token>"``, with a time to live (``lease_s``).
  The owner renews it (``renew``) well within that time; a replica that dies stops renewing,
  the key expires, and another replica takes the camera (``acquire``).
- ``vidfarm:camera:<id>:fence``: a counter, incremented by every ``acquire`` that succeeds.
  Its value is the token of the newest owner. A replica that stalled (paused, cut off) past
  its lease may still believe it owns the camera; everything it writes about the camera is
  checked against the fence (``CameraRegistry``'s ``token=``), so a stale owner's segments
  and statuses are rejected and it learns that it lost the camera.
- ``vidfarm:ingesters``: a sorted set, replica -> last heartbeat (unix s): how many replicas
  are alive, so each takes its share of the cameras.

Acquire, renew and release are Lua scripts: each is one atomic step in Redis, whatever the
other replicas do meanwhile.
"""

from __future__ import annotations

import math
import os
import socket
import time
import uuid

import redis

INGESTERS = "vidfarm:ingesters"
REGISTRY = "vidfarm:cameras"          # camera id -> its registration (``core.cameras``)

# A camera no longer registered is not taken: an ingester that listed it just before it was
# deleted would otherwise start its fence again, a key no delete would ever remove.
_ACQUIRE = """
if redis.call('HEXISTS', KEYS[3], ARGV[3]) == 0 then
  return false
end
local current = redis.call('GET', KEYS[1])
if current then
  local owner, token = string.match(current, '^(%S+) (%d+)$')
  if owner == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(token)
  end
  return false
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. token, 'PX', ARGV[2])
return token
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def lease_key(camera_id: str) -> str:
    return f"vidfarm:camera:{camera_id}:lease"


def lease_holder(value: str | None) -> tuple[str, int] | None:
    """A lease's value, ``"<owner> <token>"``, as (owner, token); None for no lease."""
    if value is None:
        return None
    owner, token = value.rsplit(" ", 1)
    return owner, int(token)


def fence_key(camera_id: str) -> str:
    return f"vidfarm:camera:{camera_id}:fence"


def is_stale(client: redis.Redis, camera_id: str, token: int) -> bool:
    """Whether ``token`` is no longer the camera's fence: a newer owner took the camera, or it
    was deleted (its fence went with it). Work stamped with a stale token is dropped unseen."""
    return why_stale(client, camera_id, token) is not None


def why_stale(client: redis.Redis, camera_id: str, token: int) -> str | None:
    """Why ``token`` is no longer the camera's fence, as a log says it; None while it is."""
    fence = client.get(fence_key(camera_id))
    if fence is None:
        return f"camera {camera_id} deleted"
    return None if int(fence) == token else f"camera {camera_id} taken by a newer owner (fencing token {token} is stale)"


def new_owner_id() -> str:
    """A replica's name: the pod (host) and process, plus a random part so that a restarted
    process with the same pid is a new owner."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class CameraLeases:
    def __init__(self, client: redis.Redis, owner: str, lease_s: float = 10.0):
        self.redis, self.owner, self.lease_s = client, owner, lease_s
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    @property
    def _ttl_ms(self) -> int:
        return max(1, round(self.lease_s * 1000))

    def acquire(self, camera_id: str) -> int | None:
        """The camera's fencing token if this replica owns it now (taken or already held),
        else None (another replica holds it, or it is no longer registered)."""
        token = self._acquire(keys=[lease_key(camera_id), fence_key(camera_id), REGISTRY],
                              args=[self.owner, self._ttl_ms, camera_id])
        return None if token is None else int(token)

    def renew(self, camera_id: str, token: int) -> bool:
        """Extend the lease; False: it was lost (expired and maybe taken by another)."""
        return bool(self._renew(keys=[lease_key(camera_id)], args=[f"{self.owner} {token}", self._ttl_ms]))

    def release(self, camera_id: str, token: int) -> None:
        """Give the camera up now (another replica may take it at once)."""
        self._release(keys=[lease_key(camera_id)], args=[f"{self.owner} {token}"])

    def holder(self, camera_id: str) -> tuple[str, int] | None:
        """(owner, token) of the camera's lease, None when nobody holds it."""
        return lease_holder(self.redis.get(lease_key(camera_id)))

    # --- the replicas ---------------------------------------------------------------------

    def heartbeat(self, now: float | None = None) -> int:
        """Say this replica is alive; forget replicas silent for a lease time. Returns how
        many are alive (this one included)."""
        now = time.time() if now is None else now
        with self.redis.pipeline() as pipe:
            pipe.zadd(INGESTERS, {self.owner: now})
            pipe.zremrangebyscore(INGESTERS, "-inf", now - self.lease_s)
            pipe.zcard(INGESTERS)
            return max(1, pipe.execute()[-1])

    def leave(self) -> None:
        self.redis.zrem(INGESTERS, self.owner)

    @staticmethod
    def share(cameras: int, replicas: int) -> int:
        """Most cameras one replica takes: an even split, rounded up."""
        return math.ceil(cameras / max(1, replicas))
