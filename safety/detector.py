"""The bundled deepfake detector: is this talking-head clip generated?

Two independent kinds of evidence:
  1. our own invisible watermark (`safety.watermark`; proof, but only for clips this product made and whose
     mark survived), and
  2. a forensic score from a small model on clip-level temporal and physiological cues, which needs no mark
     and also fires on other generators' clips (how well: `python -m safety.detector evaluate`, README).

Forensic pipeline (all CPU, ~10x faster than real time at 512x512):
    video file -> `extract_signals` (one decoding pass over the first `ANALYSIS_SECONDS`):
        THUMB_FPS/s      -> a small RGB thumbnail (THUMB_WIDTH px wide)            frame differences, skin colour
        ANALYSIS_FPS/s   -> mediapipe face mesh (478 points) + face image statistics   kinematics, blinks, sharpness
        audio track      -> speech-band log energy at 100 Hz                     lip-audio consistency
    -> `window_features` (one vector of FEATURE_NAMES per analysis window)
    -> `DetectorModel` (scikit-learn gradient boosting + Platt calibration, assets/detector.pkl)
    -> forensic_score in [0, 1], and per cue group how much it moved the score.

The model is trained by `python -m tools.evals.train` on unmarked renderer frames and real clips, both
re-encoded alike (see docs/detector.md); it never sees the watermark or the visible label.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import pickle
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from vasa_core import ASSETS   # the one locator of the shipped files (checkout or installed wheel); imports nothing heavy
from vasa_core.audio import speech_band_energy

from .errors import InputError, SafetyError

ROOT = Path(__file__).resolve().parent.parent   # the checkout (or site-packages): what Ray workers put on their path
MODEL_PATH = ASSETS / "detector.pkl"
EVAL_PATH = ASSETS / "detector_eval.json"

ANALYSIS_FPS = 8.0          # face-mesh samples per second of video
WINDOW_SECONDS = 6.0        # one feature vector per window of this length
MAX_WINDOWS = 2             # detect() analyses the first MAX_WINDOWS * WINDOW_SECONDS of a clip
ANALYSIS_MAX_SIDE = 640     # px: sampled frames are scaled down to this longest side before analysis
THUMB_WIDTH = 96            # px: width of the thumbnails (frame differences, skin colour)
THUMB_FPS = 12.5            # thumbnails per second of video (fixed, so frame-rate changes do not shift the cues)
AUDIO_RATE = 16_000         # Hz
MIN_FACE_SAMPLES = 6        # fewer face-mesh detections than this in a window: kinematic cues are missing

# face-mesh landmark indices (mediapipe topology)
EYE_L = (33, 133, 159, 145)       # outer, inner, upper lid, lower lid (image-left eye)
EYE_R = (263, 362, 386, 374)
IRIS_L, IRIS_R = 468, 473
LIP_IN_UP, LIP_IN_LO = 13, 14
LIP_CORNERS = (61, 291)
CHIN = (152, 148, 377)
CHEEKS = (205, 425, 50, 280)
BROWS = (105, 334, 66, 296)
NOSE_TIP = 1
FACE_EDGES = (234, 454)
STABLE = (33, 133, 362, 263, 1, 4, 5, 6, 168, 197, 195, 10, 151, 9, 234, 454, 127, 356)
OUTER_LIP = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 146, 91, 181, 84, 17, 314, 405, 321, 375)
INNER_LIP = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)

# cue group -> features (the model sees all of them; `cues` in a result says how much each group moved it)
CUE_GROUPS: dict[str, tuple[str, ...]] = {
    "head_motion": ("head_tx_speed", "head_ty_speed", "head_roll_speed", "head_scale_speed", "head_yaw_speed",
                    "head_pitch_speed", "head_roll_std", "head_yaw_std", "head_pitch_std", "head_t_std",
                    "head_tx_hf", "head_roll_hf", "head_yaw_hf"),
    "mouth_motion": ("mouth_open_mean", "mouth_open_std", "mouth_open_range", "mouth_open_speed",
                     "mouth_width_std", "mouth_open_width_corr", "mouth_open_hf", "mouth_vs_head",
                     "lip_nonrigid_speed", "chin_vs_mouth", "cheek_vs_mouth", "brow_vs_mouth", "stable_jitter",
                     "mouth_vs_stable"),
    "eyes": ("ear_mean", "ear_std", "ear_min_ratio", "blink_rate", "ear_lr_corr", "iris_std", "iris_speed",
             "iris_lr_corr"),
    "lip_audio": ("av_corr_max", "av_corr_lag", "av_corr0", "av_dcorr", "av_quiet_motion", "audio_energy_std"),
    "frame_differences": ("diff_face", "diff_ring", "diff_bg", "diff_bg_vs_face", "diff_ring_vs_face",
                          "diff_bg_cv", "diff_frozen_frac", "diff_face_hf"),
    "skin_colour_rhythm": ("rppg_std", "rppg_band_frac", "chroma_band_frac", "bg_lum_std", "face_bg_lum_corr"),
    "image_statistics": ("sharp_face_vs_bg", "hf_face_vs_bg", "sharp_mouth_vs_cheek", "teeth_rel",
                         "interior_std_rel", "res_corr_bg", "res_corr_face", "face_found_frac"),
}
FEATURE_NAMES: tuple[str, ...] = tuple(f for names in CUE_GROUPS.values() for f in names)


class DetectorError(SafetyError):
    """A clip could not be analysed (not a video, damaged, no frames). ``str(err)`` is the public message."""


# ----------------------------------------------------------------------------------------------------------
# signals: one decoding pass
@dataclass(frozen=True)
class ClipSignals:
    """Raw per-frame measurements of (the first seconds of) one clip.

    sample_t:   (M,) seconds of the face-mesh samples (ANALYSIS_FPS per second)
    landmarks:  (M, 478, 3) float32 face mesh in pixels of a frame scaled to height 1 (x, y) and z alike;
                NaN where no face was found
    img_stats:  (M, len(IMG_STATS)) per-sample face image statistics (NaN where no face)
    thumb_t:    (N,) seconds of the thumbnails (THUMB_FPS per second)
    thumbs:     (N, h, THUMB_WIDTH, 3) uint8 RGB thumbnails
    energy_t, energy: 100 Hz speech-band log energy (natural log) of the audio track, or None without audio
    duration:   seconds of video analysed; aspect: frame width / height
    """
    sample_t: np.ndarray
    landmarks: np.ndarray
    img_stats: np.ndarray
    thumb_t: np.ndarray
    thumbs: np.ndarray
    energy_t: np.ndarray | None
    energy: np.ndarray | None
    duration: float
    aspect: float


IMG_STATS = ("sharp_face", "sharp_bg", "hf_face", "hf_bg", "sharp_mouth", "sharp_cheek", "teeth_rel",
             "interior_std_rel", "res_corr_bg", "res_corr_face")


def _open(source):
    import av
    try:
        if isinstance(source, (bytes, bytearray)):
            return av.open(io.BytesIO(bytes(source)))
        return av.open(str(source))
    except Exception as e:  # FileNotFoundError, av.error.InvalidDataError, ...
        raise DetectorError("The file could not be read as a video.") from e


def _read_audio(source, max_seconds: float) -> np.ndarray | None:
    """The first `max_seconds` of the first audio track as 16 kHz mono float32, or None (no track / silent)."""
    import av
    try:
        with _open(source) as c:
            if not c.streams.audio:
                return None
            res = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
            parts, n = [], 0
            for frame in c.decode(audio=0):
                for out in res.resample(frame):
                    a = out.to_ndarray().reshape(-1)
                    parts.append(a)
                    n += len(a)
                if n >= max_seconds * AUDIO_RATE:
                    break
    except DetectorError:
        raise
    except Exception:
        return None
    if not parts:
        return None
    x = np.concatenate(parts)[: int(max_seconds * AUDIO_RATE)].astype(np.float32)
    if len(x) < AUDIO_RATE // 2 or float(np.max(np.abs(x))) < 1e-4:
        return None
    return x


def _face_box(lm: np.ndarray, w: int, h: int, grow: float = 1.0) -> tuple[int, int, int, int]:
    """Integer box (x0, y0, x1, y1) around landmarks (pixels), grown by `grow` around its centre, clipped."""
    x0, y0 = np.nanmin(lm[:, 0]), np.nanmin(lm[:, 1])
    x1, y1 = np.nanmax(lm[:, 0]), np.nanmax(lm[:, 1])
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2 * grow, (y1 - y0) / 2 * grow
    return (int(max(0, cx - hw)), int(max(0, cy - hh)), int(min(w, cx + hw)), int(min(h, cy + hh)))


def _hf(gray: np.ndarray) -> tuple[float, float]:
    """(Laplacian variance, mean absolute high-pass residual) of a float32 grey patch."""
    import cv2
    if gray.size < 64:
        return math.nan, math.nan
    lap = cv2.Laplacian(gray, cv2.CV_32F)
    res = gray - cv2.GaussianBlur(gray, (0, 0), 1.0)
    return float(lap.var()), float(np.abs(res).mean())


def _residual(gray: np.ndarray, box: tuple[int, int, int, int], size: int = 64) -> np.ndarray | None:
    """High-pass residual of a box of a grey image resampled to size x size (None for empty boxes)."""
    import cv2
    x0, y0, x1, y1 = box
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    patch = cv2.resize(gray[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA)
    return (patch - cv2.GaussianBlur(patch, (0, 0), 1.0)).reshape(-1)


def _corr(a: np.ndarray | None, b: np.ndarray | None) -> float:
    if a is None or b is None or len(a) != len(b) or len(a) < 3:
        return math.nan
    sa, sb = a.std(), b.std()
    if sa < 1e-9 or sb < 1e-9:
        return math.nan
    return float(((a - a.mean()) * (b - b.mean())).mean() / (sa * sb))


def _image_stats(rgb: np.ndarray, lm: np.ndarray, prev: dict | None) -> tuple[np.ndarray, dict]:
    """Per-sample face image statistics (IMG_STATS order) of one RGB frame with its landmarks (pixels)."""
    import cv2
    h, w = rgb.shape[:2]
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    fb = _face_box(lm, w, h)
    side = max(fb[2] - fb[0], 8)
    # background: the band above the head and the two top corners outside 1.6x the face box
    gb = _face_box(lm, w, h, 1.6)
    bg_boxes = [(0, 0, gb[0], min(h, gb[3])), (gb[2], 0, w, min(h, gb[3])), (gb[0], 0, gb[2], gb[1])]
    bg_boxes = [b for b in bg_boxes if b[2] - b[0] >= 8 and b[3] - b[1] >= 8]

    def norm_patch(box):
        x0, y0, x1, y1 = box
        p = gray[y0:y1, x0:x1]
        scale = 128.0 / side                     # same pixel scale as the face patch
        if scale < 1:
            p = cv2.resize(p, (max(8, int((x1 - x0) * scale)), max(8, int((y1 - y0) * scale))),
                           interpolation=cv2.INTER_AREA)
        return p

    face_n = norm_patch(fb)
    sf, hf_f = _hf(face_n)
    bgs = [_hf(norm_patch(b)) for b in bg_boxes]
    sb = float(np.mean([b[0] for b in bgs])) if bgs else math.nan
    hb = float(np.mean([b[1] for b in bgs])) if bgs else math.nan
    mouth = _face_box(lm[list(OUTER_LIP)], w, h, 1.1)
    cheek_pts = lm[[50, 205, 187, 280, 425, 411]]
    cheek = _face_box(cheek_pts, w, h, 1.0)
    sm, _ = _hf(norm_patch(mouth)) if mouth[2] - mouth[0] >= 8 and mouth[3] - mouth[1] >= 8 else (math.nan, 0)
    sc, _ = _hf(norm_patch(cheek)) if cheek[2] - cheek[0] >= 8 and cheek[3] - cheek[1] >= 8 else (math.nan, 0)
    # mouth interior (only when open): brightness of the brightest part (teeth) and spread, relative to skin
    teeth_rel = interior_rel = math.nan
    iod = float(np.linalg.norm(lm[EYE_L[:2], :2].mean(0) - lm[EYE_R[:2], :2].mean(0)))
    if iod > 4 and np.linalg.norm(lm[LIP_IN_UP, :2] - lm[LIP_IN_LO, :2]) > 0.08 * iod:
        poly = np.round(lm[list(INNER_LIP), :2]).astype(np.int32)
        mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(mask, [poly], 1)
        inside = gray[mask > 0]
        skin = gray[cheek[1]:cheek[3], cheek[0]:cheek[2]]
        if inside.size >= 20 and skin.size >= 20:
            ref = float(np.median(skin)) + 1.0
            teeth_rel = float(np.percentile(inside, 90)) / ref
            interior_rel = float(inside.std()) / ref
    # temporal correlation of the high-pass residual with the previous sample (same boxes)
    bg_box = max(bg_boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1])) if bg_boxes else None
    cur = {"bg": _residual(gray, bg_box) if bg_box else None, "face": _residual(gray, fb),
           "bg_box": bg_box, "fb": fb}
    rc_bg = rc_face = math.nan
    if prev is not None:
        if prev.get("bg_box") is not None:
            rc_bg = _corr(_residual(gray, prev["bg_box"]), prev["bg"])
        rc_face = _corr(_residual(gray, prev["fb"]), prev["face"])
    stats = np.array([sf, sb, hf_f, hb, sm, sc, teeth_rel, interior_rel, rc_bg, rc_face], np.float32)
    return stats, cur


def _rgb(frame) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a decoded frame (OpenCV's I420 conversion: several times faster than swscale's)."""
    import cv2
    if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0:
        return cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2RGB_I420)
    return frame.to_ndarray(format="rgb24")


