"""bench.encoder's reading of bytes at equal PSNR (the default's figures in docs/benchmarks.md)."""

import math

import pytest

from bench.encoder import bytes_at_psnr


def _rows(points):
    return [{"preset": "veryfast", "params": "subme=1", "psnr_db": p, "kbytes": k} for p, k in points]


def test_bytes_at_equal_psnr_are_read_between_the_two_nearest_crfs():
    rows = _rows([(49.0, 1400.0), (48.0, 1200.0), (47.0, 1000.0)])
    assert bytes_at_psnr(rows, 48.0) == pytest.approx(1200.0)
    assert bytes_at_psnr(rows, 47.5) == pytest.approx(math.sqrt(1200.0 * 1000.0))     # log bytes, linear in dB
    assert bytes_at_psnr(rows, 48.5) == pytest.approx(math.sqrt(1400.0 * 1200.0))
    assert bytes_at_psnr(rows, 46.0) == pytest.approx(1000.0 ** 2 / 1200.0)          # the end's line, extended


def test_bytes_at_equal_psnr_need_two_crfs():
    with pytest.raises(ValueError):
        bytes_at_psnr(_rows([(48.0, 1200.0)]), 48.0)
