"""Masked faces drawn over real, unmasked face photos: training data nobody has to download.

insightface ships four photos of surgical masks (``data/images/mask_*.jpg``, the textures its
own MaskRenderer pastes on faces). :func:`draw_mask` warps one of them, or a plain cloth
colour, over the lower face that the detector's five keypoints outline: from the bridge of
the nose to below the chin, cheek to cheek. The mask classifier is trained on such faces
(:mod:`workers.analytics.mask_train`), and the tests use them as masked faces.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

TEXTURES = ("mask_white.jpg", "mask_blue.jpg", "mask_black.jpg", "mask_green.jpg")


def _package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package} is not installed")
    return Path(list(spec.submodule_search_locations)[0]).joinpath(*parts)


@lru_cache(maxsize=None)
def texture(name: str) -> np.ndarray:
    """One of insightface's mask photos (BGR), cropped to the fabric."""
    image = cv2.imread(str(_package_file("insightface", "data", "images", name)))
    if image is None:
        raise FileNotFoundError(f"insightface's {name} is missing")
    h, w = image.shape[:2]
    return image[h // 20: h - h // 20, w // 30: w - w // 30]


def mask_outline(box, keypoints, drop: float = 0.0) -> np.ndarray:
    """The mask's outline (8 points, image pixels): its top edge across the bridge of the
    nose, its sides on the cheeks, its bottom under the chin. ``drop`` (0..0.5) lowers the
    top edge towards the nose tip (a mask worn lower)."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    eyes = (np.asarray(keypoints[0]) + np.asarray(keypoints[1])) / 2
    nose, mouth = np.asarray(keypoints[2]), (np.asarray(keypoints[3]) + np.asarray(keypoints[4])) / 2
    top = eyes[1] + (0.3 + drop) * (nose[1] - eyes[1])
    chin = min(y2 + 0.08 * (y2 - y1), mouth[1] + 2.0 * (mouth[1] - nose[1]))
    width = x2 - x1
    left, right = x1 - 0.02 * width, x2 + 0.02 * width
    mid = (left + right) / 2 + 0.5 * (nose[0] - (left + right) / 2)   # follows a turned head
    return np.array([[left + 0.08 * width, top], [mid, top - 0.04 * width], [right - 0.08 * width, top],
                     [right, (top + chin) / 2], [right - 0.15 * width, chin - 0.05 * width], [mid, chin],
                     [left + 0.15 * width, chin - 0.05 * width], [left, (top + chin) / 2]], np.float32)


def draw_mask(image: np.ndarray, box, keypoints, fabric: str | tuple[int, int, int] = TEXTURES[0],
              drop: float = 0.0, shade: float = 1.0) -> np.ndarray:
    """A copy of ``image`` with a mask over the face: a texture photo (a name in TEXTURES) or
    a plain colour (BGR), lit by ``shade`` (a multiplier, 0.5..1.2)."""
    outline = mask_outline(box, keypoints, drop)
    x, y, w, h = cv2.boundingRect(np.round(outline).astype(np.int32))
    out = image.copy()
    ih, iw = image.shape[:2]
    if w < 2 or h < 2 or x >= iw or y >= ih or x + w <= 0 or y + h <= 0:
        return out
    if isinstance(fabric, str):
        cloth = cv2.resize(texture(fabric), (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    else:
        cloth = np.empty((h, w, 3), np.float32)
        cloth[:] = fabric
        # Cloth is never flat: a soft vertical fold shading.
        cloth *= (0.85 + 0.15 * np.cos(np.linspace(-1.5, 1.5, h)))[:, None, None]
    # Darker towards the sides, as a mask curving round the face is.
    cloth *= shade * (0.75 + 0.25 * np.cos(np.linspace(-1.2, 1.2, w)))[None, :, None]
    alpha = np.zeros((h, w), np.float32)
    cv2.fillPoly(alpha, [np.round(outline - [x, y]).astype(np.int32)], 1.0)
    alpha = cv2.GaussianBlur(alpha, (0, 0), max(0.6, w / 150))[..., None]
    x0, y0, xa, ya = max(0, x), max(0, y), min(iw, x + w), min(ih, y + h)
    patch = out[y0:ya, x0:xa].astype(np.float32)
    sub_a, sub_c = alpha[y0 - y:ya - y, x0 - x:xa - x], cloth[y0 - y:ya - y, x0 - x:xa - x]
    out[y0:ya, x0:xa] = np.clip(sub_c * sub_a + patch * (1 - sub_a), 0, 255).astype(np.uint8)
    return out
