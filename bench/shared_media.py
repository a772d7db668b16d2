"""Where the test media folder is, for every bench and test that reads real footage.

``../shared/media`` beside the repository, or the folder ``VIDFARM_MEDIA`` names (a copy kept
elsewhere). One definition, so that no bench silently looks in another place and drops the
real footage from its figures."""

from __future__ import annotations

import os
from pathlib import Path

MEDIA = Path(os.environ.get("VIDFARM_MEDIA") or Path(__file__).resolve().parents[2] / "shared" / "media")
VIDEOS = MEDIA / "videos"
HAMILTON = VIDEOS / "short_hamilton_clip.mp4"
WALKING = VIDEOS / "intel_face-demographics-walking.mp4"
