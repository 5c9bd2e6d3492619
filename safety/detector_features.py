"""What the deepfake detector measures in a clip: one decoding pass -> raw signals -> one feature vector.

    video file -> `extract_signals` (the first ANALYSIS_SECONDS, SAMPLE_FPS samples per second, PyAV decode):
        mediapipe face mesh (478 points)                          head, mouth and eye kinematics
        crops aligned on the eyes (fixed pixels per interocular distance, so every resolution looks alike):
            mouth  MOUTH_CROP px at 40 px/IOD (grey)              lip edges, inner mouth, temporal flicker
            face   FACE_CROP px at 30 px/IOD (grey)               face texture, residual sticking, spectrum
            wide   WIDE_CROP px at 12 px/IOD (grey)               the face against hair, neck and shoulders
        cheek colour (mean RGB) per sample                        skin colour rhythm
        the audio track at 16 kHz                                 how the mouth follows the speech
    -> `features` (FEATURE_NAMES, grouped in CUE_GROUPS; NaN = missing, e.g. no audio)

The signals are what is expensive (decoding + tracking: ~1 s per 8-s clip on one core); `ClipSignals.save` /
`load` keep them so that training can try feature ideas without decoding again. Nothing here looks at how
still the background is: every pixel cue is measured on or against the face.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from vasa_core import landmarks as L

from .errors import SafetyError

ANALYSIS_SECONDS = 8.0      # detect() analyses the first this many seconds of a clip
SAMPLE_FPS = 12.5           # face-mesh samples per second (on the clip's own timestamps: fps changes do not matter)
ANALYSIS_MAX_SIDE = 640     # px: frames are scaled down to this longest side before tracking
AUDIO_RATE = 16_000         # Hz
MIN_FACE_SAMPLES = 8        # fewer tracked samples than this: kinematic and appearance cues are missing
MOUTH_CROP = (32, 48)       # (h, w) px of the mouth crop, 40 px per interocular distance (IOD)
MOUTH_PX_PER_IOD = 40.0
FACE_CROP = 72              # px square, 30 px per IOD, centred between the eyes and the mouth
FACE_PX_PER_IOD = 30.0
WIDE_CROP = 64              # px square, 12 px per IOD, same centre (face + hair + neck)
WIDE_PX_PER_IOD = 12.0

# face-mesh landmark indices, from the one table (vasa_core.landmarks: "R" is the subject's right eye, on the
# image's left)
EYE_R = (*L.EYE_R_CORNERS, *L.EYE_R_LIDS)     # outer, inner, upper lid, lower lid
EYE_L = (*L.EYE_L_CORNERS, *L.EYE_L_LIDS)
IRIS_R, IRIS_L = L.IRIS_R[0], L.IRIS_L[0]     # iris centres
LIP_IN_UP, LIP_IN_LO = L.LIP_MID_UPPER, L.LIP_MID_LOWER
LIP_CORNERS = L.MOUTH_CORNERS
CHIN = (152, 148, 377)
CHEEKS = (205, 425, 50, 280)
BROWS = (105, 334, 66, 296)
NOSE_TIP = L.NOSE_TIP
FACE_EDGES = (L.CHEEK_R, L.CHEEK_L)
STABLE = (33, 133, 362, 263, 1, 4, 5, 6, 168, 197, 195, 10, 151, 9, 234, 454, 127, 356)   # skull points
OUTER_LIP = tuple(L.LIPS_OUTER_UPPER + L.LIPS_OUTER_LOWER[1:-1])          # around the lips, upper then lower
INNER_LIP = tuple(L.LIPS_INNER_UPPER + L.LIPS_INNER_LOWER[::-1][1:-1])    # around the opening
FACE_OVAL = tuple(L.FACE_OVAL)

# cue group -> features (the model sees all of them; a result's `cues` says how much each group moved it)
CUE_GROUPS: dict[str, tuple[str, ...]] = {
    "head_motion": ("head_tx_speed", "head_ty_speed", "head_roll_speed", "head_scale_speed", "head_yaw_speed",
                    "head_pitch_speed", "head_roll_std", "head_yaw_std", "head_pitch_std", "head_t_std",
                    "head_tx_hf", "head_roll_hf", "head_yaw_hf", "face_found_frac"),
    "mouth_motion": ("mouth_open_mean", "mouth_open_std", "mouth_open_range", "mouth_open_speed",
                     "mouth_width_std", "mouth_open_width_corr", "mouth_open_hf", "mouth_vs_head",
                     "lip_nonrigid_speed", "chin_vs_mouth", "cheek_vs_mouth", "brow_vs_mouth", "stable_jitter",
                     "mouth_vs_stable"),
    "eyes": ("ear_mean", "ear_std", "ear_min_ratio", "blink_rate", "ear_lr_corr", "iris_std", "iris_speed",
             "iris_lr_corr"),
    "lip_audio": ("av_energy_corr_max", "av_energy_lag", "av_energy_dcorr", "av_quiet_motion",
                  "av_model_corr_max", "av_model_lag", "av_model_corr0", "av_model_dcorr", "av_model_gain",
                  "av_closure_agree", "av_model_local", "av_width_corr", "av_press_open"),
    "mouth_appearance": ("mouth_flicker", "mouth_flicker_vs_motion", "lip_edge", "lip_edge_cv", "inner_hf_rel",
                         "teeth_rel", "inner_std_rel", "mouth_hf_vs_face", "mouth_hf_cv", "mouth_res_corr"),
    "face_texture": ("face_hf_vs_wide", "face_res_corr", "face_flicker", "face_spec_hi", "face_hf_cv",
                     "sharp_face_vs_ring"),
    "skin_colour_rhythm": ("rppg_std", "rppg_band_frac", "chroma_band_frac"),
}
FEATURE_NAMES: tuple[str, ...] = tuple(f for names in CUE_GROUPS.values() for f in names)


class DetectorError(SafetyError):
    """A clip could not be analysed (not a video, damaged, no frames). ``str(err)`` is the public message."""
    __module__ = "safety.detector"      # its public home (re-exported there; callers match on the module)


# ----------------------------------------------------------------------------------------------------------
# signals: one decoding pass
@dataclass(frozen=True)
class ClipSignals:
    """Raw per-sample measurements of (the first seconds of) one clip. M samples at SAMPLE_FPS.

    sample_t:  (M,) float64 seconds
    landmarks: (M, 478, 3) float32 face mesh in units of the frame height (x, y; z alike); NaN without a face
    mouth:     (M, *MOUTH_CROP) uint8 grey mouth crops (zeros without a face)
    face:      (M, FACE_CROP, FACE_CROP) uint8 grey face crops
    wide:      (M, WIDE_CROP, WIDE_CROP) uint8 grey crops of face + surroundings
    cheek_rgb: (M, 3) float32 mean RGB of the cheeks (NaN without a face)
    sharp:     (M, 2) float32 Laplacian variance of the face box and of a ring around it, at analysis size
    audio:     (N,) float32 16 kHz mono, or an empty array (no track / silent)
    duration:  seconds analysed; aspect: frame width / height
    """
    sample_t: np.ndarray
    landmarks: np.ndarray
    mouth: np.ndarray
    face: np.ndarray
    wide: np.ndarray
    cheek_rgb: np.ndarray
    sharp: np.ndarray
    audio: np.ndarray
    duration: float
    aspect: float

    def save(self, path: str | Path) -> None:
        """Write to a compressed .npz (audio as int16)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["audio"] = np.clip(np.round(self.audio * 32767), -32768, 32767).astype(np.int16)
        d["duration"], d["aspect"] = np.float64(self.duration), np.float64(self.aspect)
        tmp = Path(str(path) + ".tmp.npz")
        np.savez_compressed(tmp, **d)
        tmp.rename(path)

    @classmethod
    def load(cls, path: str | Path) -> "ClipSignals":
        with np.load(path) as z:
            d = {k: z[k] for k in z.files}
        d["audio"] = d["audio"].astype(np.float32) / 32767.0
        d["duration"], d["aspect"] = float(d["duration"]), float(d["aspect"])
        return cls(**d)

    @property
    def has_audio(self) -> bool:
        return len(self.audio) > AUDIO_RATE // 2


