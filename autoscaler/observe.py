"""What the autoscaler sees of a Celery queue: messages waiting, messages in hand, busy workers.

Read straight from the broker, with kombu's own names for its Redis layout (so a kombu
upgrade that changes them changes them here too):
- waiting: the queue's Redis lists. kombu keeps one list per priority step: ``cpu`` for
  priority 0 and ``cpu\\x06\\x163``, ``...6``, ``...9`` for the others; we add them all.
- running: the ``unacked`` hash (delivery tag -> [message, exchange, routing key]) holds every
  message a worker has taken and not yet acknowledged. With ``acks_late`` that is every task
  reserved or running, until it ends; counted by routing key (= queue name for our routes).
- busy workers: one ``inspect().active()`` broadcast; each worker answers with its tasks in
  hand and their routing key. A worker that does not answer in time counts as not busy, so
  the loop also counts at least as many busy workers as tasks in hand. Idle workers answer
  too (with no tasks): the same broadcast tells which workers are up (``FarmLoad.nodes``).

For the wait target (``autoscaler.policy``), each message too: the list's head (up to
``LISTED`` messages, in the order workers take them: priority 0 first, each list from its
right end, kombu's BRPOP) and the unacked ones, by task id. How long a task has waited or
run is counted from the first poll that saw it (a message carries no enqueue time), so it is
short by up to one poll; a task first seen now is an arrival (except at the first poll,
which cannot tell; and a queue longer than ``LISTED`` shows its tail as it moves up). A ``WorkSource`` (``autoscaler.work``) gives each task's frames and the
queue's tasks finished since the last poll; without one (the web app's /metrics) no message
is read, and the policy counts tasks.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

import redis
from celery import Celery
from kombu.transport.redis import PRIORITY_STEPS, Channel

log = logging.getLogger(__name__)

LISTED = 1000          # messages read per queue for the forecast; the rest are only counted
FIRST_LOOK_BACK_S = 3600.0   # the first poll learns the cost from the tasks finished this long before


class WorkSource(Protocol):
    """What a task costs: its frames, and the queue's finished tasks (frames, seconds)."""

    def frames(self, tasks: list[tuple[str, list]]) -> list[int | None]: ...   # (task name, args) each

    def finished(self, queue: str, since: float) -> list[tuple[int, float]]: ...   # since: unix time

    def close(self) -> None: ...


def priority_lists(queue: str) -> list[str]:
    """The Redis list names kombu uses for one queue, one per priority step."""
    return [queue if step == 0 else f"{queue}{Channel.sep}{step}" for step in PRIORITY_STEPS]


@dataclass(frozen=True)
class QueueLoad:
    queue: str
    waiting: int = 0
    running: int = 0
    busy_nodes: frozenset[str] = field(default_factory=frozenset)   # Celery node names, e.g. cpu@pod-x
    inspected: bool = True          # False: no worker answered the broadcast (or none exists)
    # Per task, for the wait forecast (see autoscaler.policy.Observation):
    queued: tuple[tuple[float, int | None], ...] = ()    # (seconds seen waiting, frames), head first
    in_hand: tuple[tuple[float, int | None], ...] = ()   # (seconds seen running, frames)
    finished: tuple[tuple[int, float], ...] = ()         # (frames, seconds) done since the last poll
    arrived: tuple[int | None, ...] = ()                 # frames of the tasks first seen at this poll


@dataclass(frozen=True)
class Message:
    """One Celery message as kombu stores it in Redis: its task id, name and arguments."""
    task_id: str
    task: str
    args: list
    kwargs: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: bytes | str) -> "Message | None":
        """None for anything that is not a JSON Celery message (protocol 2): left out, not guessed."""
        try:
            message = json.loads(raw)
            headers = message["headers"]
            body = message["body"]
            if message.get("properties", {}).get("body_encoding") == "base64":
                body = base64.b64decode(body)
            args, kwargs = json.loads(body)[:2] if message.get("content-type") == "application/json" else ([], {})
            return cls(str(headers["id"]), str(headers.get("task")), list(args), dict(kwargs))
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            return None