def _luma(frame) -> np.ndarray:
    """(H, W) uint8 luma plane of a decoded frame."""
    if frame.format.name in ("yuv420p", "yuvj420p") and frame.width % 2 == 0 and frame.height % 2 == 0:
        return frame.to_ndarray()[: frame.height]
    import cv2
    return cv2.cvtColor(frame.to_ndarray(format="rgb24"), cv2.COLOR_RGB2GRAY)


def extract_signals(source, max_seconds: float = MAX_WINDOWS * WINDOW_SECONDS, luma_sink=None) -> ClipSignals:
    """Decode the first `max_seconds` of a clip (path or bytes) once and measure what the features need.

    luma_sink: optional callable given every decoded frame's (H, W) uint8 luma (the watermark check rides
    on the same decoding pass). Raises DetectorError (one sentence) for files that are not readable videos
    or have no frames.
    """
    import cv2
    import mediapipe as mp

    audio = _read_audio(source, max_seconds)
    energy_t = energy = None
    if audio is not None:
        energy_t, energy = speech_band_energy(audio, AUDIO_RATE)
    thumbs, thumb_t, sample_t, lms, stats = [], [], [], [], []
    prev_stats = None
    next_sample = next_thumb = last_t = 0.0
    t_first = None
    aspect = 1.0
    try:
        with _open(source) as c, mp.solutions.face_mesh.FaceMesh(
                static_image_mode=False, max_num_faces=1, refine_landmarks=True,
                min_detection_confidence=0.5, min_tracking_confidence=0.5) as mesh:
            if not c.streams.video:
                raise DetectorError("The file has no video track.")
            vs = c.streams.video[0]
            vs.thread_type = "AUTO"
            rate = float(vs.average_rate or vs.guessed_rate or 25.0)
            for i, frame in enumerate(c.decode(vs)):
                t = float(frame.time) if frame.time is not None else i / rate
                if t_first is None:
                    t_first = t
                t -= t_first
                if t >= max_seconds:
                    break
                last_t = t + 1.0 / rate
                w, h = frame.width, frame.height
                aspect = w / h
                if luma_sink is not None:
                    luma_sink(_luma(frame))
                want_thumb, want_sample = t + 1e-6 >= next_thumb, t + 1e-6 >= next_sample
                if not (want_thumb or want_sample):
                    continue
                full = _rgb(frame)
                if want_thumb:                        # thumbnails at a fixed rate, whatever the clip's fps
                    next_thumb += 1.0 / THUMB_FPS
                    while next_thumb <= t:
                        next_thumb += 1.0 / THUMB_FPS
                    th = max(2, int(round(THUMB_WIDTH * h / w / 2)) * 2)
                    thumbs.append(cv2.resize(full, (THUMB_WIDTH, th), interpolation=cv2.INTER_AREA))
                    thumb_t.append(t)
                if not want_sample:
                    continue
                next_sample += 1.0 / ANALYSIS_FPS
                while next_sample <= t:
                    next_sample += 1.0 / ANALYSIS_FPS
                s = min(1.0, ANALYSIS_MAX_SIDE / max(w, h))
                aw, ah = max(2, int(round(w * s / 2)) * 2), max(2, int(round(h * s / 2)) * 2)
                rgb = full if (aw, ah) == (w, h) else cv2.resize(full, (aw, ah), interpolation=cv2.INTER_AREA)
                res = mesh.process(rgb)
                sample_t.append(t)
                if not res.multi_face_landmarks:
                    lms.append(np.full((478, 3), np.nan, np.float32))
                    stats.append(np.full(len(IMG_STATS), np.nan, np.float32))
                    prev_stats = None
                    continue
                pts = np.array([(p.x * aw, p.y * ah, p.z * aw) for p in res.multi_face_landmarks[0].landmark],
                               np.float32)
                st, prev_stats = _image_stats(rgb, pts, prev_stats)
                stats.append(st)
                lms.append(pts / ah)        # frame height = 1
    except DetectorError:
        raise
    except Exception as e:
        raise DetectorError("The video could not be decoded (damaged or unsupported file).") from e
    if not thumbs:
        raise DetectorError("The video has no frames that could be decoded.")
    return ClipSignals(sample_t=np.array(sample_t, np.float64), landmarks=np.array(lms, np.float32).reshape(-1, 478, 3),
                       img_stats=np.array(stats, np.float32).reshape(-1, len(IMG_STATS)),
                       thumb_t=np.array(thumb_t, np.float64), thumbs=np.stack(thumbs),
                       energy_t=energy_t, energy=energy, duration=float(last_t), aspect=aspect)


