"""KEDA's Redis list scaler driving the HPA, as a reference model for the simulator.

What it models (KEDA 2.x ScaledObject and the autoscaling/v2 HPA, their documented rules):
- KEDA's own loop, every ``pollingInterval``: the trigger is active when LLEN >
  activationListLength (0). Active at zero replicas: scale to 1. Inactive for
  ``cooldownPeriod`` since it was last active: scale to zero. Nothing else.
- In between, the HPA KEDA creates (minReplicas 1, maxReplicas = maxReplicaCount) syncs every
  15 s (kube-controller-manager's default) on the AverageValue metric LLEN with target
  ``listLength``: desired = ceil(LLEN / listLength), unchanged while LLEN / (listLength x
  replicas) is within the 0.1 tolerance of 1; every recommendation is kept, and the result
  is the current count raised to this recommendation (the scale-up stabilisation window is 0)
  and lowered to no less than the highest recommendation of the last
  ``scaleDown.stabilizationWindowSeconds``; scale-up is limited by the default policies
  (100 % or 4 pods per 15 s, whichever is more), scale-down by 100 % per 15 s (no limit).
  At zero replicas the HPA does nothing (KEDA wakes the Deployment).
- LLEN counts waiting messages only: a task a worker has taken is no longer in the list.
  We count every priority sub-list as one list, which is KEDA at its best (one
  ``listName`` sees one of kombu's lists).
- Which pods go on scale-down is the ReplicaSet controller's choice, not KEDA's: pods not
  yet ready first, then the most recently ready (pod-deletion-cost is not set by KEDA).
  A busy pod asked to stop finishes its task within the grace (``World.stop``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

HPA_SYNC_S = 15.0
TOLERANCE = 0.1


@dataclass(frozen=True)
class KedaSettings:
    polling_s: float = 30.0          # ScaledObject pollingInterval
    cooldown_s: float = 300.0        # ScaledObject cooldownPeriod
    window_s: float = 300.0          # HPA behavior.scaleDown.stabilizationWindowSeconds
    list_length: int = 1             # Redis list scaler listLength (target per replica)


def due(now: float, period: float) -> bool:
    return math.isclose(now / period, round(now / period), abs_tol=1e-9)


class KedaScaler:
    poll_s = 1.0        # called every simulated second; its two loops keep their own periods

    def __init__(self, keda: KedaSettings, max_replicas: int):
        self.keda, self.max_replicas = keda, max_replicas
        self.recommendations: list[tuple[float, int]] = []
        self.last_active: float | None = None

    def hpa(self, llen: int, current: int, now: float) -> int:
        target = self.keda.list_length
        desired = math.ceil(llen / target)
        if abs(llen / (target * current) - 1) <= TOLERANCE:
            desired = current                                  # within tolerance: no change
        self.recommendations = [(t, r) for t, r in self.recommendations if t > now - self.keda.window_s]
        self.recommendations.append((now, desired))
        stabilised = min(max(current, desired), max(r for _, r in self.recommendations))
        stabilised = min(stabilised, max(2 * current, current + 4))          # scale-up policies
        return max(1, min(self.max_replicas, stabilised))

    def desired(self, llen: int, current: int, now: float) -> int:
        if due(now, self.keda.polling_s):                      # KEDA's loop: activation, cooldown
            if llen > 0:
                self.last_active = now
                if current == 0:
                    return 1
            elif current > 0 and (self.last_active is None or now - self.last_active >= self.keda.cooldown_s):
                return 0
        if current > 0 and due(now, HPA_SYNC_S):
            return self.hpa(llen, current, now)
        return current

    def poll(self, world, now: float) -> None:
        current = len(world.replicas())
        desired = self.desired(len(world.queue), current, now)
        if desired > current:
            world.add_pods(now, desired - current)
        # The ReplicaSet's order: unready pods first, then the most recently ready.
        doomed = sorted(world.replicas(), key=lambda p: (p.ready_at <= now, -p.ready_at))[:max(0, current - desired)]
        for pod in doomed:
            world.stop(pod, now)
