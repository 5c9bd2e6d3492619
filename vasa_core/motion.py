"""Motion: what the face does in every video frame.

A `MotionSequence` holds one row of parameters per video frame (25 fps by default):

  head pose, relative to the pose in the portrait
    yaw     degrees, + turns the face so the nose moves to the image's right
    pitch   degrees, + tilts the head up (nose moves up in the image)
    roll    degrees, + tilts the head counter-clockwise in the image
    tx, ty  translation as a fraction of the output size (+ right, + down)
    scale   1 = as framed; 1.1 = head 10% larger (closer)
  facial actions (the mouth ones are listed in `vasa_core.mouth`)
    jaw_open ... tongue_show   [0, 1]
    smile        [-1, 1]  (- = frown)
    brow_raise   [-1, 1]  (- = brows lowered / furrowed)
    blink_l, blink_r [0, 1] (1 = closed; l/r = the subject's left/right eye)
    gaze_x, gaze_y   degrees of eye rotation (+x = towards the image's right, +y = up)

`generate_motion` is the v1 motion generator: the mouth comes from a mouth model, head motion, brows,
blinks and gaze from the audio's prosody and a seeded random process.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import AudioFeatures
from .errors import MotionError
from .mouth import MOUTH_PARAMS

POSE_PARAMS = ("yaw", "pitch", "roll", "tx", "ty", "scale")
FACE_PARAMS = MOUTH_PARAMS + ("smile", "brow_raise", "blink_l", "blink_r", "gaze_x", "gaze_y")
PARAMS = POSE_PARAMS + FACE_PARAMS
DEFAULTS = {name: (1.0 if name == "scale" else 0.0) for name in PARAMS}
RANGES = {  # allowed range of every parameter (hand-written motion is checked against it)
    "yaw": (-30, 30), "pitch": (-20, 20), "roll": (-20, 20), "tx": (-0.2, 0.2), "ty": (-0.2, 0.2),
    "scale": (0.6, 1.5), "smile": (-1, 1), "brow_raise": (-1, 1), "gaze_x": (-25, 25), "gaze_y": (-20, 20),
    **{m: (0, 1) for m in MOUTH_PARAMS}, "blink_l": (0, 1), "blink_r": (0, 1),
}
EMOTIONS = {  # offsets on top of what the voice implies: (smile, brow_raise, pitch degrees, jaw bias)
    "neutral": (0.0, 0.0, 0.0, 0.0),
    "happy": (0.8, 0.25, 1.5, 0.05),
    "sad": (-0.6, -0.15, -4.0, 0.0),
    "angry": (-0.4, -0.9, -1.5, 0.0),
    "surprised": (0.1, 1.0, 2.0, 0.15),
}


@dataclass(frozen=True)
class MotionSequence:
    """Per-frame motion: `values` float32 (T, len(PARAMS)) in the order of `PARAMS`, at `fps` frames/s."""
    values: np.ndarray
    fps: float = 25.0

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.values[:, PARAMS.index(name)]

    def frame(self, i: int) -> dict[str, float]:
        """The parameters of frame i as a dict."""
        return {k: float(v) for k, v in zip(PARAMS, self.values[i])}

    def with_track(self, name: str, track: np.ndarray) -> "MotionSequence":
        """A copy with one parameter replaced by `track` (T,)."""
        values = self.values.copy()
        values[:, PARAMS.index(name)] = track
        return MotionSequence(values, self.fps)

    @staticmethod
    def neutral(num_frames: int, fps: float = 25.0) -> "MotionSequence":
        """A still face: every parameter at its default."""
        row = np.array([DEFAULTS[k] for k in PARAMS], np.float32)
        return MotionSequence(np.tile(row, (num_frames, 1)), fps)

    # --- JSON -----------------------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {"fps": self.fps, "num_frames": len(self),
                "tracks": {k: [round(float(v), 4) for v in self[k]] for k in PARAMS}}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json()))

    @staticmethod
    def from_json(data: dict, num_frames: int | None = None, fps: float | None = None) -> "MotionSequence":
        """Parse a motion dict: {"fps": 25, "num_frames": T, "tracks": {name: track}}.

        A track is either a list of T numbers (one per frame) or a list of [time_s, value] keyframes,
        linearly interpolated (held constant before the first and after the last). Missing tracks take
        their default. `num_frames`, when given, overrides the file's length (e.g. the audio's length).
        """
        if not isinstance(data, dict) or not isinstance(data.get("tracks", {}), dict):
            raise MotionError("A motion file must be a JSON object with a 'tracks' object.")
        fps = float(fps or data.get("fps", 25.0))
        tracks = data.get("tracks", {})
        unknown = sorted(set(tracks) - set(PARAMS))
        if unknown:
            raise MotionError(f"Unknown motion parameter(s): {', '.join(unknown)}. Known: {', '.join(PARAMS)}.")
        if num_frames is None:
            num_frames = data.get("num_frames")
            if num_frames is None:
                lengths = [len(t) for t in tracks.values() if t and not isinstance(t[0], (list, tuple))]
                ends = [t[-1][0] for t in tracks.values() if t and isinstance(t[0], (list, tuple))]
                num_frames = max(lengths + [int(round(e * fps)) + 1 for e in ends] + [1])
        num_frames = int(num_frames)
        seq = MotionSequence.neutral(num_frames, fps)
        values = seq.values
        t = np.arange(num_frames) / fps
        for name, track in tracks.items():
            try:
                arr = np.asarray(track, dtype=np.float64)
            except (TypeError, ValueError):
                raise MotionError(f"Track '{name}' must be numbers or [time, value] pairs.") from None
            if arr.ndim == 2 and arr.shape[1] == 2 and len(arr):
                order = np.argsort(arr[:, 0])
                col = np.interp(t, arr[order, 0], arr[order, 1])
            elif arr.ndim == 1 and len(arr):
                col = np.interp(np.arange(num_frames), np.arange(len(arr)), arr)  # holds the last value
            else:
                raise MotionError(f"Track '{name}' must be a non-empty list of numbers or [time, value] pairs.")
            if not np.all(np.isfinite(col)):
                raise MotionError(f"Track '{name}' contains NaN or infinite values.")
            lo, hi = RANGES[name]
            if col.min() < lo - 1e-6 or col.max() > hi + 1e-6:
                raise MotionError(f"Track '{name}' goes outside its range [{lo}, {hi}].")
            values[:, PARAMS.index(name)] = col
        return MotionSequence(values, fps)

    @staticmethod
    def load(path: str | Path, num_frames: int | None = None, fps: float | None = None) -> "MotionSequence":
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise MotionError(f"Motion file not found: {path}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MotionError(f"Motion file {path} is not valid JSON: {exc}") from None
        return MotionSequence.from_json(data, num_frames, fps)


# --- v1 generator ---------------------------------------------------------------------------------------

def _smooth_noise(rng: np.random.Generator, n: int, fps: float, tau_s: float) -> np.ndarray:
    """Unit-variance smooth random signal with correlation time `tau_s` seconds (Gaussian-filtered noise)."""
    from scipy.ndimage import gaussian_filter1d
    sigma = tau_s * fps
    pad = int(4 * sigma) + 1
    x = gaussian_filter1d(rng.standard_normal(n + 2 * pad), sigma)[pad:pad + n]
    return (x / (x.std() + 1e-9)).astype(np.float32)


def _blinks(rng: np.random.Generator, n: int, fps: float, pauses: np.ndarray) -> np.ndarray:
    """Blink track in [0, 1]: ~17 per minute, 150-300 ms each, more likely in pauses, never overlapping."""
    out = np.zeros(n, np.float32)
    t = rng.uniform(0.3, 2.0)
    while True:
        i = int(t * fps)
        if i >= n:
            break
        dur = rng.uniform(0.15, 0.3)
        k = max(3, int(round(dur * fps)))
        shape = np.sin(np.linspace(0, np.pi, k + 2)[1:-1]) ** 0.7   # close quickly, hold, open
        end = min(n, i + k)
        out[i:end] = np.maximum(out[i:end], shape[: end - i])
        gap = rng.exponential(2.6) + 0.9 + dur
        if pauses[min(i, n - 1)]:
            gap *= 0.8
        t += gap
    return out


def _fixations(rng: np.random.Generator, n: int, fps: float, amp: float) -> np.ndarray:
    """Piecewise-constant gaze offsets (saccades every 0.8-3 s) with 2-frame transitions."""
    out = np.zeros(n, np.float32)
    i, value = 0, 0.0
    while i < n:
        hold = int(rng.uniform(0.8, 3.0) * fps)
        new = float(rng.normal(0.0, amp))
        ramp = np.linspace(value, new, 3)[1:]
        out[i:i + 2] = ramp[: len(out[i:i + 2])]
        out[i + 2:i + hold] = new
        value, i = new, i + hold
    return out


def generate_motion(features: AudioFeatures, mouth: np.ndarray, fps: float = 25.0, seed: int = 0,
                    gaze: tuple[float, float] = (0.0, 0.0), distance: float = 1.0,
                    emotion: str = "neutral", emotion_weight: float = 1.0,
                    motion_scale: float = 1.0) -> MotionSequence:
    """Full-face motion for the audio: mouth (T, 8) from a mouth model, the rest from prosody + seed.

    gaze:         main gaze direction (degrees, x right / y up) around which the eyes make small saccades
    distance:     head distance, 1 = as framed; 1.3 = further away (smaller head)
    emotion:      one of EMOTIONS, added with `emotion_weight` in [0, 1]
    motion_scale: head motion amplitude, 0 = still head (lips only) ... 2
    """
    if emotion not in EMOTIONS:
        raise MotionError(f"Unknown emotion '{emotion}'. Choose one of: {', '.join(EMOTIONS)}.")
    if not 0.5 <= distance <= 2.0:
        raise MotionError("distance must be between 0.5 and 2.0 (1 = as framed).")
    if not 0.0 <= motion_scale <= 2.0:
        raise MotionError("motion_scale must be between 0 and 2.")
    n = len(mouth)
    rng = np.random.default_rng(seed)
    seq = MotionSequence.neutral(n, fps).values
    col = {k: i for i, k in enumerate(PARAMS)}

    loud = features.at_fps(features.loudness, fps)
    floor, peak = np.percentile(loud, 10), np.percentile(loud, 97)
    level = np.clip((loud - floor - 6) / max(peak - floor - 6, 1e-3), 0, 1)
    from scipy.ndimage import gaussian_filter1d, maximum_filter1d
    activity = gaussian_filter1d(level, fps * 0.6)           # how much is being said around now
    activity = np.clip(activity / max(activity.max(), 1e-6), 0, 1)
    pauses = maximum_filter1d(level, int(fps * 0.4) | 1) < 0.1

    # head: slow drift + livelier motion while speaking + small nods at loudness onsets (stress)
    onsets = np.clip(np.diff(gaussian_filter1d(level, 1.5), prepend=level[0]), 0, None)
    nods = gaussian_filter1d(onsets, fps * 0.12) * fps * 0.25
    live = 0.35 + 0.65 * activity
    # amplitudes and correlation times tuned so that, on speech, the per-axis pose std and the mean
    # frame-to-frame rotation (Delta-P) fall in the range measured on real talking-head video (DESIGN.md)
    yaw = 2.6 * _smooth_noise(rng, n, fps, 0.18) * live + 2.0 * _smooth_noise(rng, n, fps, 1.5)
    pitch = 1.9 * _smooth_noise(rng, n, fps, 0.15) * live + 1.0 * _smooth_noise(rng, n, fps, 1.2) \
        - 3.0 * np.clip(nods, 0, 1)
    roll = 1.6 * _smooth_noise(rng, n, fps, 0.2) * live + 1.2 * _smooth_noise(rng, n, fps, 1.8)
    s = motion_scale
    seq[:, col["yaw"]] = s * yaw
    seq[:, col["pitch"]] = s * (pitch - pitch.mean())
    seq[:, col["roll"]] = s * roll
    seq[:, col["tx"]] = s * 0.004 * _smooth_noise(rng, n, fps, 2.0)
    seq[:, col["ty"]] = s * 0.003 * _smooth_noise(rng, n, fps, 2.0)
    seq[:, col["scale"]] = 1.0 / distance

    # mouth from the mouth model
    for k, name in enumerate(MOUTH_PARAMS):
        seq[:, col[name]] = mouth[:, k]

    # brows with pitch accents: f0 above the speaker's median lifts the brows
    f0 = features.at_fps(features.pitch, fps)
    voiced = f0 > 0
    brow = np.zeros(n, np.float32)
    if voiced.sum() > 5:
        semis = np.where(voiced, 12 * np.log2(np.maximum(f0, 1) / np.median(f0[voiced])), 0)
        brow = np.clip((semis - 1.5) / 5.0, 0, 1) * level
        brow = gaussian_filter1d(brow, fps * 0.12)
    brow = brow + 0.06 * _smooth_noise(rng, n, fps, 1.5)

    smile0, brow0, pitch0, jaw0 = EMOTIONS[emotion]
    w = float(np.clip(emotion_weight, 0, 1))
    seq[:, col["smile"]] = np.clip(0.05 + w * smile0 + 0.04 * _smooth_noise(rng, n, fps, 2.0), -1, 1)
    seq[:, col["brow_raise"]] = np.clip(0.5 * brow + w * brow0, -1, 1)
    seq[:, col["pitch"]] += w * pitch0
    seq[:, col["jaw_open"]] = np.clip(seq[:, col["jaw_open"]] + w * jaw0 * (seq[:, col["jaw_open"]] > 0.05), 0, 1)

    blink = _blinks(rng, n, fps, pauses)
    seq[:, col["blink_l"]] = blink
    seq[:, col["blink_r"]] = blink
    seq[:, col["gaze_x"]] = gaze[0] + _fixations(rng, n, fps, 1.5) - 0.3 * seq[:, col["yaw"]]
    seq[:, col["gaze_y"]] = gaze[1] + _fixations(rng, n, fps, 1.0) - 0.3 * seq[:, col["pitch"]]
    return MotionSequence(seq.astype(np.float32), fps)