# ----------------------------------------------------------------------------------------------------------
# features
def _similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Least-squares 2-D similarity (Umeyama) mapping src (K, 2) onto dst: (scale, angle rad, translation)."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    cov = b.T @ a / len(src)
    u, d, vt = np.linalg.svd(cov)
    sgn = np.sign(np.linalg.det(u @ vt)) or 1.0
    dm = np.diag([1.0, sgn])
    r = u @ dm @ vt
    var = (a ** 2).sum() / len(src)
    scale = float((d * np.diag(dm)).sum() / max(var, 1e-12))
    t = md - scale * r @ ms
    return scale, float(math.atan2(r[1, 0], r[0, 0])), t


def _speed(x: np.ndarray, dt: float) -> float:
    """Mean absolute first difference per second of a series (NaN-free part)."""
    d = np.diff(x)
    d = d[np.isfinite(d)]
    return float(np.abs(d).mean() / dt) if len(d) else math.nan


def _hf_ratio(x: np.ndarray) -> float:
    """Mean |second difference| / mean |first difference|: ~0.7-1 for jittery, lower for smooth series."""
    d1, d2 = np.diff(x), np.diff(x, 2)
    d1, d2 = d1[np.isfinite(d1)], d2[np.isfinite(d2)]
    if len(d2) < 2 or np.abs(d1).mean() < 1e-9:
        return math.nan
    return float(np.abs(d2).mean() / np.abs(d1).mean())


