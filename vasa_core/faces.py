"""Face detection: the one detector the safety gate (likeness screening, face choice) and the engine
(portrait analysis) share.

MTCNN (`vasa_core.mtcnn`: facenet-pytorch's networks and bundled weights, run in numpy, so detection needs no
torch; one process-wide instance behind one lock), with dlib's HOG frontal-face detector (no weights file) as
an optional fallback when MTCNN finds nothing. Faces
come back in reading order (left to right by box centre, then top to bottom) so that a face index a user
picked is stable; callers that want the largest face sort by `Face.area`.

Importing this module is cheap; the models load on the first `detect_faces` call (MTCNN: ~20 ms from its
converted-weights cache; facenet-pytorch's own MTCNN took ~1.7 s there, nearly all of it importing torch and
torchvision).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from vasa_core import models

MIN_PROB = 0.90        # MTCNN confidence below this is not a face
MIN_FACE = 20          # px at detection scale: MTCNN's smallest pyramid face
MAX_SIDE = 1280        # px: images above MAX_SIDE**2 pixels are detected on a copy scaled down to that area

_LOCK = threading.Lock()     # MTCNN and HOG run one image at a time


@dataclass(frozen=True)
class Face:
    """A face in source-image pixels: box (x0, y0, x1, y1) float64 as the detector gave it (not clipped),
    points (5, 2) float64 (eyes, nose, mouth corners; None from the HOG fallback), confidence, detector name."""
    box: np.ndarray
    points: np.ndarray | None
    score: float
    detector: str = "mtcnn"

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def area(self) -> float:
        return self.width * float(self.box[3] - self.box[1])


def _model(name: str):
    """'mtcnn' or 'hog', from the one model registry (`vasa_core.models`); run them with _LOCK held."""
    if name == "mtcnn":
        from .mtcnn import MTCNN
        return models.get("mtcnn", lambda: MTCNN(min_face_size=MIN_FACE))
    import dlib
    return models.get("dlib_hog", dlib.get_frontal_face_detector)


def detect_faces(rgb: np.ndarray, max_side: int = MAX_SIDE, min_prob: float = MIN_PROB,
                 fallback: bool = True, hog_min_score: float = 0.3) -> tuple[list[Face], float]:
    """Every face in an (H, W, 3) uint8 RGB image, in reading order, boxes and points in `rgb`'s pixels,
    and the detection scale (detection-copy pixels per source pixel, <= 1).

    max_side: images above max_side**2 pixels are detected on a copy scaled to that area (by area, so long
    thin images keep their short side); min_prob: MTCNN confidence threshold; fallback: try dlib's HOG
    detector (scores >= hog_min_score) when MTCNN finds none. Images under 2 * MIN_FACE px on a side go straight to the fallback.
    """
    h, w = rgb.shape[:2]
    scale = 1.0
    small = np.ascontiguousarray(rgb)
    if h * w > max_side * max_side:
        import cv2
        scale = max_side / float(np.sqrt(h * w))
        small = cv2.resize(small, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    faces: list[Face] = []
    with _LOCK:
        if min(small.shape[:2]) >= 2 * MIN_FACE:
            boxes, probs, points = _model("mtcnn").detect(small)
            for box, prob, pts in zip(boxes, probs, points):
                if not np.isfinite(float(prob)) or float(prob) < min_prob:
                    continue
                faces.append(Face(np.asarray(box, np.float64) / scale, np.asarray(pts, np.float64) / scale,
                                  float(prob)))
        if not faces and fallback:
            dets, scores, _ = _model("hog").run(small, 1, hog_min_score)
            for r, s in zip(dets, scores):
                box = np.array([r.left(), r.top(), r.right(), r.bottom()], np.float64) / scale
                faces.append(Face(box, None, float(s), "dlib_hog"))
    return sorted(faces, key=lambda f: (float(f.box[0] + f.box[2]) / 2, float(f.box[1] + f.box[3]) / 2)), scale
