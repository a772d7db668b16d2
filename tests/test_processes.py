"""Which cores a local worker gets."""

from __future__ import annotations

import os

import pytest

from core.processes import cores_for

USABLE = sorted(os.sched_getaffinity(0))


@pytest.mark.parametrize("slot, threads, expected", [
    (0, 1, USABLE[:1]),
    (1, 1, USABLE[1:2] if len(USABLE) >= 2 else None),
    (0, len(USABLE), USABLE),
    (1, len(USABLE), None),                  # a second worker as wide as the machine: no room
    (len(USABLE), 1, None),                  # more workers than cores: none pinned
])
def test_cores_for(slot, threads, expected):
    assert cores_for(slot, threads) == (set(expected) if expected is not None else None)


def test_building_a_farm_leaves_the_settings_cache_alone(tmp_path):
    """Clients build the farm first and point their environment at it after (REDIS_URL is only
    known then): a settings read cached while building would keep the wrong broker."""
    from cli.farm import EmbeddedFarm
    from core.settings import get_settings

    get_settings.cache_clear()
    EmbeddedFarm(tmp_path, workers=2)
    assert get_settings.cache_info().currsize == 0
