"""Where replicas live. A backend only reads and sets replica counts (KEDA-scaler style):

    replicas(target) -> int            workers that exist or are asked for now
    busy_workers(target, busy_nodes)   which of its workers hold a task (from QueueLoad)
    scale(target, replicas, busy)      set the count; when lowering, idle workers go first
                                       (busy None: the inspection went unanswered)
    close()
"""

from __future__ import annotations

from typing import Protocol

from core.settings import ScaleSettings


class ScaleError(RuntimeError):
    """A failure a user can fix (RBAC, missing Deployment, no credentials): one clear line."""


class ApiUnavailable(ScaleError):
    """The API kept failing (429, 5xx, timeouts, dropped connections, conflicts) through every
    retry of one call: the loop tries again at its next poll; ``--once`` reports it."""


class ScaleBackend(Protocol):
    def replicas(self, target: ScaleSettings) -> int: ...

    def busy_workers(self, target: ScaleSettings, busy_nodes: frozenset[str]) -> set[str]: ...

    def scale(self, target: ScaleSettings, replicas: int, busy: set[str] | None) -> None: ...

    def close(self) -> None: ...
