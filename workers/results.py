"""Assembles results.json (GUIDE.md contract 3) from the per-segment outputs."""

from __future__ import annotations

from fractions import Fraction

from workers.media import frame_times

SCHEMA = "vidfarm.results/1"


def source_summary(path: str, media: dict) -> dict:
    """``media``: the probe summary (``MediaInfo.summary()``) kept in the job record."""
    return {"path": path, "width": media["width"], "height": media["height"],
            "fps": round(media["fps"], 6), "frames": media["frames"],
            "duration_s": round(media["duration_s"], 6), "has_audio": media["has_audio"]}


def assemble_results(source: dict, time_base: Fraction, start_pts: int,
                     segments: list[tuple[list[int], list[list[dict]]]], timing: dict) -> dict:
    """segments: in order, each (frame timestamps, per-frame faces). Frame indices become
    global: segment k's frame i is frame (frames before k) + i."""
    frames = []
    for pts, faces_per_frame in segments:
        if len(pts) != len(faces_per_frame):
            raise ValueError(f"segment has {len(faces_per_frame)} analysed frames for {len(pts)} timestamps")
        for t, faces in zip(frame_times(pts, start_pts, time_base), faces_per_frame):
            frames.append({"index": len(frames), "t": t, "faces": faces})
    return {"schema": SCHEMA, "source": source, "chunks": len(segments), "frames": frames,
            "tracks": [], "alerts": [], "timing": timing}