def _nanstd(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.std()) if len(x) >= 3 else math.nan


def _band_frac(x: np.ndarray, fs: float, lo: float, hi: float, lo_all: float = 0.2, hi_all: float = 6.0) -> float:
    """Share of the power of a detrended series in [lo, hi] Hz among [lo_all, hi_all] Hz."""
    if len(x) < 16 or not np.all(np.isfinite(x)):
        return math.nan
    x = x - np.polyval(np.polyfit(np.arange(len(x)), x, 2), np.arange(len(x)))
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    f = np.fft.rfftfreq(len(x), 1.0 / fs)
    tot = spec[(f >= lo_all) & (f <= min(hi_all, fs / 2))].sum()
    if tot <= 0:
        return math.nan
    return float(spec[(f >= lo) & (f <= hi)].sum() / tot)


def _ear(lm: np.ndarray, eye: tuple[int, int, int, int]) -> np.ndarray:
    outer, inner, up, lo = eye
    return np.linalg.norm(lm[:, up, :2] - lm[:, lo, :2], axis=1) / (
        np.linalg.norm(lm[:, outer, :2] - lm[:, inner, :2], axis=1) + 1e-9)


def _kinematics(t: np.ndarray, lm: np.ndarray, energy_t, energy) -> dict[str, float]:
    """Head, mouth, eye and lip-audio features from face-mesh samples (frame height = 1)."""
    f: dict[str, float] = {}
    ok = np.all(np.isfinite(lm[:, :, 0]), axis=1)
    f["face_found_frac"] = float(ok.mean()) if len(ok) else 0.0
    if ok.sum() < MIN_FACE_SAMPLES:
        return f
    t, lm = t[ok], lm[ok].astype(np.float64)
    dt = 1.0 / ANALYSIS_FPS
    eye_c = (lm[:, EYE_L[:2], :2].mean(1) + lm[:, EYE_R[:2], :2].mean(1)) / 2
    iod = np.linalg.norm(lm[:, EYE_L[:2], :2].mean(1) - lm[:, EYE_R[:2], :2].mean(1), axis=1)
    iod_ref = float(np.median(iod))
    ref = np.median(lm[:, :, :2], axis=0)
    stable = list(STABLE)
    scales, angles, trans, aligned = [], [], [], []
    for k in range(len(lm)):
        s, a, tr = _similarity(lm[k, stable, :2], ref[stable])
        scales.append(s)
        angles.append(a)
        trans.append(tr)
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        aligned.append(s * lm[k, :, :2] @ rot.T + tr)
    aligned = (np.array(aligned) - ref[None]) / iod_ref          # non-rigid residual, IOD units
    roll = -np.degrees(np.unwrap(np.array(angles)))
    logs = np.log(np.array(scales))
    tx, ty = (eye_c[:, 0] - eye_c[0, 0]) / iod_ref, (eye_c[:, 1] - eye_c[0, 1]) / iod_ref
    edge_mid = lm[:, FACE_EDGES, :2].mean(1)
    edge_w = np.linalg.norm(lm[:, FACE_EDGES[0], :2] - lm[:, FACE_EDGES[1], :2], axis=1) + 1e-9
    yaw = (lm[:, NOSE_TIP, 0] - edge_mid[:, 0]) / edge_w
    chin_y = lm[:, CHIN[0], 1]
    pitch = (lm[:, NOSE_TIP, 1] - eye_c[:, 1]) / (chin_y - eye_c[:, 1] + 1e-9)
    f.update(head_tx_speed=_speed(tx, dt), head_ty_speed=_speed(ty, dt), head_roll_speed=_speed(roll, dt),
             head_scale_speed=_speed(logs, dt), head_yaw_speed=_speed(yaw, dt), head_pitch_speed=_speed(pitch, dt),
             head_roll_std=_nanstd(roll), head_yaw_std=_nanstd(yaw), head_pitch_std=_nanstd(pitch),
             head_t_std=float(np.hypot(_nanstd(tx), _nanstd(ty))), head_tx_hf=_hf_ratio(tx),
             head_roll_hf=_hf_ratio(roll), head_yaw_hf=_hf_ratio(yaw))
    # mouth
    ap = np.linalg.norm(lm[:, LIP_IN_UP, :2] - lm[:, LIP_IN_LO, :2], axis=1) / iod
    mw = np.linalg.norm(lm[:, LIP_CORNERS[0], :2] - lm[:, LIP_CORNERS[1], :2], axis=1) / iod
    head_speed = np.hypot(f["head_tx_speed"], f["head_ty_speed"])

    def nonrigid_speed(idx) -> float:
        d = np.linalg.norm(np.diff(aligned[:, list(idx)], axis=0), axis=2)
        return float(d.mean() / dt)

    lip_s = nonrigid_speed(OUTER_LIP)
    stable_s = nonrigid_speed(STABLE)
    f.update(mouth_open_mean=float(ap.mean()), mouth_open_std=float(ap.std()),
             mouth_open_range=float(np.percentile(ap, 95) - np.percentile(ap, 5)), mouth_open_speed=_speed(ap, dt),
             mouth_width_std=float(mw.std()), mouth_open_width_corr=_corr(ap, mw), mouth_open_hf=_hf_ratio(ap),
             mouth_vs_head=float(np.log((_speed(ap, dt) + 1e-4) / (head_speed + 1e-4))),
             lip_nonrigid_speed=lip_s, chin_vs_mouth=nonrigid_speed(CHIN) / (lip_s + 1e-6),
             cheek_vs_mouth=nonrigid_speed(CHEEKS) / (lip_s + 1e-6),
             brow_vs_mouth=nonrigid_speed(BROWS) / (lip_s + 1e-6), stable_jitter=stable_s,
             mouth_vs_stable=lip_s / (stable_s + 1e-6))
    # eyes
    el, er = _ear(lm, EYE_L), _ear(lm, EYE_R)
    ear = (el + er) / 2
    med = float(np.median(ear)) + 1e-9
    closed = ear < 0.6 * med
    onsets = int(np.sum(closed[1:] & ~closed[:-1]) + (1 if closed[0] else 0))
    span = max(float(t[-1] - t[0]) + dt, dt)
    iris = np.concatenate([(lm[:, IRIS_L, :2] - lm[:, EYE_L[:2], :2].mean(1)),
                           (lm[:, IRIS_R, :2] - lm[:, EYE_R[:2], :2].mean(1))], axis=1) / iod[:, None]
    f.update(ear_mean=float(ear.mean()), ear_std=float(ear.std()), ear_min_ratio=float(ear.min() / med),
             blink_rate=onsets * 60.0 / span, ear_lr_corr=_corr(el, er), iris_std=float(iris.std(0).mean()),
             iris_speed=float(np.abs(np.diff(iris, axis=0)).mean() / dt), iris_lr_corr=_corr(iris[:, 0], iris[:, 2]))
    # lip-audio consistency
    if energy is not None and len(energy) > 10:
        e = np.array([energy[(energy_t >= tt - 0.0625) & (energy_t < tt + 0.0625)].mean()
                      if np.any((energy_t >= tt - 0.0625) & (energy_t < tt + 0.0625)) else np.nan for tt in t])
        good = np.isfinite(e)
        if good.sum() >= MIN_FACE_SAMPLES and np.nanstd(e) > 1e-6:
            a, e = ap[good], e[good]
            lags = {}
            for lag in range(-2, 3):                  # mouth leads audio for lag > 0 (lag samples of 125 ms)
                if lag >= 0:
                    lags[lag] = _corr(a[:len(a) - lag], e[lag:])
                else:
                    lags[lag] = _corr(a[-lag:], e[:len(e) + lag])
            valid = {k: v for k, v in lags.items() if np.isfinite(v)}
            best = max(valid, key=valid.get) if valid else 0
            quiet = e < np.percentile(e, 30)
            loud = e > np.percentile(e, 70)
            da = np.abs(np.diff(a, prepend=a[0]))
            f.update(av_corr_max=valid.get(best, math.nan), av_corr_lag=float(best),
                     av_corr0=lags.get(0, math.nan), av_dcorr=_corr(np.diff(a), np.diff(e)),
                     av_quiet_motion=float(da[quiet].mean() / (da[loud].mean() + 1e-6)) if quiet.any() and loud.any()
                     else math.nan, audio_energy_std=float(e.std()))
    return f


