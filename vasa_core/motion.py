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
    cheek_raise  [0, 1]   cheeks lift (as in a smile or on emphasis; 1 = a full Duchenne cheek raise)
    lid_tension  [-1, 1]  + narrows the eyelids (tension, squint), - widens them (surprise, raised brows)

A motion generator makes everything but the mouth, frame by frame, from the voice's prosody (loudness,
pitch) and random draws keyed by the seed and the audio (`ContentKey`): by default the learned generator
(`vasa_core.motion_model`, trained on real talking video by `tools.train_motion`), or the hand-tuned
`MotionGenerator` (`motion_model='hand-tuned'`). Both are causal with a lookahead of `LOOKAHEAD` frames, so the
same code serves whole files and live streams (`vasa_core.stream`); `make_generator` picks one and
`generate_motion` runs it over a whole clip.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .audio import AudioFeatures
from .errors import MotionError
from .mouth import MOUTH_PARAMS

POSE_PARAMS = ("yaw", "pitch", "roll", "tx", "ty", "scale")
FACE_PARAMS = MOUTH_PARAMS + ("smile", "brow_raise", "blink_l", "blink_r", "gaze_x", "gaze_y",
                              "cheek_raise", "lid_tension")
PARAMS = POSE_PARAMS + FACE_PARAMS
DEFAULTS = {name: (1.0 if name == "scale" else 0.0) for name in PARAMS}
RANGES = {  # allowed range of every parameter (hand-written motion is checked against it)
    "yaw": (-30, 30), "pitch": (-20, 20), "roll": (-20, 20), "tx": (-0.2, 0.2), "ty": (-0.2, 0.2),
    "scale": (0.6, 1.5), "smile": (-1, 1), "brow_raise": (-1, 1), "gaze_x": (-25, 25), "gaze_y": (-20, 20),
    **{m: (0, 1) for m in MOUTH_PARAMS}, "blink_l": (0, 1), "blink_r": (0, 1),
    "cheek_raise": (0, 1), "lid_tension": (-1, 1),
}
EMOTIONS = {  # offsets on top of what the voice implies:
    #            (smile, brow_raise, pitch degrees, jaw bias, cheek_raise, lid_tension)
    "neutral": (0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    "happy": (0.8, 0.25, 1.5, 0.05, 0.5, 0.25),
    "sad": (-0.6, -0.15, -4.0, 0.0, 0.0, 0.1),
    "angry": (-0.4, -0.9, -1.5, 0.0, 0.1, 0.5),
    "surprised": (0.1, 1.0, 2.0, 0.15, 0.0, -0.7),
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


# --- the generator ---------------------------------------------------------------------------------------

LOOKAHEAD = 2   # frames of prosody the generator reads ahead (80 ms at 25 fps; the mouth needs more anyway)
SPEAKING_HOLD_S = 0.7   # quiet this long (seconds) before the head starts to calm down (short pauses keep it lively)
STEADY_S = 1.5   # the medium head sway's spread is held steady over windows of about this s.d. (seconds)


# The one table of the controls' ranges (the CLI, the demo's sliders and MotionControls all read it):
# gaze in degrees (x right, y up), distance 1 = as framed, weights and scales unitless
CONTROL_RANGES = {"gaze_x": (-20.0, 20.0), "gaze_y": (-15.0, 15.0), "distance": (0.5, 2.0),
                  "emotion_weight": (0.0, 1.0), "motion_scale": (0.0, 2.0)}
CONTROL_NAMES = {"gaze_x": "gaze left/right", "gaze_y": "gaze down/up", "distance": "head distance",
                 "emotion_weight": "emotion intensity", "motion_scale": "head motion"}


@dataclass(frozen=True)
class MotionControls:
    """What a user can steer. Each control changes only what it names.

    seed:           picks one of many motions for the same audio: the random parts (head drift, blinks,
                    saccades) are drawn from the seed AND the audio heard so far (`ContentKey`), so two
                    different clips never share motion and the same clip + seed reproduces it exactly
    seed_from_audio: False draws the random parts from the seed alone (for comparing audio with them held fixed)
    motion_model:   'default' (the learned generator with the shipped weights, `vasa_core.motion_model`), a
                    weights file from `python -m tools.train_motion`, or 'hand-tuned' (the older generator)
    gaze:           main gaze direction (degrees, x right / y up) around which the eyes make small saccades
    distance:       head distance, 1 = as framed; 1.3 = further away (head 1/1.3 the size), 0.5..2
    emotion:        one of EMOTIONS, an offset on top of what the voice implies, with `emotion_weight` 0..1
    motion_scale:   head motion amplitude, 0 = still head (lips only) ... 2
    """
    seed: int = 0
    gaze: tuple[float, float] = (0.0, 0.0)
    distance: float = 1.0
    emotion: str = "neutral"
    emotion_weight: float = 1.0
    motion_scale: float = 1.0
    seed_from_audio: bool = True
    motion_model: str = "default"

    def __post_init__(self):
        if self.emotion not in EMOTIONS:
            raise MotionError(f"Unknown emotion '{self.emotion}'. Choose one of: {', '.join(EMOTIONS)}.")
        values = {"gaze_x": self.gaze[0], "gaze_y": self.gaze[1], "distance": self.distance,
                  "emotion_weight": self.emotion_weight, "motion_scale": self.motion_scale}
        for name, value in values.items():
            lo, hi = CONTROL_RANGES[name]
            if not lo <= value <= hi:      # NaN fails too
                raise MotionError(f"The {CONTROL_NAMES[name]} must be between {lo:g} and {hi:g}.")
        if self.motion_model not in ("default", "hand-tuned") and not Path(self.motion_model).is_file():
            raise MotionError(f"Motion model not found: {self.motion_model} (use 'default', 'hand-tuned' or a "
                              "weights file from python -m tools.train_motion).")


@dataclass(frozen=True)
class MotionAmplitudes:
    """How much each part of `MotionGenerator`'s motion moves (tuned so that on speech the pose statistics
    fall in the range of real talking-head video; see README "Motion statistics"). The random processes are
    unit-variance, so a noise amplitude is that part's standard deviation. `motion_scale` scales the head
    (pose) parts; the face parts are not scaled by it.

    Head rotation, degrees (s.d. per part; fast ~0.2 s motion, medium ~0.7 s sway, slow drift; the fast and
    medium parts are at `silent_share` (30%) in silence and full while speaking):"""
    # (the medium sway's spread held steady over a few seconds (`STEADY_S`) and the fast parts lowered from
    # 1.8 / 1.4 / 1.4: on the 29 speech clips of 5 s or more of ../shared/media x 4 seeds, runs with Delta-P
    # 0.38-0.5 and every axis' s.d. 2-5 deg went from 76 to 103 of 116; then pauses shorter than
    # SPEAKING_HOLD_S no longer calm the head, and the fast parts went from 1.0 / 0.75 / 0.75 to these: 107
    # of 116, every clip with speech in range on 2 seeds; `python -m tools.stats`)
    yaw_fast_deg: float = 0.9
    yaw_medium_deg: float = 3.4
    yaw_slow_deg: float = 1.4
    pitch_fast_deg: float = 0.67
    pitch_medium_deg: float = 3.0
    pitch_slow_deg: float = 0.9
    roll_fast_deg: float = 0.67
    roll_medium_deg: float = 3.2
    roll_slow_deg: float = 1.5
    # the fast and medium parts in silence, as a share of their size while speaking
    silent_share: float = 0.3
    # nods on loudness onsets: peak nod (degrees, downwards) = nod_deg * tanh(nod_gain * drive)
    nod_deg: float = 3.0
    nod_gain: float = 3.5
    # gaze shifts (world-gaze targets, degrees x / y): s.d. of a new target, its bound, and the share of a
    # shift the head takes (the eyes take the rest)
    gaze_shift_sd_deg: tuple[float, float] = (3.0, 1.2)
    gaze_shift_max_deg: tuple[float, float] = (8.0, 4.0)
    head_turn_share: float = 0.7
    # translation, fractions of the output size (s.d.), and with a full nod (ty only)
    tx_frac: float = 0.007
    ty_frac: float = 0.005
    ty_nod_frac: float = 0.002
    # head size: s.d. of the drift towards / away from the camera, and the lean-in while speaking (fractions)
    scale_drift_frac: float = 0.013
    scale_lean_frac: float = 0.008
    # brows (brow_raise units, [-1, 1]): per unit of pitch accent (0..1, lagged), per degree of nod, noise s.d.
    # (accent and noise raised from 0.9 / 0.12: brow s.d. on 14 speech clips 1.65 -> 2.31 x100 IOD, the median
    # that mediapipe measures on 16 real talking people is ~2.35)
    brow_accent: float = 1.3
    brow_nod: float = 0.08
    brow_noise: float = 0.17
    # a pitch accent: f0 this many semitones above the speaker's running mean starts it, full over the range
    accent_threshold_semitones: float = 1.5
    accent_range_semitones: float = 5.0
    # lip corners (smile units, [-1, 1]): resting lift, with the brows, noise s.d.
    smile_rest: float = 0.05
    smile_brow: float = 0.1
    smile_noise: float = 0.04
    # cheeks (cheek_raise units, [0, 1]) with a smile (above the resting lift), the brows, stress, noise s.d.
    cheek_smile: float = 0.45
    cheek_brow: float = 0.3
    cheek_stress: float = 0.25
    cheek_noise: float = 0.04
    # lids (lid_tension units, [-1, 1]): narrow with a smile and stress, widen with the brows, noise s.d.
    lid_smile: float = 0.3
    lid_stress: float = 0.4
    lid_brow: float = 0.5
    lid_noise: float = 0.06
    # eyes: fixations (s.d. of a new one, degrees x / y) and the share of the head's own small motion
    # they counter-rotate against
    fixation_sd_deg: tuple[float, float] = (1.5, 1.0)
    gaze_counter: float = 0.3


AMPLITUDES = MotionAmplitudes()


def _gauss(sigma: float, reach: float) -> np.ndarray:
    """A Gaussian kernel of s.d. `sigma` samples, out to `reach` s.d. either side (not normalised)."""
    r = int(reach * sigma) + 1
    return np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)


def _standardise(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x minus its local mean, over its local s.d. (window w, summing to 1), at the len(x) - len(w) + 1
    centres where the window fits."""
    mean = np.convolve(x, w, mode="valid")
    var = np.convolve(x * x, w, mode="valid") - mean ** 2
    return (x[len(w) // 2:len(x) - len(w) // 2] - mean) / np.sqrt(np.maximum(var, 1e-12))


@lru_cache(maxsize=None)
def _steady_gain(kernel: tuple, window: tuple) -> float:
    """The factor that gives locally standardised noise a long-run s.d. of 1 (measured on a fixed draw)."""
    white = np.random.default_rng(0).standard_normal(40000)
    return float(1.0 / _standardise(np.convolve(white, kernel, mode="valid"), np.asarray(window)).std())


class ContentKey:
    """The generator's random source: one fresh `numpy.random.Generator` per video frame, keyed by the seed
    and by the audio heard up to that frame.

    Each frame's prosody row (loudness, voicing, pitch), quantised to 0.1 dB, 0.01 and 1 Hz, is chained into a
    BLAKE2b digest that starts from the seed; frame i's draws come from the digest after row i. So two clips
    whose audio differs get different motion from the first frame where they differ on, the same clip and
    seed reproduce it exactly (the prosody is the same in any chunking: `vasa_core.audio.ProsodyStream`), and
    live mode needs no look-ahead for it. With `from_audio=False` the digest chains only the frame count (the
    seed alone decides, as for comparing audio with the random parts held fixed).
    """
    QUANT = np.array([10.0, 100.0, 1.0])

    def __init__(self, seed: int, from_audio: bool = True):
        self._h = hashlib.blake2b(f"vasa-motion|{int(seed)}".encode(), digest_size=16)
        self.from_audio = from_audio

    def update(self, prosody_row: np.ndarray) -> bytes:
        """Chain one frame's prosody in; returns the digest that keys this frame's draws."""
        if self.from_audio:
            self._h.update(np.round(np.asarray(prosody_row, np.float64) * self.QUANT).astype(np.int64).tobytes())
        else:
            self._h.update(b"\0")
        return self._h.digest()

    @staticmethod
    def rng(digest: bytes) -> np.random.Generator:
        return np.random.default_rng(np.frombuffer(digest, np.uint32))


class _SmoothNoise:
    """Unit-variance Gaussian-filtered white noise with correlation time `tau_s`, one value per frame from one
    white sample per frame (`next(white)`).

    The kernel runs over the past white samples only: the process is the centred-kernel one delayed by the
    kernel's half-width, so it has the same statistics, and each frame's value depends only on white samples
    already drawn (drawn per frame from the audio-keyed `ContentKey`, so no look-ahead is needed).
    `start(rng)` draws the samples that precede the first frame. The kernel is scaled so the output's
    variance is exactly 1.

    steady_s > 0 also takes out the noise's own local mean and divides by its local s.d. (a Gaussian window of
    s.d. `steady_s` seconds, over the filtered values; rescaled to a long-run s.d. of 1): its spread over any
    few seconds is then close to 1, not only on average. A sway with tau ~0.6 s has only a handful of swings in
    a 5-s clip; without this its s.d. over 6 s ranged 0.38-1.25 (5-95%, 200 draws), with it 0.77-1.2.
    """

    def __init__(self, fps: float, tau_s: float, steady_s: float = 0.0):
        k = _gauss(tau_s * fps, 4.0)
        self._k = k / np.sqrt(np.sum(k ** 2))
        self._w = None
        if steady_s > 0:
            w = _gauss(steady_s * fps, 3.0)
            self._w = w / w.sum()
            self._gain = _steady_gain(tuple(self._k), tuple(self._w))
        self._white = np.zeros(len(self._k))
        self._filt = np.zeros(0 if self._w is None else len(self._w))

    def start(self, rng: np.random.Generator) -> None:
        """Draw the white samples before the first frame (and the filtered values a steady noise needs)."""
        extra = 0 if self._w is None else len(self._w) - 1
        white = rng.standard_normal(len(self._k) - 1 + extra)
        self._white[1:] = white[len(white) - (len(self._k) - 1):]
        if extra:
            self._filt[1:] = np.convolve(white, self._k, mode="valid")

    def next(self, white: float) -> float:
        self._white[:-1] = self._white[1:]
        self._white[-1] = white
        value = float(self._white @ self._k)
        if self._w is None:
            return value
        f = self._filt
        f[:-1] = f[1:]
        f[-1] = value
        mean = float(f @ self._w)
        var = float((f * f) @ self._w) - mean * mean
        return self._gain * (f[len(f) // 2] - mean) / np.sqrt(max(var, 1e-12))


class _Lag:
    """Two cascaded one-pole low-pass filters (time constant `tau_s` each): a smooth, S-shaped follower."""

    def __init__(self, fps: float, tau_s: float, value: float = 0.0):
        self.a = 1.0 - np.exp(-1.0 / (tau_s * fps))
        self.u = self.y = value

    def __call__(self, x: float) -> float:
        self.u += (x - self.u) * self.a
        self.y += (self.u - self.y) * self.a
        return self.y


@dataclass(frozen=True)
class Drive:
    """What the voice does around one video frame, from the causal prosody trackers (shared by the hand-tuned
    and the learned generator; the learned one is conditioned on it).

    level, lookahead  speech level 0..1 of this frame and of the frame LOOKAHEAD ahead
    past              mean speech level of the 5 frames before
    speaking          0..1, whether someone speaks (not how loud); activity: the same, fast attack, slow release
    onset             smoothed rise of the level this frame (per frame)
    nod               0..1, the nod that loudness onsets drive (nod_deg degrees downwards at full)
    accent            0..1 pitch accent (f0 above the speaker's running mean), times the level
    brow              the accent (plus nods) through the brows' lag
    voicing           0..1
    pause, phrase_end quiet for ~0.3 s around now; the first frame of such a pause
    """
    level: float
    lookahead: float
    past: float
    speaking: float
    activity: float
    onset: float
    nod: float
    nod_deg: float
    accent: float
    brow: float
    voicing: float
    pause: bool
    phrase_end: bool


class MotionGenerator:
    """Head, brows, blinks and gaze from prosody, one video frame at a time (the mouth comes separately): the
    hand-tuned generator (`motion_model='hand-tuned'`; the learned one, `vasa_core.motion_model`, shares its
    frame loop, prosody trackers and controls).

    push(prosody) takes rows (k, 3) = (loudness dBFS, voicing 0..1, pitch Hz or 0) for consecutive video
    frames and returns the motion rows (m, len(PARAMS)) that are final: frame i is emitted once frame
    i + LOOKAHEAD has arrived. finish() returns the rest. Mouth columns are left at 0 (see `with_mouth`).
    Random draws come from `ContentKey` (the seed and the audio so far).

    What drives what (amplitudes tuned so that on speech the pose statistics fall in the range of real
    talking-head video; see README "Motion statistics"):
      - speech level: loudness between a running noise floor and a running peak (causal trackers);
      - head: slow drift, plus livelier motion while speaking, plus nods that land on loudness onsets
        (stressed syllables), plus occasional turns towards a new gaze target, more likely at phrase ends;
        in long pauses the head settles;
      - eyes: fixations with small saccades around the main gaze direction; on a gaze shift the eyes jump
        first and the head follows over ~0.3 s (eyes lead head turns), the eyes partly counter-rotate
        against small head motion;
      - brows: rise with pitch accents (f0 above the speaker's running mean) and with emphasis; the lip
        corners lift slightly with them;
      - cheeks and lids: cheeks lift with a smile and with emphasis; the lids narrow a little on stressed
        syllables and with a smile and widen when the brows rise on a pitch accent;
      - blinks: ~15-25 per minute, 150-300 ms, both eyes, more likely at the start of a pause, never
        overlapping.
    """

    def __init__(self, fps: float = 25.0, controls: MotionControls = MotionControls(),
                 amplitudes: MotionAmplitudes = AMPLITUDES):
        self.fps, self.c, self.a = float(fps), controls, amplitudes
        self._key = ContentKey(controls.seed, controls.seed_from_audio)
        noise = lambda tau, steady=0.0: _SmoothNoise(fps, tau, steady)
        self._n = {"yaw_f": noise(0.18), "yaw_s": noise(1.5), "pitch_f": noise(0.15),
                   "pitch_s": noise(1.2), "roll_f": noise(0.2), "roll_s": noise(1.8),
                   "tx": noise(2.0), "ty": noise(2.0), "brow": noise(1.5), "smile": noise(2.0),
                   "cheek": noise(2.0), "lid": noise(1.5), "scale": noise(2.5),
                   "pitch_m": noise(0.5, STEADY_S), "roll_m": noise(0.55, STEADY_S),
                   "yaw_m": noise(0.6, STEADY_S)}
        self._pending: list[np.ndarray] = []      # prosody rows not yet turned into motion
        self._digests: list[bytes] = []           # their ContentKey digests
        self._levels: list[float] = []           # speech level of recent frames (for pause detection)
        self._i = 0                               # next frame to emit
        # causal level trackers (dBFS)
        self._floor = self._peak = None
        self._smooth_level = 0.0
        self._activity = 0.0
        self._quiet_s = 0.0
        self._nod_drive = _Lag(fps, 0.15)
        self._brow = _Lag(fps, 0.06)
        self._f0_mean, self._f0_count = 0.0, 0
        self._was_pause = True
        # blinks (the first one 0.3-2 s in; drawn on the first frame)
        self._next_blink: int | None = None
        self._blink_shape: np.ndarray | None = None
        self._blink_pos = 0
        # fixations (eye-in-head offsets) and gaze shifts (world-gaze targets the head follows)
        self._fix = np.zeros(2)
        self._fix_from = np.zeros(2)
        self._fix_to = np.zeros(2)
        self._fix_left = 0
        self._fix_ramp = 0
        self._target = np.zeros(2)
        self._since_turn = 0
        self._head_turn = (_Lag(fps, 0.12), _Lag(fps, 0.12))

    # --- prosody -> level ---------------------------------------------------------------------------
    def _level(self, loud: float) -> float:
        """Speech level 0..1 of one frame, between a running noise floor and a running peak."""
        dt = 1.0 / self.fps
        if self._floor is None:
            self._floor = float(np.clip(loud, -75.0, -35.0))
            self._peak = max(self._floor + 30.0, -30.0)
        floor_tau = 0.3 if loud < self._floor else 20.0          # falls fast, creeps up slowly
        self._floor += (max(loud, -75.0) - self._floor) * (1 - np.exp(-dt / floor_tau))
        peak_tau = 0.05 if loud > self._peak else 15.0           # jumps up, decays slowly
        self._peak += (loud - self._peak) * (1 - np.exp(-dt / peak_tau))
        self._peak = max(self._peak, self._floor + 20.0)
        return float(np.clip((loud - self._floor - 6.0) / (self._peak - self._floor - 6.0), 0.0, 1.0))

    # --- the frame loop ----------------------------------------------------------------------------
    def push(self, prosody: np.ndarray) -> np.ndarray:
        for row in np.asarray(prosody, np.float64).reshape(-1, 3):
            self._pending.append(row)
            self._digests.append(self._key.update(row))
            self._levels.append(self._level(row[0]))
        rows = []
        while len(self._pending) > LOOKAHEAD:
            rows.append(self._next_frame())
        return np.array(rows, np.float32).reshape(-1, len(PARAMS))

    def finish(self) -> np.ndarray:
        rows = []
        while self._pending:
            rows.append(self._next_frame())
        return np.array(rows, np.float32).reshape(-1, len(PARAMS))

    def _next_frame(self) -> np.ndarray:
        """Motion of the oldest pending frame, from its prosody, the speech level of the (up to) LOOKAHEAD
        frames after it, the levels of the 5 frames before it, and its own random draws."""
        n_pending = len(self._pending)
        now = len(self._levels) - n_pending                     # index of this frame in self._levels
        ahead = self._levels[now:now + LOOKAHEAD + 1]
        past = self._levels[max(0, now - 5):now]
        rng = ContentKey.rng(self._digests.pop(0))
        row = self._frame(self._pending.pop(0), ahead, past, rng)
        del self._levels[:max(0, now - 5)]                      # keep only what the next frames need
        return row

    def _drive(self, prosody: np.ndarray, ahead_levels: list[float], past: list[float]) -> Drive:
        """Advance the causal prosody trackers by one frame. `ahead_levels` = speech levels of this frame and
        the lookahead frames; `past` = of the (up to) 5 frames before."""
        fps, a = self.fps, self.a
        dt = 1.0 / fps
        _, voicing, f0 = prosody
        level = ahead_levels[0]
        lookahead_level = ahead_levels[-1]
        pause = max([*past, *ahead_levels]) < 0.1                # quiet for ~0.3 s around now
        phrase_end = pause and not self._was_pause
        self._was_pause = pause
        # how much is being said around now: fast attack, slow release
        # (whether someone speaks, not how loud: quiet recordings move the head as much as loud ones)
        speaking = min(1.0, lookahead_level / 0.2)
        self._quiet_s = 0.0 if speaking >= 0.5 else self._quiet_s + dt
        if speaking > self._activity:
            self._activity += (speaking - self._activity) * (1 - np.exp(-dt / 0.2))
        elif self._quiet_s > SPEAKING_HOLD_S:      # a pause between words or phrases does not calm the head
            self._activity += (speaking - self._activity) * (1 - np.exp(-dt / 0.8))
        # nods: a loudness onset LOOKAHEAD frames ahead starts a nod that peaks on the syllable
        prev = self._smooth_level
        self._smooth_level += (lookahead_level - self._smooth_level) * (1 - np.exp(-dt / 0.04))
        onset = max(0.0, self._smooth_level - prev)
        nod = a.nod_deg * np.tanh(a.nod_gain * self._nod_drive(onset * fps * 0.1))   # a full onset: ~2.4 deg down
        # pitch accents relative to the speaker's running mean f0 (in octaves, over voiced frames: the plain
        # mean of the first 10 s of voicing, then an exponential average with a 10 s memory)
        accent = 0.0
        if f0 > 0 and voicing > 0.3:
            self._f0_count += 1
            self._f0_mean += (np.log2(f0) - self._f0_mean) / min(self._f0_count, 10 * fps)
            if self._f0_count >= 5:
                semis = 12 * (np.log2(f0) - self._f0_mean)
                accent = float(np.clip((semis - a.accent_threshold_semitones) / a.accent_range_semitones, 0, 1)) * level
        brow = self._brow(accent + a.brow_nod * nod)
        return Drive(level=float(level), lookahead=float(lookahead_level), past=float(np.mean(past)) if past else 0.0,
                     speaking=float(speaking), activity=float(self._activity), onset=float(onset),
                     nod=float(nod / a.nod_deg), nod_deg=float(nod), accent=accent, brow=float(brow),
                     voicing=float(voicing), pause=bool(pause), phrase_end=bool(phrase_end))

    def _frame(self, prosody: np.ndarray, ahead_levels: list[float], past: list[float],
               rng: np.random.Generator) -> np.ndarray:
        """Motion of one frame (hand-tuned)."""
        fps, c, a = self.fps, self.c, self.a
        d = self._drive(prosody, ahead_levels, past)
        if self._i == 0:
            for noise in self._n.values():
                noise.start(rng)
            self._next_blink = int(rng.uniform(0.3, 2.0) * fps)
        white = rng.standard_normal(len(self._n))
        n = {k: v.next(x) for (k, v), x in zip(self._n.items(), white)}
        live = a.silent_share + (1 - a.silent_share) * d.activity
        nod = d.nod_deg

        # gaze shifts: a new world-gaze target every few seconds, more likely where a phrase ends
        self._since_turn += 1
        if self._since_turn > 1.2 * fps:
            p = 0.35 if d.phrase_end else 1.0 / fps / 5.0
            if rng.random() < p:
                self._target = 0.3 * self._target + rng.normal(0, list(a.gaze_shift_sd_deg))
                bound = np.array(a.gaze_shift_max_deg)
                self._target = np.clip(self._target, -bound, bound)
                self._since_turn = 0
        head_turn = np.array([lag(a.head_turn_share * t) for lag, t in zip(self._head_turn, self._target)])

        s = c.motion_scale
        # per axis: fast (~0.2 s) motion that sets Delta-P, medium (~0.7 s) sway that sets the spread even on
        # short clips, slow drift; the fast and medium parts grow while speaking
        yaw_own = live * (a.yaw_fast_deg * n["yaw_f"] + a.yaw_medium_deg * n["yaw_m"]) + a.yaw_slow_deg * n["yaw_s"]
        pitch_own = (live * (a.pitch_fast_deg * n["pitch_f"] + a.pitch_medium_deg * n["pitch_m"])
                     + a.pitch_slow_deg * n["pitch_s"] - nod)
        roll = live * (a.roll_fast_deg * n["roll_f"] + a.roll_medium_deg * n["roll_m"]) + a.roll_slow_deg * n["roll_s"]
        smile0, brow0, pitch0, _, cheek0, lid0 = EMOTIONS[c.emotion]
        w = c.emotion_weight

        out = np.array([DEFAULTS[k] for k in PARAMS], np.float64)
        col = PARAMS.index
        out[col("yaw")] = s * (yaw_own + head_turn[0])
        out[col("pitch")] = s * (pitch_own + head_turn[1]) + w * pitch0
        out[col("roll")] = s * roll
        # the head also drifts a little towards and away from the camera (about 1.5% in size), leaning in a
        # little while speaking, and sways sideways and with its nods (VASA-1's heads do)
        out[col("tx")] = s * a.tx_frac * n["tx"]
        out[col("ty")] = s * (a.ty_frac * n["ty"] + a.ty_nod_frac * nod / a.nod_deg)
        out[col("scale")] = (1.0 + s * (a.scale_drift_frac * n["scale"] + a.scale_lean_frac * (d.activity - 0.5))
                             ) / c.distance

        # brows: pitch accents (and nods) through the brows' lag
        brow = d.brow
        # (amplitudes doubled after measuring real speakers: their brows move ~2x what ours did, per IOD)
        out[col("brow_raise")] = np.clip(a.brow_accent * brow + a.brow_noise * n["brow"] + w * brow0, -1, 1)
        # lip corners lift a little with the same emphasis (an animated speaker, not a frozen smile)
        out[col("smile")] = np.clip(a.smile_rest + a.smile_brow * brow + w * smile0 + a.smile_noise * n["smile"], -1, 1)
        # cheeks lift with a smile and with emphasis (stressed syllables, pitch accents); the lids narrow a
        # little on stressed syllables and with a smile, and widen when the brows go up on a pitch accent
        stress = float(np.clip(nod / a.nod_deg, 0.0, 1.0))
        smiling = max(0.0, out[col("smile")] - a.smile_rest)
        out[col("cheek_raise")] = np.clip(a.cheek_smile * smiling + a.cheek_brow * brow + a.cheek_stress * stress
                                          + a.cheek_noise * n["cheek"] + w * cheek0, 0, 1)
        out[col("lid_tension")] = np.clip(a.lid_smile * smiling + a.lid_stress * stress - a.lid_brow * brow
                                          + a.lid_noise * n["lid"] + w * lid0, -1, 1)

        blink = self._blink(d.pause, rng)
        out[col("blink_l")] = out[col("blink_r")] = blink

        # eyes: main direction + fixations + the part of a gaze shift the head has not taken yet,
        # minus a partial counter-rotation against the head's own small motion
        fix = self._fixation(rng)
        eye_turn = self._target - s * head_turn
        out[col("gaze_x")] = np.clip(c.gaze[0] + fix[0] + eye_turn[0] - a.gaze_counter * s * yaw_own, -25, 25)
        out[col("gaze_y")] = np.clip(c.gaze[1] + fix[1] + eye_turn[1] - a.gaze_counter * s * pitch_own, -20, 20)
        self._i += 1
        return out

    def _blink(self, pause: bool, rng: np.random.Generator) -> float:
        """Blink value of this frame (1 = closed)."""
        fps = self.fps
        if self._blink_shape is None:
            if pause and self._next_blink - self._i < 1.5 * fps and rng.random() < 0.08:
                self._next_blink = self._i                      # pauses invite blinks
            if self._i >= self._next_blink:
                dur = rng.uniform(0.15, 0.3)
                k = max(3, int(round(dur * fps)))
                self._blink_shape = np.sin(np.linspace(0, np.pi, k + 2)[1:-1]) ** 0.7   # close, hold, open
                self._blink_pos = 0
                gap = rng.exponential(2.0) + 0.8 + dur
                self._next_blink = self._i + int(round(gap * fps))
        if self._blink_shape is None:
            return 0.0
        value = float(self._blink_shape[self._blink_pos])
        self._blink_pos += 1
        if self._blink_pos >= len(self._blink_shape):
            self._blink_shape = None
        return value

    def _fixation(self, rng: np.random.Generator) -> np.ndarray:
        """Eye-in-head fixation offset (degrees): held 0.8-3 s, then a 2-frame saccade to a new one."""
        if self._fix_left <= 0:
            self._fix_from = self._fix.copy()
            self._fix_to = rng.normal(0.0, list(self.a.fixation_sd_deg))
            self._fix_left = int(rng.uniform(0.8, 3.0) * self.fps)
            self._fix_ramp = 0
        if self._fix_ramp < 2:
            self._fix_ramp += 1
            self._fix = self._fix_from + (self._fix_to - self._fix_from) * self._fix_ramp / 2
        self._fix_left -= 1
        return self._fix


def make_generator(fps: float = 25.0, controls: MotionControls = MotionControls()) -> MotionGenerator:
    """The generator `controls.motion_model` names: the learned one ('default': the shipped weights, or a
    weights file from `tools.train_motion`), or the hand-tuned one ('hand-tuned')."""
    if controls.motion_model == "hand-tuned":
        return MotionGenerator(fps, controls)
    from .motion_model import LearnedMotionGenerator, load_motion_model
    return LearnedMotionGenerator(fps, controls, load_motion_model(controls.motion_model))


def with_mouth(rows: np.ndarray, mouth: np.ndarray, controls: MotionControls) -> np.ndarray:
    """Motion rows (k, len(PARAMS)) with the mouth model's rows (k, 8) put in, plus the emotion's jaw bias
    while the mouth is open (so an emotion never changes when the lips open or close)."""
    rows = rows.copy()
    for k, name in enumerate(MOUTH_PARAMS):
        rows[:, PARAMS.index(name)] = mouth[:, k]
    jaw = rows[:, PARAMS.index("jaw_open")]
    bias = controls.emotion_weight * EMOTIONS[controls.emotion][3]
    rows[:, PARAMS.index("jaw_open")] = np.clip(jaw + bias * (jaw > 0.05), 0, 1)
    return rows


def prosody_at_frames(features: AudioFeatures, fps: float, num_frames: int) -> np.ndarray:
    """(num_frames, 3) loudness, voicing, pitch sampled at each video frame (nearest 10 ms frame; the last
    one is held past the end). The streaming path samples the same way."""
    idx = np.minimum(np.round(np.arange(num_frames) / fps * features.rate).astype(int), len(features.loudness) - 1)
    return np.stack([features.loudness[idx], features.voicing[idx], features.pitch[idx]], 1)


def generate_motion(features: AudioFeatures, mouth: np.ndarray, fps: float = 25.0, seed: int = 0,
                    gaze: tuple[float, float] = (0.0, 0.0), distance: float = 1.0,
                    emotion: str = "neutral", emotion_weight: float = 1.0,
                    motion_scale: float = 1.0, seed_from_audio: bool = True,
                    motion_model: str = "default") -> MotionSequence:
    """Full-face motion for a whole clip: mouth (T, 8) from a mouth model, the rest from `MotionGenerator`
    (see `MotionControls` for the controls)."""
    controls = MotionControls(seed=seed, gaze=tuple(gaze), distance=distance, emotion=emotion,
                              emotion_weight=float(np.clip(emotion_weight, 0, 1)), motion_scale=motion_scale,
                              seed_from_audio=seed_from_audio, motion_model=str(motion_model))
    gen = make_generator(fps, controls)
    prosody = prosody_at_frames(features, fps, len(mouth))
    rows = np.concatenate([gen.push(prosody), gen.finish()])
    return MotionSequence(with_mouth(rows, mouth, controls).astype(np.float32), fps)