def _open(source):
    import av
    try:
        if isinstance(source, (bytes, bytearray)):
            return av.open(io.BytesIO(bytes(source)))
        return av.open(str(source))
    except Exception as e:  # FileNotFoundError, av.error.InvalidDataError, ...
        raise DetectorError("The file could not be read as a video.") from e


def read_audio(source, max_seconds: float) -> np.ndarray:
    """The first `max_seconds` of the first audio track as 16 kHz mono float32 (empty: no track or silent)."""
    import av
    empty = np.zeros(0, np.float32)
    try:
        with _open(source) as c:
            if not c.streams.audio:
                return empty
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
        return empty
    if not parts:
        return empty
    x = np.concatenate(parts)[: int(max_seconds * AUDIO_RATE)].astype(np.float32)
    if len(x) < AUDIO_RATE // 2 or float(np.max(np.abs(x))) < 1e-4:
        return empty
    return x


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


def _eye_frame(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(eye centre, mouth centre, IOD in px, eye-line angle in rad) of landmarks in pixels."""
    el, er = pts[list(EYE_R[:2]), :2].mean(0), pts[list(EYE_L[:2]), :2].mean(0)
    mouth = pts[[LIP_IN_UP, LIP_IN_LO, *LIP_CORNERS], :2].mean(0)
    d = er - el
    return (el + er) / 2, mouth, float(np.hypot(*d)), float(math.atan2(d[1], d[0]))


def _crop(gray: np.ndarray, centre: np.ndarray, iod: float, angle: float, px_per_iod: float,
          out_wh: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A crop rotated so the eye line is level, `px_per_iod` pixels per IOD, `centre` in its middle.
    Returns (crop uint8 (h, w), 2x3 matrix mapping image pixels to crop pixels). The image is first shrunk
    by area averaging when the crop is smaller than the face, so crops do not alias."""
    import cv2
    s = px_per_iod / max(iod, 1e-3)
    src, pre = gray, 1.0
    if s < 0.7:
        pre = s * 1.25
        src = cv2.resize(gray, (max(8, int(gray.shape[1] * pre)), max(8, int(gray.shape[0] * pre))),
                         interpolation=cv2.INTER_AREA)
    k = s / pre
    c, sn = math.cos(-angle) * k, math.sin(-angle) * k
    cx, cy = centre * pre
    w, h = out_wh
    m = np.array([[c, -sn, w / 2 - (c * cx - sn * cy)], [sn, c, h / 2 - (sn * cx + c * cy)]], np.float64)
    out = cv2.warpAffine(src, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    full = m.copy()
    full[:, :2] *= pre               # image pixels -> crop pixels
    return out, full


def _lap_var(gray: np.ndarray, box) -> float:
    import cv2
    x0, y0, x1, y1 = (int(v) for v in box)
    p = gray[max(0, y0):max(0, y1), max(0, x0):max(0, x1)]
    if p.shape[0] < 8 or p.shape[1] < 8:
        return math.nan
    return float(cv2.Laplacian(p.astype(np.float32), cv2.CV_32F).var())


def _sample(rgb: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Crops, cheek colour and sharpness of one analysis-size RGB frame with its landmarks (pixels)."""
    import cv2
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    eye_c, mouth_c, iod, ang = _eye_frame(pts)
    mouth, _ = _crop(gray, mouth_c, iod, ang, MOUTH_PX_PER_IOD, (MOUTH_CROP[1], MOUTH_CROP[0]))
    centre = (eye_c + mouth_c) / 2
    face, _ = _crop(gray, centre, iod, ang, FACE_PX_PER_IOD, (FACE_CROP, FACE_CROP))
    wide, _ = _crop(gray, centre, iod, ang, WIDE_PX_PER_IOD, (WIDE_CROP, WIDE_CROP))
    cheeks = pts[[50, 205, 187, 280, 425, 411], :2]
    x0, y0 = np.floor(cheeks.min(0)).astype(int)
    x1, y1 = np.ceil(cheeks.max(0)).astype(int)
    h, w = gray.shape
    patch = rgb[max(0, y0):min(h, y1), max(0, x0):min(w, x1)]
    col = patch.reshape(-1, 3).mean(0) if patch.size >= 30 else np.full(3, np.nan)
    # native sharpness: the face box (eyes to mouth) and a band around the whole face (hair, neck, ears)
    fx0, fy0 = pts[:, :2].min(0)
    fx1, fy1 = pts[:, :2].max(0)
    inner = (eye_c[0] - 0.7 * iod, eye_c[1] - 0.1 * iod, eye_c[0] + 0.7 * iod, mouth_c[1] + 0.2 * iod)
    fw, fh = fx1 - fx0, fy1 - fy0
    ring = [(fx0 - 0.35 * fw, fy0, fx0, fy1), (fx1, fy0, fx1 + 0.35 * fw, fy1), (fx0, fy1, fx1, fy1 + 0.3 * fh)]
    rv = [v for v in (_lap_var(gray, b) for b in ring) if np.isfinite(v)]
    sharp = np.array([_lap_var(gray, inner), float(np.median(rv)) if rv else math.nan], np.float32)
    return mouth, face, wide, col.astype(np.float32), sharp


def extract_signals(source, max_seconds: float = ANALYSIS_SECONDS, luma_sink=None) -> ClipSignals:
    """Decode the first `max_seconds` of a clip (path or bytes) once and take what the features need.

    luma_sink: optional callable given every decoded frame's (H, W) uint8 luma (the watermark check rides
    on the same decoding pass). Raises DetectorError (one sentence) for files that are not readable videos
    or have no frames.
    """
    import cv2
    from vasa_core.portrait import video_face_mesh

    audio = read_audio(source, max_seconds)
    sample_t, lms, mouths, faces, wides, cols, sharps = [], [], [], [], [], [], []
    next_sample = last_t = 0.0
    t_first = None
    aspect = 1.0
    n_frames = 0
    try:
        with _open(source) as c, video_face_mesh(refine=True, confidence=0.5) as mesh:
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
                n_frames += 1
                last_t = t + 1.0 / rate
                w, h = frame.width, frame.height
                aspect = w / h
                if luma_sink is not None:
                    luma_sink(_luma(frame))
                if t + 1e-6 < next_sample:
                    continue
                next_sample += 1.0 / SAMPLE_FPS
                while next_sample <= t:
                    next_sample += 1.0 / SAMPLE_FPS
                full = _rgb(frame)
                s = min(1.0, ANALYSIS_MAX_SIDE / max(w, h))
                aw, ah = max(2, int(round(w * s / 2)) * 2), max(2, int(round(h * s / 2)) * 2)
                rgb = full if (aw, ah) == (w, h) else cv2.resize(full, (aw, ah), interpolation=cv2.INTER_AREA)
                res = mesh.process(rgb)
                sample_t.append(t)
                if not res.multi_face_landmarks:
                    lms.append(np.full((478, 3), np.nan, np.float32))
                    mouths.append(np.zeros(MOUTH_CROP, np.uint8))
                    faces.append(np.zeros((FACE_CROP, FACE_CROP), np.uint8))
                    wides.append(np.zeros((WIDE_CROP, WIDE_CROP), np.uint8))
                    cols.append(np.full(3, np.nan, np.float32))
                    sharps.append(np.full(2, np.nan, np.float32))
                    continue
                pts = np.array([(p.x * aw, p.y * ah, p.z * aw) for p in res.multi_face_landmarks[0].landmark],
                               np.float32)
                m, f, wd, col, sh = _sample(rgb, pts)
                mouths.append(m)
                faces.append(f)
                wides.append(wd)
                cols.append(col)
                sharps.append(sh)
                lms.append(pts / ah)        # frame height = 1
    except DetectorError:
        raise
    except Exception as e:
        raise DetectorError("The video could not be decoded (damaged or unsupported file).") from e
    if not n_frames:
        raise DetectorError("The video has no frames that could be decoded.")
    m = len(sample_t)
    return ClipSignals(sample_t=np.array(sample_t, np.float64), landmarks=np.array(lms, np.float32).reshape(m, 478, 3),
                       mouth=np.array(mouths, np.uint8).reshape(m, *MOUTH_CROP),
                       face=np.array(faces, np.uint8).reshape(m, FACE_CROP, FACE_CROP),
                       wide=np.array(wides, np.uint8).reshape(m, WIDE_CROP, WIDE_CROP),
                       cheek_rgb=np.array(cols, np.float32).reshape(m, 3),
                       sharp=np.array(sharps, np.float32).reshape(m, 2), audio=audio,
                       duration=float(last_t), aspect=float(aspect))


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


def _corr(a: np.ndarray | None, b: np.ndarray | None) -> float:
    if a is None or b is None or len(a) != len(b) or len(a) < 3:
        return math.nan
    sa, sb = a.std(), b.std()
    if sa < 1e-9 or sb < 1e-9:
        return math.nan
    return float(((a - a.mean()) * (b - b.mean())).mean() / (sa * sb))


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


def _lagged_corrs(a: np.ndarray, e: np.ndarray, max_lag: int) -> dict[int, float]:
    """corr(a[t], e[t + lag]) for lag in [-max_lag, max_lag] (lag > 0: the mouth leads the sound)."""
    out = {}
    for lag in range(-max_lag, max_lag + 1):
        if lag >= 0:
            out[lag] = _corr(a[:len(a) - lag], e[lag:])
        else:
            out[lag] = _corr(a[-lag:], e[:len(e) + lag])
    return out


_MOUTH_MODEL: list = []


def expected_mouth(audio: np.ndarray, t: np.ndarray) -> np.ndarray | None:
    """The project's learned audio -> mouth model (`vasa_core.lipsync.model.LearnedMouth`) at times `t` (s) of
    16 kHz audio: (len(t), 3) = opening (jaw_open + lower_lip_drop), width (lip_stretch - lip_funnel) and lip
    press; None without the model."""
    try:
        if not _MOUTH_MODEL:
            from vasa_core.lipsync.model import LearnedMouth
            _MOUTH_MODEL.append(LearnedMouth.load_default())
        from vasa_core.lipsync.phonemes import FUN, JAW, LLD, PRS, STR
    except Exception:
        return None
    y = _MOUTH_MODEL[0].predict_100hz(audio, AUDIO_RATE)
    if len(y) < 10:
        return None
    cols = np.stack([y[:, JAW] + y[:, LLD], y[:, STR] - y[:, FUN], y[:, PRS]], axis=1)
    return np.stack([np.interp(t * 100.0, np.arange(len(y)), c) for c in cols.T], axis=1)


def _local_sync(a: np.ndarray, e: np.ndarray, win: int = 25, hop: int = 12, max_lag: int = 2) -> float:
    """Median over ~2-s windows of the best lagged correlation between two series (NaN when too short)."""
    vals = []
    for s0 in range(0, len(a) - win + 1, hop):
        c = [v for v in _lagged_corrs(a[s0:s0 + win], e[s0:s0 + win], max_lag).values() if np.isfinite(v)]
        if c:
            vals.append(max(c))
    return float(np.median(vals)) if vals else math.nan


def _kinematics(t: np.ndarray, lm: np.ndarray, audio: np.ndarray) -> tuple[dict[str, float], dict]:
    """Head, mouth, eye and lip-audio features from tracked samples (frame height = 1). Also returns
    per-sample series the appearance features need (aperture, IOD, angle, centres)."""
    from vasa_core.audio import speech_band_energy
    f: dict[str, float] = {}
    dt = 1.0 / SAMPLE_FPS
    eye_c = (lm[:, EYE_R[:2], :2].mean(1) + lm[:, EYE_L[:2], :2].mean(1)) / 2
    dv = lm[:, EYE_L[:2], :2].mean(1) - lm[:, EYE_R[:2], :2].mean(1)
    iod = np.linalg.norm(dv, axis=1)
    iod_ref = float(np.median(iod))
    ref = np.median(lm[:, :, :2], axis=0)
    stable = list(STABLE)
    scales, angles, aligned = [], [], []
    for k in range(len(lm)):
        s, a, tr = _similarity(lm[k, stable, :2], ref[stable])
        scales.append(s)
        angles.append(a)
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
    el, er = _ear(lm, EYE_R), _ear(lm, EYE_L)
    ear = (el + er) / 2
    med = float(np.median(ear)) + 1e-9
    closed = ear < 0.6 * med
    onsets = int(np.sum(closed[1:] & ~closed[:-1]) + (1 if closed[0] else 0))
    span = max(float(t[-1] - t[0]) + dt, dt)
    iris = np.concatenate([(lm[:, IRIS_R, :2] - lm[:, EYE_R[:2], :2].mean(1)),
                           (lm[:, IRIS_L, :2] - lm[:, EYE_L[:2], :2].mean(1))], axis=1) / iod[:, None]
    f.update(ear_mean=float(ear.mean()), ear_std=float(ear.std()), ear_min_ratio=float(ear.min() / med),
             blink_rate=onsets * 60.0 / span, ear_lr_corr=_corr(el, er), iris_std=float(iris.std(0).mean()),
             iris_speed=float(np.abs(np.diff(iris, axis=0)).mean() / dt), iris_lr_corr=_corr(iris[:, 0], iris[:, 2]))
    # how the mouth follows the speech: against speech-band loudness, and against the mouth model's opening
    if len(audio) > AUDIO_RATE:
        et, en = speech_band_energy(audio, AUDIO_RATE)
        e = np.interp(t, et, np.convolve(en, np.ones(5) / 5, mode="same")) if len(et) > 10 else None
        if e is not None and np.std(e) > 1e-6:
            lags = {k: v for k, v in _lagged_corrs(ap, e, 3).items() if np.isfinite(v)}
            best = max(lags, key=lags.get) if lags else 0
            quiet, loud = e < np.percentile(e, 30), e > np.percentile(e, 70)
            da = np.abs(np.diff(ap, prepend=ap[0]))
            f.update(av_energy_corr_max=lags.get(best, math.nan), av_energy_lag=float(best),
                     av_energy_dcorr=_corr(np.diff(ap), np.diff(e)),
                     av_quiet_motion=float(da[quiet].mean() / (da[loud].mean() + 1e-6)) if quiet.any() and loud.any()
                     else math.nan)
        y = expected_mouth(audio, t)
        pred = y[:, 0] if y is not None else None
        if pred is not None and np.std(pred) > 1e-4:
            lags = {k: v for k, v in _lagged_corrs(ap, pred, 3).items() if np.isfinite(v)}
            best = max(lags, key=lags.get) if lags else 0
            shut_pred = pred < np.percentile(pred, 20)
            shut_seen = ap < np.percentile(ap, 30)
            f.update(av_model_corr_max=lags.get(best, math.nan), av_model_lag=float(best),
                     av_model_corr0=lags.get(0, math.nan), av_model_dcorr=_corr(np.diff(ap), np.diff(pred)),
                     av_model_gain=float(np.log((ap.std() + 1e-4) / (pred.std() + 1e-4))),
                     av_closure_agree=float(shut_seen[shut_pred].mean()) if shut_pred.any() else math.nan,
                     av_model_local=_local_sync(ap, pred),
                     av_width_corr=max([v for v in _lagged_corrs(mw, y[:, 1], 3).values() if np.isfinite(v)],
                                       default=math.nan),
                     av_press_open=float(np.median(ap[y[:, 2] > np.percentile(y[:, 2], 90)]) / (np.median(ap) + 1e-3))
                     if np.ptp(y[:, 2]) > 1e-3 else math.nan)
    series = {"ap": ap, "iod": iod, "angle": np.arctan2(dv[:, 1], dv[:, 0]), "lip_s": lip_s,
              "mouth_c": lm[:, [LIP_IN_UP, LIP_IN_LO, *LIP_CORNERS], :2].mean(1)}
    return f, series


def _hp(x: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """High-pass residual (x - Gaussian blur) of a stack of grey crops (n, h, w) -> float32."""
    import cv2
    x = x.astype(np.float32)
    return np.stack([c - cv2.GaussianBlur(c, (0, 0), sigma) for c in x]) if len(x) else x


def _flicker(hp: np.ndarray) -> tuple[float, float]:
    """(mean |temporal change| / mean |residual|, median frame-to-frame correlation) of residual crops."""
    if len(hp) < 3:
        return math.nan, math.nan
    d = np.abs(np.diff(hp, axis=0)).mean()
    lvl = np.abs(hp).mean() + 1e-6
    z = hp.reshape(len(hp), -1)
    z = z - z.mean(1, keepdims=True)
    n = np.linalg.norm(z, axis=1)
    good = (n[:-1] > 1e-6) & (n[1:] > 1e-6)
    cc = (z[:-1] * z[1:]).sum(1)[good] / (n[:-1] * n[1:])[good]
    return float(d / lvl), float(np.median(cc)) if len(cc) else math.nan


def _to_crop(pts: np.ndarray, centre: np.ndarray, iod: float, angle: float, px_per_iod: float,
             out_wh: tuple[int, int]) -> np.ndarray:
    """Landmarks (K, 2) in any unit -> pixels of a crop made by `_crop` with the same geometry."""
    k = px_per_iod / max(iod, 1e-9)
    c, s = math.cos(-angle) * k, math.sin(-angle) * k
    d = pts - centre
    return np.stack([c * d[:, 0] - s * d[:, 1] + out_wh[0] / 2, s * d[:, 0] + c * d[:, 1] + out_wh[1] / 2], 1)


def _appearance(sig: ClipSignals, ok: np.ndarray, lm: np.ndarray, ser: dict, lip_speed: float) -> dict[str, float]:
    """Mouth-region and face-texture features from the aligned crops of the tracked samples."""
    import cv2
    f: dict[str, float] = {}
    mouth, face, wide = sig.mouth[ok], sig.face[ok], sig.wide[ok]
    hm, hf_ = _hp(mouth), _hp(face)
    mh, mw = MOUTH_CROP
    m_lvl = np.abs(hm).mean((1, 2))
    fa = hf_[:, :, 8:-8]
    f_lvl = np.abs(fa).mean((1, 2))
    fl, rc = _flicker(hm)
    f.update(mouth_flicker=fl, mouth_res_corr=rc,
             mouth_flicker_vs_motion=float(np.log((fl + 1e-3) / (lip_speed + 0.05))) if np.isfinite(fl) else math.nan,
             mouth_hf_vs_face=float(np.log((m_lvl.mean() + 1e-3) / (f_lvl.mean() + 1e-3))),
             mouth_hf_cv=float(m_lvl.std() / (m_lvl.mean() + 1e-6)))
    upper = hf_[:, : int(FACE_CROP * 0.55), 8:-8]          # eyes, nose, cheeks: the face without the mouth
    ffl, frc = _flicker(upper)
    f.update(face_flicker=ffl, face_res_corr=frc, face_hf_cv=float(f_lvl.std() / (f_lvl.mean() + 1e-6)))
    # lip edges: gradient magnitude on the outer lip contour / the crop's mean gradient; inner mouth texture
    edges, inner_hf, teeth, inner_std = [], [], [], []
    for k in range(len(mouth)):
        g = mouth[k].astype(np.float32)
        gm = cv2.magnitude(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3))
        pts = _to_crop(lm[k, list(OUTER_LIP), :2], ser["mouth_c"][k], ser["iod"][k], ser["angle"][k],
                       MOUTH_PX_PER_IOD, (mw, mh))
        xi = np.clip(np.round(pts[:, 0]).astype(int), 0, mw - 1)
        yi = np.clip(np.round(pts[:, 1]).astype(int), 0, mh - 1)
        edges.append(float(gm[yi, xi].mean() / (gm.mean() + 1e-3)))
        if ser["ap"][k] > 0.08:
            poly = _to_crop(lm[k, list(INNER_LIP), :2], ser["mouth_c"][k], ser["iod"][k], ser["angle"][k],
                            MOUTH_PX_PER_IOD, (mw, mh))
            mask = np.zeros((mh, mw), np.uint8)
            cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1)
            if mask.sum() >= 12:
                inside = g[mask > 0]
                ref = float(np.median(g)) + 1.0
                inner_hf.append(float(np.abs(hm[k][mask > 0]).mean() / (m_lvl[k] + 1e-3)))
                teeth.append(float(np.percentile(inside, 90)) / ref)
                inner_std.append(float(inside.std()) / ref)
    e = np.array(edges)
    f.update(lip_edge=float(np.median(e)), lip_edge_cv=float(e.std() / (e.mean() + 1e-6)))
    if len(teeth) >= 3:
        f.update(inner_hf_rel=float(np.median(inner_hf)), teeth_rel=float(np.median(teeth)),
                 inner_std_rel=float(np.median(inner_std)))
    # the face against its surroundings (hair, ears, neck) at one scale: high-pass energy inside / outside
    hw_ = _hp(wide)
    yy, xx = np.mgrid[0:WIDE_CROP, 0:WIDE_CROP].astype(np.float32) + 0.5
    r = np.hypot((xx - WIDE_CROP / 2) / (1.2 * WIDE_PX_PER_IOD), (yy - WIDE_CROP / 2) / (1.6 * WIDE_PX_PER_IOD))
    fin, fout = r < 0.9, (r > 1.2) & (r < 2.2)
    lin, lout = np.abs(hw_[:, fin]).mean(), np.abs(hw_[:, fout]).mean()
    f["face_hf_vs_wide"] = float(np.log((lin + 1e-2) / (lout + 1e-2)))
    # spectrum of the face crop: share of power above 0.25 cycles/px among that above 0.05
    win = np.outer(np.hanning(FACE_CROP), np.hanning(FACE_CROP)).astype(np.float32)
    fy, fx = np.meshgrid(np.fft.fftfreq(FACE_CROP), np.fft.fftfreq(FACE_CROP), indexing="ij")
    rad = np.hypot(fy, fx)
    hi, mid = rad > 0.25, rad > 0.05
    fr = []
    for c in face[:: max(1, len(face) // 12)].astype(np.float32):
        p = np.abs(np.fft.fft2((c - c.mean()) * win)) ** 2
        fr.append(math.log10(p[hi].sum() / (p[mid].sum() + 1e-6) + 1e-7))
    f["face_spec_hi"] = float(np.median(fr))
    sh = sig.sharp[ok]
    a, b = np.nanmedian(sh[:, 0]) if np.isfinite(sh[:, 0]).any() else math.nan, \
        np.nanmedian(sh[:, 1]) if np.isfinite(sh[:, 1]).any() else math.nan
    f["sharp_face_vs_ring"] = float(math.log10((a + 1e-2) / (b + 1e-2))) if np.isfinite(a) and np.isfinite(b) else math.nan
    return f


def _colour(sig: ClipSignals, ok: np.ndarray) -> dict[str, float]:
    """Skin colour rhythm (remote photoplethysmography) of the cheeks' mean colour."""
    f: dict[str, float] = {}
    rgb = sig.cheek_rgb[ok].astype(np.float64)
    if len(rgb) < 24 or not np.all(np.isfinite(rgb)):
        return f
    g = rgb[:, 1] / (rgb[:, 1].mean() + 1e-3)
    k = int(round(SAMPLE_FPS))
    detr = g - np.convolve(np.pad(g, (k // 2, k - 1 - k // 2), mode="edge"), np.ones(k) / k, mode="valid")
    nrm = rgb / (rgb.mean(0, keepdims=True) + 1e-3)
    chroma = nrm[:, 1] - (nrm[:, 0] + nrm[:, 2]) / 2
    f.update(rppg_std=float(np.log10(detr.std() + 1e-5)), rppg_band_frac=_band_frac(g, SAMPLE_FPS, 0.7, 3.0),
             chroma_band_frac=_band_frac(chroma, SAMPLE_FPS, 0.7, 3.0))
    return f


def features(sig: ClipSignals) -> np.ndarray:
    """One feature vector (len(FEATURE_NAMES),) float32 of a clip's signals; NaN = missing."""
    lm = sig.landmarks
    ok = np.all(np.isfinite(lm[:, :, 0]), axis=1) if len(lm) else np.zeros(0, bool)
    f: dict[str, float] = {"face_found_frac": float(ok.mean()) if len(ok) else 0.0}
    if ok.sum() >= MIN_FACE_SAMPLES:
        kin, ser = _kinematics(sig.sample_t[ok], lm[ok].astype(np.float64), sig.audio)
        f.update(kin)
        f.update(_appearance(sig, ok, lm[ok].astype(np.float64), ser, kin["lip_nonrigid_speed"]))
        f.update(_colour(sig, ok))
    return np.array([f.get(k, math.nan) for k in FEATURE_NAMES], np.float32)


def clip_features(source, luma_sink=None) -> np.ndarray:
    """Feature rows (1, len(FEATURE_NAMES)) of the first ANALYSIS_SECONDS of a clip (path or bytes)."""
    return features(extract_signals(source, ANALYSIS_SECONDS, luma_sink))[None]