def _pixels(sig: ClipSignals, t0: float, t1: float, lm_box: np.ndarray | None) -> dict[str, float]:
    """Frame-difference and skin-colour features from the thumbnails in [t0, t1).

    lm_box: (x0, y0, x1, y1) face box in frame-height units (median over the window), or None."""
    f: dict[str, float] = {}
    sel = (sig.thumb_t >= t0) & (sig.thumb_t < t1)
    th = sig.thumbs[sel].astype(np.float32)
    tt = sig.thumb_t[sel]
    if len(th) < 8 or lm_box is None:
        return f
    n, h, w, _ = th.shape
    fs = (len(tt) - 1) / max(tt[-1] - tt[0], 1e-3)
    x0, y0, x1, y1 = lm_box * h
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    r = np.maximum(np.abs(xx - cx) / max(hw, 1), np.abs(yy - cy) / max(hh, 1))
    face, ring, bg = r <= 0.8, (r > 1.1) & (r <= 1.7), r > 1.9
    inner = r <= 0.45
    gray = th @ np.array([0.299, 0.587, 0.114], np.float32)
    d = np.abs(np.diff(gray, axis=0))

    def reg(mask):
        return d[:, mask].mean(1) if mask.sum() >= 4 else None

    df, dr, db = reg(face), reg(ring), reg(bg)
    if df is not None:
        f["diff_face"] = float(np.log10(df.mean() + 1e-3))
        f["diff_face_hf"] = _hf_ratio(df)
    if dr is not None and df is not None:
        f["diff_ring"] = float(np.log10(dr.mean() + 1e-3))
        f["diff_ring_vs_face"] = float(np.log10((dr.mean() + 1e-3) / (df.mean() + 1e-3)))
    if db is not None and df is not None:
        f["diff_bg"] = float(np.log10(db.mean() + 1e-3))
        f["diff_bg_vs_face"] = float(np.log10((db.mean() + 1e-3) / (df.mean() + 1e-3)))
        f["diff_bg_cv"] = float(db.std() / (db.mean() + 1e-3))
        f["diff_frozen_frac"] = float(np.mean(db < 0.05))
    if inner.sum() >= 4:
        rgb = th[:, inner].mean(1)                                   # (n, 3)
        g = rgb[:, 1] / (rgb[:, 1].mean() + 1e-3)
        k = max(1, int(round(fs)))
        detr = g - np.convolve(np.pad(g, (k // 2, k - 1 - k // 2), mode="edge"), np.ones(k) / k, mode="valid")
        f["rppg_std"] = float(np.log10(detr.std() + 1e-5))
        f["rppg_band_frac"] = _band_frac(g, fs, 0.7, 3.0)
        nrm = rgb / (rgb.mean(0, keepdims=True) + 1e-3)
        chroma = nrm[:, 1] - (nrm[:, 0] + nrm[:, 2]) / 2
        f["chroma_band_frac"] = _band_frac(chroma, fs, 0.7, 3.0)
        if bg.sum() >= 4:
            bl = gray[:, bg].mean(1)
            fl = gray[:, inner].mean(1)
            f["bg_lum_std"] = float(np.log10(bl.std() / (bl.mean() + 1e-3) + 1e-5))
            f["face_bg_lum_corr"] = _corr(np.diff(fl), np.diff(bl))
    return f


def window_features(sig: ClipSignals, t0: float = 0.0, t1: float = WINDOW_SECONDS) -> np.ndarray:
    """One feature vector (len(FEATURE_NAMES),) float32 for the part [t0, t1) seconds of a clip; NaN = missing."""
    sel = (sig.sample_t >= t0) & (sig.sample_t < t1)
    lm, st = sig.landmarks[sel], sig.img_stats[sel]
    f = _kinematics(sig.sample_t[sel], lm, sig.energy_t, sig.energy)
    box = None
    ok = np.all(np.isfinite(lm[:, :, 0]), axis=1)
    if ok.any():
        pts = lm[ok]
        box = np.array([np.median(pts[:, :, 0].min(1)), np.median(pts[:, :, 1].min(1)),
                        np.median(pts[:, :, 0].max(1)), np.median(pts[:, :, 1].max(1))])
    f.update(_pixels(sig, t0, t1, box))
    if ok.sum() >= 2:
        s = {k: st[ok, i] for i, k in enumerate(IMG_STATS)}

        def med(k):
            v = s[k][np.isfinite(s[k])]
            return float(np.median(v)) if len(v) else math.nan
        f["sharp_face_vs_bg"] = math.log10((med("sharp_face") + 1e-3) / (med("sharp_bg") + 1e-3))
        f["hf_face_vs_bg"] = math.log10((med("hf_face") + 1e-3) / (med("hf_bg") + 1e-3))
        f["sharp_mouth_vs_cheek"] = math.log10((med("sharp_mouth") + 1e-3) / (med("sharp_cheek") + 1e-3))
        f["teeth_rel"], f["interior_std_rel"] = med("teeth_rel"), med("interior_std_rel")
        f["res_corr_bg"], f["res_corr_face"] = med("res_corr_bg"), med("res_corr_face")
    return np.array([f.get(k, math.nan) for k in FEATURE_NAMES], np.float32)


def clip_windows(sig: ClipSignals, seconds: float = WINDOW_SECONDS, max_windows: int = MAX_WINDOWS) -> list[tuple[float, float]]:
    """The analysis windows of a clip: consecutive `seconds`-long spans (a last one shorter than half is dropped,
    but a clip shorter than one window is one window)."""
    out, t = [], 0.0
    while len(out) < max_windows and t < sig.duration:
        if out and sig.duration - t < seconds / 2:
            break
        out.append((t, t + seconds))
        t += seconds
    return out or [(0.0, seconds)]


def clip_features(source, max_windows: int = MAX_WINDOWS, luma_sink=None) -> np.ndarray:
    """Feature vectors (n_windows, len(FEATURE_NAMES)) of the first windows of a clip (path or bytes)."""
    sig = extract_signals(source, max_windows * WINDOW_SECONDS, luma_sink)
    return np.stack([window_features(sig, a, b) for a, b in clip_windows(sig, max_windows=max_windows)])


# ----------------------------------------------------------------------------------------------------------
# model
@dataclass(frozen=True)
class DetectorModel:
    """A trained forensic model.

    estimator: scikit-learn classifier with predict_proba on (n, len(feature_names)) float arrays (NaN allowed)
    calibration: (a, b) of Platt scaling: score = sigmoid(a * logit(p) + b), fitted on held-out predictions
    thresholds: (real_below, generated_at_or_above) on the calibrated score; in between is "uncertain"
    medians: per-feature training medians (used to measure how much each cue group moved a score)
    meta: training facts (renderer commit, data counts, date, held-out false-positive rate at the threshold)
    """
    estimator: object
    feature_names: tuple[str, ...]
    calibration: tuple[float, float] = (1.0, 0.0)
    thresholds: tuple[float, float] = (0.35, 0.5)
    medians: tuple[float, ...] = ()
    meta: dict = field(default_factory=dict)

    def raw_logit(self, X: np.ndarray) -> np.ndarray:
        p = self.estimator.predict_proba(np.asarray(X, np.float64))[:, 1]
        p = np.clip(p, 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p))

    def score(self, X: np.ndarray) -> np.ndarray:
        """Calibrated probability of 'generated' per row of X (n, F)."""
        a, b = self.calibration
        return 1.0 / (1.0 + np.exp(-(a * self.raw_logit(X) + b)))

    def score_clip(self, X: np.ndarray) -> float:
        """One clip's score from its window vectors (n_windows, F): the mean calibrated logit of its windows."""
        s = np.clip(self.score(X), 1e-6, 1 - 1e-6)
        z = float(np.mean(np.log(s / (1 - s))))
        return 1.0 / (1.0 + math.exp(-z))

    def cue_effects(self, X: np.ndarray) -> dict[str, float]:
        """How much each cue group moved the clip score: score - score with that group set to training medians
        (positive = that group pushed towards 'generated')."""
        base = self.score_clip(X)
        out = {}
        med = np.asarray(self.medians, np.float32) if self.medians else np.nanmedian(X, 0)
        for group, names in CUE_GROUPS.items():
            idx = [self.feature_names.index(n) for n in names if n in self.feature_names]
            Xn = np.array(X, np.float32, copy=True)
            Xn[:, idx] = med[idx]
            out[group] = round(base - self.score_clip(Xn), 4)
        return out

    def verdict(self, score: float) -> str:
        lo, hi = self.thresholds
        return "generated" if score >= hi else ("real" if score < lo else "uncertain")


def fit_model(X: np.ndarray, y: np.ndarray, seed: int = 0, max_iter: int = 300, sample_weight=None,
              min_samples_leaf: int = 8):
    """Fit the gradient-boosting classifier on window vectors X (n, F) with labels y (1 = generated)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    clf = HistGradientBoostingClassifier(max_iter=max_iter, learning_rate=0.05, max_leaf_nodes=15,
                                         min_samples_leaf=min_samples_leaf, l2_regularization=1.0,
                                         max_features=0.5, random_state=seed)
    clf.fit(np.asarray(X, np.float64), np.asarray(y, int), sample_weight=sample_weight)
    return clf


def save_model(model: DetectorModel, path: str | Path = MODEL_PATH) -> None:
    with open(path, "wb") as fh:
        pickle.dump({"estimator": model.estimator, "feature_names": list(model.feature_names),
                     "calibration": list(model.calibration), "thresholds": list(model.thresholds),
                     "medians": list(model.medians), "meta": model.meta}, fh, protocol=5)


@lru_cache(maxsize=4)
def _load_cached(path: str, mtime: float) -> DetectorModel:
    with open(path, "rb") as fh:           # the project's own file (assets/), never a user upload
        d = pickle.load(fh)
    return DetectorModel(estimator=d["estimator"], feature_names=tuple(d["feature_names"]),
                         calibration=tuple(d["calibration"]), thresholds=tuple(d["thresholds"]),
                         medians=tuple(d.get("medians") or ()), meta=d.get("meta") or {})


def load_model(path: str | Path = MODEL_PATH) -> DetectorModel:
    """The shipped model (assets/detector.pkl), loaded once per process."""
    path = Path(path)
    if not path.is_file():
        raise DetectorError("The detector model is missing; retrain it with `python -m tools.evals.train`.")
    return _load_cached(str(path), path.stat().st_mtime)


# ----------------------------------------------------------------------------------------------------------
# scoring a clip
@dataclass(frozen=True)
class DetectorResult:
    """What the detector says about one clip.

    fake_score: in [0, 1]; 1.0 when our watermark is found (proof), else the forensic score
    verdict: "generated" | "real" | "uncertain"
    watermark: {"found": bool, "payload": hex or None, "confidence": float} (public facts only), or None when
        not checked
    forensic_score: calibrated probability from the forensic model (never uses the watermark)
    cues: cue group -> how much it moved the forensic score (+ towards generated)
    seconds: wall-clock seconds the check took
    """
    fake_score: float
    verdict: str
    watermark: dict | None
    forensic_score: float
    cues: dict[str, float]
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


class _WatermarkSink:
    """Feeds decoded luma frames to the watermark detector (`safety.watermark.Accumulator`), at most
    `safety.watermark.MAX_FRAMES` of them, during the detector's own decoding pass."""

    def __init__(self):
        from safety import watermark as wm
        self.wm, self.acc, self.failed = wm, wm.Accumulator(), False

    def __call__(self, luma: np.ndarray) -> None:
        if not self.failed and self.acc.n < self.wm.MAX_FRAMES:
            try:
                self.acc.add(luma)
            except Exception:          # e.g. a size change mid-stream: no watermark verdict, no crash
                self.failed = True

    def facts(self) -> dict:
        """Public facts only: found, payload id, confidence (never the audit record)."""
        det = None if self.failed else self.acc.result()
        if det is None or not det.found:
            return {"found": False, "payload": None, "confidence": 0.0}
        return {"found": True, "payload": self.wm.payload_hex(det.payload), "confidence": float(det.confidence)}


def detect(path: str | Path, *, check_watermark: bool = True, model: DetectorModel | None = None) -> DetectorResult:
    """Score one clip. Raises DetectorError with one sentence for files that are not readable videos."""
    t0 = time.perf_counter()
    p = Path(path)
    if not p.is_file():
        raise DetectorError("The file does not exist or is not a regular file.")
    model = model or load_model()
    sink = _WatermarkSink() if check_watermark else None
    X = clip_features(p, luma_sink=sink)
    forensic = model.score_clip(X)
    cues = model.cue_effects(X)
    wmk = sink.facts() if sink is not None else None
    if wmk and wmk["found"]:
        score, verdict = 1.0, "generated"
    else:
        score, verdict = forensic, model.verdict(forensic)
    return DetectorResult(fake_score=round(float(score), 4), verdict=verdict, watermark=wmk,
                          forensic_score=round(float(forensic), 4), cues=cues,
                          seconds=round(time.perf_counter() - t0, 3))


# ----------------------------------------------------------------------------------------------------------
# batch scans (local or Ray)
VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mpg", ".mpeg"}


def list_clips(items: Iterable[str]) -> list[str]:
    """Expand arguments into clip paths: a folder -> its video files (recursively, sorted); a .txt/.lst file ->
    one path per line; anything else -> itself."""
    out: list[str] = []
    for it in items:
        p = Path(it)
        if p.is_dir():
            out += sorted(str(q) for q in p.rglob("*") if q.is_file() and q.suffix.lower() in VIDEO_SUFFIXES)
        elif p.is_file() and p.suffix.lower() in (".txt", ".lst", ".list"):
            out += [ln.strip() for ln in p.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        else:
            out.append(str(p))
    return out


def scan_one(path: str, check_watermark: bool = True) -> dict:
    """One JSON line for a batch scan: {"path", ...DetectorResult} or {"path", "error"}; never raises."""
    try:
        return {"path": path, **detect(path, check_watermark=check_watermark).to_dict()}
    except InputError as e:
        return {"path": path, "error": str(e)}
    except Exception as e:  # one bad file never stops a run
        return {"path": path, "error": f"The clip could not be analysed ({type(e).__name__})."}


def _done_paths(out: Path) -> set[str]:
    done = set()
    if out.is_file():
        for ln in out.read_text().splitlines():
            try:
                done.add(json.loads(ln)["path"])
            except Exception:
                continue
    return done


def scan(paths: list[str], out: str | Path, ray_address: str | None = None, check_watermark: bool = True,
         progress: bool = True) -> int:
    """Score clips into a JSON-lines file, skipping paths already in it (resumable). Returns lines written.

    ray_address: None = in this process; 'auto' or 'host:port' = one Ray task per clip on that cluster
    ('local' starts a private one-CPU instance)."""
    out = Path(out)
    done = _done_paths(out)
    todo = [p for p in paths if p not in done]
    bar = _progress(len(todo), progress)
    written = 0
    with open(out, "a") as fh:
        for row in _scan_iter(todo, ray_address, check_watermark):
            fh.write(json.dumps(row, default=str) + "\n")
            fh.flush()
            written += 1
            bar(row)
    return written


def _scan_iter(todo: list[str], ray_address: str | None, check_watermark: bool) -> Iterator[dict]:
    if not ray_address:
        for p in todo:
            yield scan_one(p, check_watermark)
        return
    import ray
    started = False
    if not ray.is_initialized():
        env = {"env_vars": {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}}   # workers import this package
        if ray_address == "local":
            ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, runtime_env=env)
        else:
            ray.init(address=ray_address, log_to_driver=False, runtime_env=env)
        started = True
    try:
        task = ray.remote(num_cpus=1)(scan_one)
        pending = [task.remote(p, check_watermark) for p in todo]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for r in ready:
                try:
                    yield ray.get(r)
                except Exception as e:  # a worker died: say so for that clip, keep going
                    yield {"path": "?", "error": f"A Ray task failed ({type(e).__name__})."}
    finally:
        if started:
            ray.shutdown()


def _progress(total: int, enabled: bool):
    """A one-line progress bar on stderr: call it once per finished clip."""
    state = {"n": 0, "t0": time.perf_counter()}

    def tick(row: dict) -> None:
        state["n"] += 1
        if not enabled:
            return
        n, el = state["n"], time.perf_counter() - state["t0"]
        w = 30
        fill = int(w * n / max(total, 1))
        eta = el / n * (total - n)
        sys.stderr.write(f"\r[{'#' * fill}{'.' * (w - fill)}] {n}/{total}  {el:.0f}s elapsed, ~{eta:.0f}s left ")
        if n == total:
            sys.stderr.write("\n")
        sys.stderr.flush()
    return tick


# ----------------------------------------------------------------------------------------------------------
# the evaluation report (from assets/detector_eval.json; no research media needed)
def _load_eval(path: str | Path = EVAL_PATH) -> dict:
    p = Path(path)
    if not p.is_file():
        raise DetectorError("No evaluation has been recorded yet (assets/detector_eval.json is missing).")
    return json.loads(p.read_text())


def _fmt_ci(v, ci) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if ci:
        return f"{v:.2f} [{ci[0]:.2f}-{ci[1]:.2f}]"
    return f"{v:.2f}"


def report_markdown(ev: dict) -> str:
    """The evaluation table (markdown) from an evaluation record."""
    lines = ["| test set | clips (gen / real) | accuracy | precision | recall | AUC | TPR @ 1% FPR | FPR |",
             "|---|---|---|---|---|---|---|---|"]
    for row in ev["sets"]:
        m = dict(row["metrics"])
        if not row["n_pos"]:                   # a set of real clips only: accuracy and FPR are what it measures
            m = {k: v for k, v in m.items() if k.startswith(("accuracy", "fpr"))}
        lines.append(f"| {row['name']} | {row['n_pos']} / {row['n_neg']} | {_fmt_ci(m.get('accuracy'), m.get('accuracy_ci'))}"
                     f" | {_fmt_ci(m.get('precision'), m.get('precision_ci'))} | {_fmt_ci(m.get('recall'), m.get('recall_ci'))}"
                     f" | {_fmt_ci(m.get('auc'), m.get('auc_ci'))} | {_fmt_ci(m.get('tpr_at_1fpr'), None)}"
                     f" | {_fmt_ci(m.get('fpr'), m.get('fpr_ci'))} |")
    lines.append("| *VASA-1 fakes, figures usually quoted (source unknown)* | ? | 0.94 | 0.92 | 0.96 | ? | ? | ? |")
    th = ev.get("thresholds", {})
    meta = ev.get("meta", {})
    lines += ["", f"Threshold: 'generated' at forensic score >= {th.get('generated', float('nan')):.3f}, 'real' below "
              f"{th.get('real', float('nan')):.3f}, 'uncertain' in between (metrics above count 'uncertain' as real). "
              f"95% intervals in brackets (Wilson for rates, clip bootstrap for AUC).",
              f"Trained on renderer commit `{meta.get('renderer_commit', '?')}`, {meta.get('n_train_windows', '?')} "
              f"windows from {meta.get('n_train_clips', '?')} clips; held-out numbers come from "
              f"{meta.get('folds', '?')}-fold cross-validation split by person."]
    if ev.get("notes"):
        lines += ["", *[f"- {n}" for n in ev["notes"]]]
    return "\n".join(lines)


def report(eval_path: str | Path = EVAL_PATH):
    """(markdown table, [matplotlib Figure]) of the shipped evaluation: ROC per test set, score histograms
    real vs generated, accuracy vs re-encoding strength. Needs only assets/detector_eval.json."""
    import matplotlib
    from matplotlib.figure import Figure
    ev = _load_eval(eval_path)
    md = report_markdown(ev)
    figs = []
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.add_subplot(111)
    for row in ev["sets"]:
        roc = row.get("roc")
        if roc:
            ax.plot(roc["fpr"], roc["tpr"], label=f"{row['name']} (AUC {row['metrics'].get('auc', float('nan')):.2f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false-positive rate (real clips called generated)", ylabel="true-positive rate",
           title="ROC per test set")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    figs.append(fig)
    hist = ev.get("histograms", {})
    if hist:
        fig = Figure(figsize=(5.5, 4.5))
        ax = fig.add_subplot(111)
        bins = np.asarray(hist["bins"])
        centers = (bins[:-1] + bins[1:]) / 2
        wdt = bins[1] - bins[0]
        for name, counts in hist["counts"].items():
            c = np.asarray(counts, float)
            ax.bar(centers, c / max(c.sum(), 1), width=wdt, alpha=0.45, label=name)
        th = ev.get("thresholds", {})
        if "generated" in th:
            ax.axvline(th["generated"], color="k", ls="--", lw=1, label="threshold")
        ax.set(xlabel="forensic score", ylabel="share of clips", title="Score histograms (held-out)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        figs.append(fig)
    strength = ev.get("strength")
    if strength:
        fig = Figure(figsize=(5.5, 4.5))
        ax = fig.add_subplot(111)
        x = np.arange(len(strength["labels"]))
        for key, lab in (("accuracy", "accuracy"), ("recall", "recall (generated caught)"),
                         ("specificity", "real kept real")):
            if key in strength:
                ax.plot(x, [math.nan if v is None else v for v in strength[key]], marker="o", label=lab)
        ax.set_xticks(x, strength["labels"], rotation=20, fontsize=7)
        ax.set(ylim=(0, 1.02), ylabel="rate", title="Accuracy vs re-encoding strength (held-out own clips)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        figs.append(fig)
    del matplotlib
    return md, figs


# ----------------------------------------------------------------------------------------------------------
# command line
def _summary(path: str, r: DetectorResult) -> str:
    wm = r.watermark
    wtxt = "not checked" if wm is None else (f"FOUND payload {wm['payload']}" if wm["found"] else "not found")
    top = sorted(r.cues.items(), key=lambda kv: -abs(kv[1]))[:3]
    cues = ", ".join(f"{k} {v:+.2f}" for k, v in top)
    return (f"{path}: {r.verdict}  fake_score {r.fake_score:.3f}  forensic {r.forensic_score:.3f}  "
            f"watermark {wtxt}  ({r.seconds:.1f} s)\n    strongest cues: {cues}")


def cli(argv: list[str]) -> int:
    """`detect CLIP [CLIP ...] [--json]` or `detect DIR_OR_LIST ... --out results.jsonl [--ray auto|ADDRESS]`.
    Exit code: 0 when every clip was analysed, 2 when one could not be."""
    ap = argparse.ArgumentParser(prog="python -m safety detect",
                                 description="Is a clip generated? Our watermark plus a forensic model.")
    ap.add_argument("clips", nargs="+", help="video files, folders or .txt lists of paths")
    ap.add_argument("--json", action="store_true", help="print one JSON object per clip")
    ap.add_argument("--out", help="write JSON lines here (resumable: clips already in it are skipped)")
    ap.add_argument("--ray", metavar="auto|ADDRESS", help="run the clips as Ray tasks on that cluster")
    ap.add_argument("--no-watermark", action="store_true", help="skip the watermark check (forensic model only)")
    args = ap.parse_args(list(argv[1:]) if argv and argv[0] == "detect" else list(argv))
    paths = list_clips(args.clips)
    if args.out:
        n = scan(paths, args.out, args.ray, not args.no_watermark)
        print(f"{n} clip(s) scored into {args.out}")
        return 0
    if args.ray:
        rows = list(_scan_iter(paths, args.ray, not args.no_watermark))
    else:
        rows = [scan_one(p, not args.no_watermark) for p in paths]
    bad = 0
    for row in rows:
        if "error" in row:
            bad += 1
            print(json.dumps(row) if args.json else f"{row['path']}: error: {row['error']}")
            continue
        if args.json:
            print(json.dumps(row, default=str))
        else:
            r = DetectorResult(**{k: row[k] for k in DetectorResult.__dataclass_fields__})
            print(_summary(row["path"], r))
    return 2 if bad else 0


def main(argv: list[str] | None = None) -> int:
    """`python -m safety.detector evaluate [--json] [...]`: the evaluation (see tools.evals.evaluate)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "evaluate":
        from tools.evals.evaluate import cli as eval_cli
        return eval_cli(argv[1:])
    if argv and argv[0] == "detect":
        return cli(argv)
    print("usage: python -m safety.detector evaluate [--json] [--work DIR]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
