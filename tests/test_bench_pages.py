"""What the benches write on their pages says how they ran: the throughput tables say how many
rounds each run was repeated and the machine's load, and the dark-faces eval re-scores at the
threshold docs/accuracy.md says the current gallery tunes (a page that quotes a figure the code
no longer measures is a promise broken)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _row() -> dict:
    farm = {"wall_s": 10.0, "overhead_s": 0.2, "job_wall_s": 9.5, "lead_s": 0.1, "split_s": 0.05,
            "tail_s": 0.05, "stitch_s": 0.01, "gaps_s": 0.02, "segments": 8, "imbalance_s": 0.3, "faces": 12}
    return {"clip": "clip.mp4", "size": "1280x720", "fps": 30.0, "frames": 900, "duration_s": 30.0,
            "codec_floor_s": 3.0, "detector_ms": 13.0, "naive:insightface": {"wall_s": 19.0, "faces": 12},
            "naive:vidfarm": {"wall_s": 15.0, "faces": 12}, "naive:vidfarm-1-thread": {"wall_s": 16.0, "faces": 12},
            "farm1": farm, "farm2": farm, "farm2_all": farm, "farm2_all_ungated": farm}


def test_the_throughput_page_says_how_many_rounds_ran_and_the_load(monkeypatch):
    from bench.__main__ import render
    monkeypatch.setattr(os, "cpu_count", lambda: 2)     # "over the cores" reads the machine's count
    from core.settings import Settings

    once = render([_row()], Settings(), "python -m bench --only throughput --rounds 1", 1, (14.2, 13.1))
    assert "ran once (`--rounds 1`" in once and "repeated" not in once.split("\n")[2]
    assert "Load average (1 min) 14.2 at the start, 13.1 at the end" in once
    thrice = render([_row()], Settings(), "make bench", 3, (1.0, 1.5))
    assert "repeated 3 times, interleaved, and the fastest kept" in thrice
    assert "Load average (1 min) 1.0 at the start, 1.5 at the end" in thrice
    # Over the cores, the run's ratios favour the farm's several processes: the page says so.
    overloaded = "the kernel shares them by thread"
    assert overloaded in once and overloaded not in thrice
    assert "these verdicts are this run's, not the farm's" in once and "this run's, not the farm's" not in thrice
    assert "by far more above them, as in this run." in once and "differ by a few tenths." in thrice


class Asked(Exception):
    pass


def test_bench_passes_its_rounds_to_every_clip_and_refuses_none(monkeypatch, tmp_path):
    import bench.__main__ as bench_main

    def ask(src, work, encoder, rounds):
        raise Asked(src.name, rounds)

    monkeypatch.setattr(bench_main, "make_clip", lambda path, **_: SimpleNamespace(path=path))
    monkeypatch.setattr(bench_main, "HAMILTON", tmp_path / "absent.mp4")
    monkeypatch.setattr(bench_main, "measure", ask)
    with pytest.raises(Asked) as asked:
        bench_main.main(["--only", "throughput", "--rounds", "2"])
    assert asked.value.args == ("generated_720p30_30s.mp4", 2)
    with pytest.raises(Asked) as asked:
        bench_main.main([])
    assert asked.value.args == ("generated_720p30_30s.mp4", bench_main.ROUNDS)
    hamilton = tmp_path / "short_hamilton_clip.mp4"
    hamilton.write_bytes(b"")
    monkeypatch.setattr(bench_main, "HAMILTON", hamilton)
    with pytest.raises(Asked) as asked:     # the clips in the order asked for
        bench_main.main(["--only", "throughput", "--clips", "hamilton,generated"])
    assert asked.value.args == ("short_hamilton_clip.mp4", bench_main.ROUNDS)
    for refused_argv in (["--rounds", "0"], ["--only", "throughput", "--clips", "lobby"],
                         ["--clips", "hamilton"]):   # make bench measures every clip
        with pytest.raises(SystemExit) as refused:
            bench_main.main(refused_argv)
        assert refused.value.code == 2


def test_the_throughput_run_writes_its_page_after_each_clip(monkeypatch, tmp_path):
    """A run stopped on its second clip (a loaded machine, a deadline) leaves the first one's
    tables on the page, and every other benchmark's section as it was."""
    import bench.__main__ as bench_main

    page = tmp_path / "docs" / "benchmarks.md"
    page.parent.mkdir()
    page.write_text("# Benchmarks\n\nold tables\n" + bench_main.FIRST_OTHER_SECTION + "\n\nkept\n")
    calls = []

    def measure(src, work, encoder, rounds):
        calls.append(src.name)
        if len(calls) == 2:
            raise Asked("stopped")
        return {**_row(), "clip": src.name}

    monkeypatch.setattr(bench_main, "ROOT", tmp_path)
    monkeypatch.setattr(bench_main, "make_clip", lambda path, **_: SimpleNamespace(path=path))
    monkeypatch.setattr(bench_main, "measure", measure)
    hamilton = tmp_path / "short_hamilton_clip.mp4"
    hamilton.write_bytes(b"")
    monkeypatch.setattr(bench_main, "HAMILTON", hamilton)
    with pytest.raises(Asked):
        bench_main.main(["--only", "throughput", "--rounds", "1", "--clips", "hamilton,generated"])
    text = page.read_text()
    assert "old tables" not in text and "| short_hamilton_clip.mp4 (" in text and "generated_720p30" not in text
    assert "`python -m bench --only throughput --rounds 1 --clips hamilton,generated`" in text
    assert text.endswith(bench_main.FIRST_OTHER_SECTION + "\n\nkept\n")


def test_the_dark_faces_eval_rescores_at_the_threshold_the_accuracy_page_tunes():
    from bench.eval_dark_recognition import TUNED_THRESHOLD

    page = (ROOT / "docs" / "accuracy.md").read_text()
    tuned = re.search(r"Threshold chosen on the tuning people only .*?midpoint \*\*([0-9.]+)\*\*", page)
    assert tuned, "docs/accuracy.md no longer says which threshold the tuning people chose"
    assert TUNED_THRESHOLD == float(tuned.group(1))
