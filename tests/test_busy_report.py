"""bench.busy's report: issue 15's busy-path targets are checked on the real footage only (the
generated clips are not what they name), and without real footage it says so."""

from __future__ import annotations


def row(clip: str, wall_s: float) -> dict:
    costs = {"decode": 1.0}
    return {"clip": clip, "duration_s": 9.2, "frames": 275, "load": (1.0, 1.0, 1.0), "gated": {"wall_s": wall_s},
            "every frame": {"wall_s": 2 * wall_s}, "tuned_loop_s": 6.0,
            "frame_costs": {"gated": costs, "every frame": costs}}


def verdicts(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("- ")]


def test_the_targets_are_checked_on_the_real_clips_only():
    from bench.busy import render

    generated, real = "generated 720p30, 30 s, one gliding face", "Hamilton (real) scaled to 720p30"
    text = render([row(generated, 2.0), row(real, 4.6)])
    assert verdicts(text) == [f"- {real} (275 frames, 9.2 s): 2.00x real time (not met), 1.30x the tuned loop "
                              "(not met)"]
    assert "no real footage" not in text
    text = render([row(generated, 2.0)])
    assert verdicts(text) == [] and "no real footage (../shared/media absent), so not checked." in text