def unacked_entry(raw: bytes | str) -> tuple[str, Message | None] | None:
    """One value of kombu's ``unacked`` hash as (routing key, message; None: not one we can
    read); None when the value is not kombu's layout: left out rather than guessed."""
    try:
        message, _exchange, routing_key = json.loads(raw)
    except (ValueError, TypeError):
        return None
    return routing_key, Message.parse(json.dumps(message))


def broker_messages(client: redis.Redis, queues: list[str], in_hand: bool = True) -> list[Message]:
    """Every task message in the broker that we can read: waiting in one of ``queues`` (kombu's
    list for each priority step), or taken by a worker and not acknowledged yet (kombu's
    ``unacked`` hash: prefetched, held for a countdown or a retry, or running: tasks acknowledge
    late; left out with ``in_hand=False``). The watchdog's look for lost tasks (jobs', webhook
    deliveries').

    Reads and decodes every message once: O(messages in the broker). 5,000 queued segments of
    30 s (750 timestamps each, 51 MB in Redis) took 0.7 s on a shared 2-core machine; the
    watchdog reads them only in a round that found something without progress. The lists and
    the hash are read in one MULTI, so a message moving from a list to the hash is seen once;
    one between a worker's BRPOP and its entry in the hash (microseconds) is missed."""
    pipe = client.pipeline()
    for name in (name for queue in queues for name in priority_lists(queue)):
        pipe.lrange(name, 0, -1)
    if in_hand:
        pipe.hvals(Channel.unacked_key)
    waiting = pipe.execute()
    taken = waiting.pop() if in_hand else []
    messages = [Message.parse(raw) for chunk in waiting for raw in chunk]
    messages += [entry[1] for entry in map(unacked_entry, taken) if entry is not None]
    return [message for message in messages if message is not None]


@dataclass(frozen=True)
class FarmLoad:
    """Every queue's load and the workers that answered, from one broadcast."""
    queues: dict[str, QueueLoad]
    nodes: frozenset[str] = frozenset()   # Celery node names that answered, busy or idle


def busy_nodes_per_queue(replies: dict[str, list]) -> dict[str, set[str]]:
    """``inspect().active()`` replies (node -> tasks in hand) -> queue -> nodes busy with it."""
    busy: dict[str, set[str]] = {}
    for node, tasks in replies.items():
        for task in tasks or ():
            queue = (task.get("delivery_info") or {}).get("routing_key")
            busy.setdefault(queue, set()).add(node)
    return busy


class Sightings:
    """When each task id was first seen (waiting or in hand), forgotten once it is gone."""

    def __init__(self):
        self.first: dict[str, float] = {}
        self.frames: dict[str, int | None] = {}

    def see(self, ids: list[str], now: float) -> None:
        """Record the ids present now, forget the others."""
        for i in ids:
            self.first.setdefault(i, now)
        present = set(ids)
        for gone in [i for i in self.first if i not in present]:
            del self.first[gone]
            self.frames.pop(gone, None)

    def age(self, task_id: str, now: float) -> float:
        return now - self.first[task_id]


