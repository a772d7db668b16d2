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
  the policy also floors on ``running`` (see ``QueueLoad.busy_floor``). Idle workers answer
  too (with no tasks): the same broadcast tells which workers are up (``FarmLoad.nodes``).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field

import redis
from celery import Celery
from kombu.transport.redis import PRIORITY_STEPS, Channel

log = logging.getLogger(__name__)


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


class QueueObserver:
    def __init__(self, redis_url: str, inspect_timeout: float = 1.0):
        self.redis = redis.Redis.from_url(redis_url)
        # A bare Celery app: only its control channel (broadcasts), none of our tasks.
        self.control = Celery("vidfarm-autoscaler", broker=redis_url, set_as_current=False).control
        self.inspect_timeout = inspect_timeout

    def waiting(self, queue: str) -> int:
        pipe = self.redis.pipeline()
        for name in priority_lists(queue):
            pipe.llen(name)
        return sum(pipe.execute())

    def unacked_per_queue(self) -> Counter:
        counts: Counter = Counter()
        for raw in self.redis.hvals(Channel.unacked_key):
            try:
                _message, _exchange, routing_key = json.loads(raw)
            except (ValueError, TypeError):
                continue   # not kombu's layout: leave it out rather than guess
            counts[routing_key] += 1
        return counts

    def observe(self, queues: list[str]) -> dict[str, QueueLoad]:
        return self.observe_farm(queues).queues

    def observe_farm(self, queues: list[str]) -> FarmLoad:
        unacked = self.unacked_per_queue()
        replies = self.control.inspect(timeout=self.inspect_timeout).active()   # the one broadcast
        busy = busy_nodes_per_queue(replies or {})
        loads = {q: QueueLoad(queue=q, waiting=self.waiting(q), running=unacked[q],
                              busy_nodes=frozenset(busy.get(q, ())), inspected=replies is not None)
                 for q in queues}
        return FarmLoad(loads, frozenset(replies or ()))

    def close(self) -> None:
        self.redis.close()
        self.control.app.close()
