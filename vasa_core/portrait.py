"""Portrait analysis: find the face, frame the output square, fit the 3D face mesh, estimate head pose.

`analyze_portrait(image, size)` returns a `Portrait`: the framed image (size x size RGB), the 478 mediapipe
landmarks in pixels (x, y, and z on the same scale as x; smaller z = closer to the camera), the head's
rotation and pivot, and a person/background mask. Faces are found with `vasa_core.faces` (MTCNN, the detector
the safety gate uses); the largest face is animated.
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vasa_core import models

from vasa_core.faces import Face
from vasa_core.faces import detect_faces as _detect

# mediapipe face-mesh landmark indices: the one table, `vasa_core.landmarks` (re-exported here for the rig,
# the renderer and older callers)
from .landmarks import (BROW_L, BROW_R, CHEEK_L, CHEEK_R, CHIN, EYE_L_LOWER, EYE_L_UPPER, EYE_R_LOWER,  # noqa: F401
                        EYE_R_UPPER, FACE_OVAL, FOREHEAD, INNER_CORNERS, IRIS_L, IRIS_R, LIP_MID_LOWER, LIP_MID_UPPER,
                        LIPS_INNER_LOWER, LIPS_INNER_UPPER, LIPS_OUTER_LOWER, LIPS_OUTER_UPPER, MOUTH_CORNERS,
                        NOSE_BASE, NOSE_TIP)
from .errors import (FaceCutOffError, FaceTooSmallError, ImageError, NoFaceError, ProfileFaceError)

MAX_SIDE = 4096            # px: larger images are downscaled to this long side first
MIN_FACE_PX = 80           # px: narrower faces (MTCNN box width, in the source image) are refused
MAX_PROFILE_DEG = 60.0     # |yaw| above this is a profile view: refused (3/4 views, 30-45 degrees, are fine)
FRAME_SCALE = 2.4          # output side = at least this x the face box side ...
HEAD_FRAMED = 5.0          # ... and up to this x, rather than upscale a source smaller than the output
DETECT_SIDE = 800          # px: MTCNN runs on a copy of at most DETECT_SIDE**2 pixels (speed)



@dataclass(frozen=True)
class Portrait:
    """A framed portrait ready to animate.

    image:       (S, S, 3) uint8 RGB, the face framed in the centre
    landmarks:   (478, 3) float32 pixels; x right, y down, z away from the camera (same scale as x)
    rotation:    (3, 3) head-to-camera rotation (columns: head x = subject's right->left, y = down, z = back)
    center:      (3,) pivot of head rotation, pixels
    yaw, pitch, roll: the portrait's head pose in degrees (sign convention of `vasa_core.motion`)
    person_mask: (S, S) float32 in [0, 1], 1 on the person (face, hair, neck, body)
    face_width:  distance between the face's sides (landmarks 234-454), pixels
    mouth_open:  inner-lip gap / face width in the portrait (0 for a closed mouth)
    crop_box:    (x0, y0, x1, y1) of the framed square in the source image's pixels (always inside it)
    key:         SHA-256 of the source pixels + size (cache key)
    """
    image: np.ndarray
    landmarks: np.ndarray
    rotation: np.ndarray
    center: np.ndarray
    yaw: float
    pitch: float
    roll: float
    person_mask: np.ndarray
    face_width: float
    mouth_open: float
    crop_box: tuple[float, float, float, float]
    key: str

    @property
    def size(self) -> int:
        return int(self.image.shape[0])


# --- image loading --------------------------------------------------------------------------------------

def load_image(source: str | Path | bytes | np.ndarray) -> np.ndarray:
    """An image (path, bytes or array) as RGB uint8, images with a side above 4096 px downscaled to 4096.

    Files and bytes go through the one image decoder, the safety gate's `vasa_core.validate.validate_image`
    (JPEG, PNG and WebP by content, EXIF orientation applied, 40 megapixels at most, at least 64 px a side);
    arrays are checked for shape and size. Raises ImageError with the decoder's sentence.
    """
    from vasa_core.validate import MIN_IMAGE_SIDE, ValidationError, validate_image
    if isinstance(source, np.ndarray):
        arr = source
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, -1)
        if arr.ndim != 3 or arr.shape[2] not in (3, 4):
            raise ImageError("The image array must be (H, W, 3) RGB or (H, W, 4) RGBA.")
        arr = np.ascontiguousarray(arr[..., :3]).astype(np.uint8)
        h, w = arr.shape[:2]
        if min(h, w) < MIN_IMAGE_SIDE:
            raise ImageError(f"The image is only {w}x{h} pixels; it is too small to contain a usable face.")
    else:
        try:
            arr = np.array(validate_image(source).rgb)
        except ValidationError as e:
            raise ImageError(str(e)) from None
    h, w = arr.shape[:2]
    if max(h, w) > MAX_SIDE:
        k = MAX_SIDE / max(h, w)
        arr = cv2.resize(arr, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(arr)


# --- models (loaded once, shared, thread-safe) -----------------------------------------------------------

_LOCK = threading.RLock()   # mediapipe's graphs are not thread-safe while they run: one caller at a time


def _model(name: str):
    """mediapipe's face mesh ('mesh', 478 points with depth, iris refined) or selfie mask ('selfie'), from the
    one model registry (`vasa_core.models`)."""
    import mediapipe as mp
    if name == "mesh":
        return models.get("face_mesh", lambda: mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.3))
    return models.get("selfie_segmentation", lambda: mp.solutions.selfie_segmentation.SelfieSegmentation(
        model_selection=0))


def video_face_mesh(refine: bool = True, confidence: float = 0.4):
    """A new mediapipe face mesh for tracking ONE video, frame by frame in order (`.process(rgb)`; it keeps
    state between frames, so each video gets its own; close it with `.close()` or `with`). The one place the
    trackers (lip-sync evaluation, motion tracks, the detector's signals) get their mesh from; `refine`: the
    10 iris points (478 landmarks, else 468)."""
    import mediapipe as mp
    return mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=refine,
                                           min_detection_confidence=confidence, min_tracking_confidence=confidence)


def faces_largest_first(rgb: np.ndarray, min_score: float = 0.9) -> list[Face]:
    """All faces the shared detector (`vasa_core.faces.detect_faces`, MTCNN) finds, largest first (boxes and points in
    `rgb`'s pixels; detected on a copy of at most DETECT_SIDE**2 pixels)."""
    faces, _ = _detect(rgb, max_side=DETECT_SIDE, min_prob=min_score, fallback=False)
    return sorted(faces, key=lambda f: -f.area)


# --- geometry -------------------------------------------------------------------------------------------

def head_rotation(lm: np.ndarray) -> np.ndarray:
    """Head-to-camera rotation from landmarks: x from the right to the left cheek, y from forehead to chin."""
    x = (lm[CHEEK_L] - lm[CHEEK_R]) + (lm[263] - lm[33])
    x /= np.linalg.norm(x)
    y = lm[CHIN] - lm[FOREHEAD]
    y -= x * np.dot(x, y)
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    return np.stack([x, y, z], 1)


def rotation_angles(r: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a head-to-camera rotation (conventions of `vasa_core.motion`)."""
    yaw = np.degrees(np.arcsin(np.clip(r[2, 0], -1, 1)))
    pitch = -np.degrees(np.arcsin(np.clip(r[2, 1], -1, 1)))
    roll = np.degrees(np.arctan2(-r[1, 0], r[0, 0]))
    return float(yaw), float(pitch), float(roll)


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rotation for (yaw, pitch, roll) degrees: +yaw moves the nose right, +pitch up, +roll counter-clockwise."""
    a, b, c = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(a), 0, -np.sin(a)], [0, 1, 0], [np.sin(a), 0, np.cos(a)]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), np.sin(b)], [0, -np.sin(b), np.cos(b)]])
    rz = np.array([[np.cos(c), np.sin(c), 0], [-np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ rx @ ry


def _frame_box(face: Face, h: int, w: int, size: int) -> tuple[int, int, int, int]:
    """The square to crop (whole pixels), always inside the source image, so nothing is ever invented.

    FRAME_SCALE x the face box at the least, centred a little above the face centre; wider (up to
    HEAD_FRAMED x the face box) rather than upscale a source smaller than the output, so a head-and-shoulders
    portrait keeps its own framing and scale; never wider than the image's short side. When the image is too
    small for the margin (a face crop, a tight video frame) the square shifts to stay inside, so the face may
    end up off-centre or larger.
    """
    bw, bh = face.box[2] - face.box[0], face.box[3] - face.box[1]
    side = max(FRAME_SCALE * max(bw, bh), min(size, HEAD_FRAMED * max(bw, bh)))
    side = int(min(round(side), w, h))
    cx = (face.box[0] + face.box[2]) / 2
    cy = (face.box[1] + face.box[3]) / 2 - 0.08 * bh
    x0 = int(np.clip(round(cx - side / 2), 0, w - side))
    y0 = int(np.clip(round(cy - side / 2), 0, h - side))
    return x0, y0, x0 + side, y0 + side


def _crop(rgb: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """Cut `box` out of the image and resample it to size x size: area averaging when shrinking, Lanczos
    when the source is smaller than the output (the sharpest of OpenCV's filters), nothing when equal."""
    x0, y0, x1, y1 = box
    sub = rgb[y0:y1, x0:x1]
    if sub.shape[0] == size:
        return np.ascontiguousarray(sub)
    interp = cv2.INTER_AREA if sub.shape[0] > size else cv2.INTER_LANCZOS4
    return cv2.resize(sub, (size, size), interpolation=interp)


def fit_mesh(image: np.ndarray) -> np.ndarray | None:
    """478 face-mesh landmarks of the largest face in `image` in pixels (x, y, z), or None."""
    h, w = image.shape[:2]
    with _LOCK:
        result = _model("mesh").process(image)
    if not result.multi_face_landmarks:
        return None
    lm = result.multi_face_landmarks[0].landmark
    return np.array([[p.x * w, p.y * h, p.z * w] for p in lm], np.float32)


def person_mask(image: np.ndarray) -> np.ndarray:
    """Soft person/background mask (S, S) float32 from mediapipe selfie segmentation."""
    with _LOCK:
        res = _model("selfie").process(image)
    mask = res.segmentation_mask
    if mask is None:
        return np.ones(image.shape[:2], np.float32)
    return np.clip(mask.astype(np.float32), 0, 1)


def check_face(face: Face, width: int, height: int) -> None:
    """First checks on a detected face (before the mesh): too small, mostly outside the image, profile.

    MTCNN's box reaches past the forehead and chin, so on a tight face crop it may stick out of the image
    although the whole face is visible; only a box that is largely outside means a cut-off face (the mesh
    check, `check_visible`, decides the rest). A profile is one eye hidden: the nose beyond the far eye.
    """
    if face.width < MIN_FACE_PX:
        raise FaceTooSmallError(f"The face is only about {face.width:.0f} px wide; at least {MIN_FACE_PX} px is "
                                "needed. Please use a larger or closer-cropped portrait.")
    margin = 0.25 * face.width
    x0, y0, x1, y1 = face.box
    if x0 < -margin or y0 < -margin or x1 > width + margin or y1 > height + margin:
        raise FaceCutOffError(CUT_OFF_MESSAGE)
    if face.points is None:    # dlib's HOG fallback gives no points: the mesh's yaw check decides (check_yaw)
        return
    eye_r, eye_l, nose = face.points[0], face.points[1], face.points[2]
    eyes = abs(eye_l[0] - eye_r[0])
    beyond = max(min(eye_r[0], eye_l[0]) - nose[0], nose[0] - max(eye_r[0], eye_l[0]), 0.0)
    if beyond > 0.35 * max(eyes, 1.0):
        raise ProfileFaceError("The face is turned too far to the side (profile view). Please use a portrait "
                               "where both eyes are visible.")


CUT_OFF_MESSAGE = ("The face is cut off by the edge of the image. Please use a portrait that shows the whole face, "
                   "from the forehead to the chin.")
CORE_POINTS = sorted(set(EYE_R_UPPER + EYE_R_LOWER + EYE_L_UPPER + EYE_L_LOWER + LIPS_OUTER_UPPER
                         + LIPS_OUTER_LOWER + [NOSE_TIP, NOSE_BASE, CHIN]))


def check_visible(lm: np.ndarray, size: int) -> None:
    """Refuse a face the framed square does not show: eyes, nose, mouth and chin must be inside it, and
    at most a fifth of the face outline (a bit of forehead or cheek on a tight crop) may lie outside."""
    tol = 0.03 * float(np.linalg.norm(lm[CHEEK_L, :2] - lm[CHEEK_R, :2]))

    def outside(pts: np.ndarray) -> np.ndarray:
        return (pts[:, 0] < -tol) | (pts[:, 1] < -tol) | (pts[:, 0] > size - 1 + tol) | (pts[:, 1] > size - 1 + tol)
    if outside(lm[CORE_POINTS, :2]).any() or outside(lm[FACE_OVAL, :2]).mean() > 0.2:
        raise FaceCutOffError(CUT_OFF_MESSAGE)


MIN_EYE_RATIO = 0.4   # the far eye's width / the near eye's, in the image, below which one eye is hidden


def check_eyes_visible(lm: np.ndarray) -> None:
    """Refuse a near-profile: the far eye foreshortened to under MIN_EYE_RATIO of the near eye's width
    (measured: 0.62 at 37 degrees of yaw, 0.32 on a near-profile that mediapipe puts at 47 degrees, whose
    silhouette then tears against the background when the jaw moves)."""
    right = float(np.linalg.norm(lm[EYE_R_UPPER[0], :2] - lm[EYE_R_UPPER[-1], :2]))
    left = float(np.linalg.norm(lm[EYE_L_UPPER[0], :2] - lm[EYE_L_UPPER[-1], :2]))
    if min(right, left) < MIN_EYE_RATIO * max(right, left, 1e-6):
        raise ProfileFaceError("The face is turned too far to the side: one eye is almost hidden. Please use a "
                               "portrait where both eyes are visible.")


def check_yaw(yaw: float) -> None:
    """Refuse a head turned more than MAX_PROFILE_DEG degrees from the camera (3/4 views are fine)."""
    if abs(yaw) > MAX_PROFILE_DEG:
        raise ProfileFaceError(f"The face is turned about {abs(yaw):.0f} degrees to the side; at most "
                               f"{MAX_PROFILE_DEG:.0f} degrees works. Please use a portrait where both eyes are "
                               "visible.")


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def analyze_portrait(source: str | Path | bytes | np.ndarray, size: int = 512,
                     face_box: tuple[float, float, float, float] | Face | None = None) -> Portrait:
    """Detect, frame and analyse a face of the portrait. Raises a specific InputError when unusable.

    By default the largest face is animated; `face_box` (x0, y0, x1, y1 in the image's pixels) picks the
    detected face that overlaps it most; a `Face` (the safety gate's, `GateDecision.face`) is used as it is,
    so a request's face is found once.
    """
    if not 256 <= size <= 1024:
        raise ValueError("size must be between 256 and 1024 pixels")
    rgb = load_image(source)
    h, w = rgb.shape[:2]
    faces = [face_box] if isinstance(face_box, Face) else faces_largest_first(rgb)
    if not faces:
        raise NoFaceError("No face was found in the image. Please use a portrait where the face is clearly "
                          "visible, facing the camera.")
    face = faces[0]
    if face_box is not None and not isinstance(face_box, Face):
        overlaps = [_iou(f.box, np.asarray(face_box, float)) for f in faces]
        if max(overlaps) < 0.3:
            raise NoFaceError("The chosen face could not be found again in the image; please choose another.")
        face = faces[int(np.argmax(overlaps))]
    check_face(face, w, h)

    box = _frame_box(face, h, w, size)
    image = _crop(rgb, box, size)
    lm = fit_mesh(image)
    if lm is None:
        raise NoFaceError("A face was found but its shape could not be measured (it may be too blurred, "
                          "covered or turned). Please try a clearer, front-facing portrait.")
    check_visible(lm, size)
    check_eyes_visible(lm)
    rot = head_rotation(lm.astype(np.float64))
    yaw, pitch, roll = rotation_angles(rot)
    check_yaw(yaw)
    face_w = float(np.linalg.norm(lm[CHEEK_L, :2] - lm[CHEEK_R, :2]))
    oval = lm[FACE_OVAL].astype(np.float64)
    center = oval.mean(0)
    face_h = float(np.linalg.norm(lm[CHIN, :2] - lm[FOREHEAD, :2]))
    center = center + rot @ np.array([0.0, 0.12 * face_h, 0.45 * face_w])   # behind and below the face centre
    gap = float(np.linalg.norm(lm[LIP_MID_UPPER, :2] - lm[LIP_MID_LOWER, :2])) / max(face_w, 1.0)
    key = hashlib.sha256(rgb.tobytes() + f"{rgb.shape}{size}{face.box.round().tolist()}".encode()).hexdigest()
    return Portrait(image=image, landmarks=lm, rotation=rot, center=center.astype(np.float64),
                    yaw=yaw, pitch=pitch, roll=roll, person_mask=person_mask(image), face_width=face_w,
                    mouth_open=gap, crop_box=box, key=key)