class QueueObserver:
    def __init__(self, redis_url: str, inspect_timeout: float = 1.0, work: WorkSource | None = None,
                 clock=time.time):
        self.redis = redis.Redis.from_url(redis_url)
        # A bare Celery app: only its control channel (broadcasts), none of our tasks.
        self.control = Celery("vidfarm-autoscaler", broker=redis_url, set_as_current=False).control
        self.inspect_timeout = inspect_timeout
        self.work = work
        self.clock = clock
        self.waiting_seen: dict[str, Sightings] = {}
        self.running_seen: dict[str, Sightings] = {}
        self.finished_since: dict[str, float] = {}

    def waiting(self, queue: str) -> int:
        pipe = self.redis.pipeline()
        for name in priority_lists(queue):
            pipe.llen(name)
        return sum(pipe.execute())

    def head(self, queue: str) -> list[Message]:
        """The first ``LISTED`` waiting messages, in the order workers will take them."""
        pipe = self.redis.pipeline()
        for name in priority_lists(queue):
            pipe.lrange(name, -LISTED, -1)
        ordered = [raw for chunk in pipe.execute() for raw in reversed(chunk)][:LISTED]
        return [m for m in map(Message.parse, ordered) if m is not None]

    def unacked(self) -> dict[str, list[Message | None]]:
        """Messages taken and not acknowledged, per routing key (None: not one we can read)."""
        per_queue: dict[str, list[Message | None]] = {}
        for entry in filter(None, map(unacked_entry, self.redis.hvals(Channel.unacked_key))):
            routing_key, message = entry
            per_queue.setdefault(routing_key, []).append(message)
        return per_queue

    def frames_of(self, messages: list[Message], sightings: Sightings) -> list[int | None]:
        """Each message's frames, asked of the work source once per task."""
        unknown = [m for m in messages if m.task_id not in sightings.frames]
        if unknown and self.work is not None:
            for message, frames in zip(unknown, self.work.frames([(m.task, m.args) for m in unknown])):
                sightings.frames[message.task_id] = frames
        return [sightings.frames.get(m.task_id) for m in messages]

    def tasks(self, queue: str, waiting: list[Message], running: list[Message], now: float) -> dict:
        """The per-task fields of a QueueLoad (see its docstring)."""
        first_poll = queue not in self.waiting_seen
        waits = self.waiting_seen.setdefault(queue, Sightings())
        runs = self.running_seen.setdefault(queue, Sightings())
        known_before = set(waits.first) | set(runs.first)
        waits.see([m.task_id for m in waiting], now)
        runs.see([m.task_id for m in running], now)
        waiting_frames, running_frames = self.frames_of(waiting, waits), self.frames_of(running, runs)
        arrived = () if first_poll else tuple(
            frames for m, frames in zip(waiting + running, waiting_frames + running_frames)
            if m.task_id not in known_before)
        since = self.finished_since.get(queue, now - FIRST_LOOK_BACK_S)
        self.finished_since[queue] = now
        finished = tuple(self.work.finished(queue, since))
        return {"queued": tuple((waits.age(m.task_id, now), f) for m, f in zip(waiting, waiting_frames)),
                "in_hand": tuple((runs.age(m.task_id, now), f) for m, f in zip(running, running_frames)),
                "finished": finished, "arrived": arrived}

    def observe(self, queues: list[str]) -> dict[str, QueueLoad]:
        return self.observe_farm(queues).queues

    def observe_farm(self, queues: list[str]) -> FarmLoad:
        now = self.clock()
        # The lists before the unacked hash: a worker's BRPOP takes a message off the list
        # before kombu files it as unacked, so this order can count a task twice (it
        # overstates demand for a moment) but never misses one in between.
        waiting = {q: self.waiting(q) for q in queues}
        heads = {q: self.head(q) for q in queues} if self.work is not None else {}
        unacked = self.unacked()
        replies = self.control.inspect(timeout=self.inspect_timeout).active()   # the one broadcast
        busy = busy_nodes_per_queue(replies or {})
        loads = {}
        for q in queues:
            running = unacked.get(q, [])
            # Without a work source no task has a cost, and the policy counts tasks: skip the reading.
            tasks = {} if self.work is None else self.tasks(q, heads[q], [m for m in running if m], now)
            loads[q] = QueueLoad(queue=q, waiting=waiting[q], running=len(running),
                                 busy_nodes=frozenset(busy.get(q, ())), inspected=replies is not None, **tasks)
        return FarmLoad(loads, frozenset(replies or ()))

    def close(self) -> None:
        self.redis.close()
        if self.work is not None:
            self.work.close()
        self.control.app.close()
