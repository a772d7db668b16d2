"""The KEDA/HPA reference model (autoscaler/keda.py), rule by rule, table-driven: each row
is one call at one second, after the recommendations and last activity a row sets up."""

from __future__ import annotations

import pytest

from autoscaler.keda import KedaScaler, KedaSettings

KEDA = KedaSettings(polling_s=30, cooldown_s=300, window_s=300, list_length=1)


def scaler(recommendations=(), last_active=None, **settings) -> KedaScaler:
    s = KedaScaler(KedaSettings(**{**KEDA.__dict__, **settings}), max_replicas=8)
    s.recommendations, s.last_active = list(recommendations), last_active
    return s


# (case, scaler, LLEN, replicas, now, desired)
TABLE = [
    ("asleep: activation waits for KEDA's poll", scaler(), 5, 0, 15, 0),
    ("KEDA's poll wakes it to one replica, not more", scaler(), 5, 0, 30, 1),
    ("the HPA then sizes on the list: ceil(LLEN / listLength)", scaler(), 5, 1, 45, 5),
    ("listLength 2: half as many", scaler(list_length=2), 5, 1, 45, 3),
    ("scale-up limited to max(double, +4) per sync", scaler(), 40, 2, 45, 6),
    ("and by maxReplicaCount", scaler(), 40, 7, 45, 8),
    ("within the 0.1 tolerance: no change (21 / (10 x 2) = 1.05, not ceil(2.1) = 3)",
     scaler(list_length=10), 21, 2, 45, 2),
    ("just outside it: the ceiling", scaler(list_length=10), 23, 2, 45, 3),
    ("LLEN counts waiting tasks only: busy pods read as demand 0, the window holds them",
     scaler([(200, 4)]), 0, 4, 255, 4),
    ("window 0: down at once to HPA's minimum of one", scaler([(200, 4)], window_s=0), 0, 4, 255, 1),
    ("the highest recommendation of the window holds a scale-down", scaler([(100, 6), (200, 3)]), 2, 6, 300, 6),
    ("once out of the window, down to the highest left", scaler([(100, 6), (200, 3)]), 2, 6, 420, 3),
    ("inactive since less than the cooldown: stays", scaler(last_active=100.0), 0, 1, 390, 1),
    ("inactive for the cooldown, at KEDA's poll: to zero", scaler(last_active=90.0), 0, 1, 390, 0),
    ("not at a poll: the HPA's minimum of one holds", scaler(last_active=0.0), 0, 1, 405, 1),
    ("active at the poll: the cooldown starts again", scaler(last_active=0.0), 1, 1, 390, 1),
    ("no HPA at zero", scaler(), 0, 0, 45, 0),
]


@pytest.mark.parametrize("case,keda,llen,replicas,now,desired", TABLE, ids=[r[0] for r in TABLE])
def test_keda_table(case, keda, llen, replicas, now, desired):
    assert keda.desired(llen, replicas, float(now)) == desired


def test_an_active_poll_records_the_time_for_the_cooldown():
    keda = scaler()
    keda.desired(3, 2, 60.0)
    assert keda.last_active == 60.0
