"""``bench.keyframe_cuts``' command line and clips: it refuses at once what it cannot run, and takes
its clips from ``bench.busy`` by the names busy gives them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from bench import busy, keyframe_cuts


def _runs_nothing(*args):
    raise AssertionError("it ran the clips")


def test_the_hamilton_clips_are_refused_at_once_without_the_shared_media(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(keyframe_cuts, "HAMILTON", tmp_path / "absent.mp4", raising=False)
    monkeypatch.setattr(keyframe_cuts, "rows", _runs_nothing)
    with pytest.raises(SystemExit) as refused:
        keyframe_cuts.main(["--clips", "generated,1080", "default"])
    assert refused.value.code == 2
    assert "absent.mp4, which is absent" in capsys.readouterr().err


def test_an_unknown_clip_is_refused(monkeypatch, capsys):
    monkeypatch.setattr(keyframe_cuts, "rows", _runs_nothing)
    with pytest.raises(SystemExit):
        keyframe_cuts.main(["--clips", "720p"])
    assert "no such clip: 720p" in capsys.readouterr().err


def test_the_options_and_variants_reach_the_runs(monkeypatch, tmp_path):
    asked = []
    monkeypatch.setattr(keyframe_cuts, "rows", lambda *args: asked.append(args) or iter(()))
    keyframe_cuts.main(["--work", str(tmp_path / "w"), "--clips", "generated", "KEYFRAME_SNAP=0.5", "default"])
    assert asked == [(tmp_path / "w", ["generated"], ["KEYFRAME_SNAP=0.5", "default"])]
    keyframe_cuts.main(["--work", str(tmp_path / "w")])
    assert asked[-1][1:] == (["720", "1080", "generated"], ["default", "KEYFRAME_SNAP=0.5", "KEYFRAME_SNAP=0.5", "default"])


def test_the_clips_are_the_ones_bench_busy_makes(monkeypatch, tmp_path):
    """Made by busy's own recipes (encoders stubbed out): the keys find busy's names."""
    source = tmp_path / "hamilton.mp4"
    source.touch()
    monkeypatch.setattr(busy, "HAMILTON", source)
    monkeypatch.setattr(busy, "scaled", lambda src, path, height, **kwargs: path.touch())
    monkeypatch.setattr("tests.clipmaker.make_clip", lambda path, **recipe: SimpleNamespace(path=Path(path)))
    assert keyframe_cuts.clips(tmp_path, ["1080", "generated"]) == {
        "1080": tmp_path / "hamilton1080.mp4", "generated": tmp_path / "busy720.mp4"}
    assert keyframe_cuts.clips(tmp_path, ["720"]) == {"720": tmp_path / "hamilton720.mp4"}
