"""Learned motion: head pose, brows, lids, gaze and blinks from the voice, trained on real talking video.

The model (`MotionModel`) is a conditional linear-Gaussian autoregressive process over a small state per
video frame (25 fps), each dimension divided by its s.d. in the training data (`sd`):

    y_t = c + B u_t + sum_{k=1..order} A_k y_{t-k} + s(a_t) * (L z_t),      z_t ~ N(0, I),   x_t = sd * y_t

  x (STATE)   yaw, pitch, roll (degrees), tx, ty (fractions of the output side), scale - 1, brow_raise,
              lid_tension (the face rig's units, [-1, 1]), gaze_x, gaze_y (degrees, eyes in the head)
  u (COND)    what the voice does around the frame, causal with the generator's 2-frame look-ahead
              (`vasa_core.motion.Drive`: speech level now / 2 frames ahead / over the last 5, loudness onsets
              and the nod they drive, speaking activity, pitch accent, voicing, pause)
  s(a)        per-dimension innovation s.d. (its variance linear in the speaking activity a, `noise_drive`),
              so the head moves more while someone speaks
  L           Cholesky factor of the innovations' correlation (head, brows and eyes move together)
  blinks      a logistic hazard per frame over BLINK_COND (pauses, phrase ends, time since the last blink);
              each blink's length is drawn from the lengths of the training blinks

It is causal (one frame at a time, the same 2-frame look-ahead as the hand-tuned generator), costs a few tens
of microseconds a frame, and is fitted in closed form (ridge regression, then the residuals' statistics,
then the blink hazard by Newton steps): `python -m tools.train_motion`. Weights: one .npz of arrays plus a
JSON `meta` (what it was trained on and how), written only by `MotionModel.save`.

The random draws come from the generator's per-frame random source (`vasa_core.motion.ContentKey`): from
the seed and the audio heard so far, so two different clips never share motion and the same clip and seed
reproduce it exactly.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import ASSETS
from .errors import MotionError
from .motion import (AMPLITUDES, DEFAULTS, EMOTIONS, PARAMS, Drive, MotionAmplitudes, MotionControls,
                     MotionGenerator)

STATE = ("yaw", "pitch", "roll", "tx", "ty", "scale", "brow_raise", "lid_tension", "gaze_x", "gaze_y")
COND = ("level", "ahead", "past", "onset", "nod", "activity", "accent", "voicing", "pause")
BLINK_COND = ("bias", "pause", "phrase_end", "level", "since", "since2")
DEFAULT_WEIGHTS = ASSETS / "motion_model.npz"
FORMAT = 1
SINCE_CAP_S = 8.0          # time since the last blink saturates here (seconds) in the blink hazard
BLINK_REFRACTORY_S = 0.3   # no new blink this soon after the last one ended
# bounds of the state: the head within the design's limits (DESIGN.md: the renderer is judged up to +-15 deg
# yaw, +-10 pitch, +-10 roll), brows and lids within the rig's range, the eyes within +-15 / +-10 degrees
STATE_LIMITS = {"yaw": 15.0, "pitch": 10.0, "roll": 10.0, "brow_raise": 1.0, "lid_tension": 1.0, "gaze_x": 15.0,
                "gaze_y": 10.0}


@dataclass(frozen=True)
class MotionModel:
    """Weights of the learned motion generator (see the module docstring for the equations).

    order: autoregressive order; A (order * len(STATE), len(STATE)): rows k*D..(k+1)*D-1 multiply y_{t-1-k};
    B (len(COND), len(STATE)); c (len(STATE),); sd (len(STATE),) state units per standardised unit;
    noise (2, len(STATE)): innovation variance in silence and its increase at full speaking activity
    (standardised units); chol (len(STATE), len(STATE)): Cholesky factor of the innovations' correlation;
    lo / hi (len(STATE),): the state's bounds (training 0.5 / 99.5 percentiles, inside the design limits);
    blink (len(BLINK_COND),): logistic hazard weights; blink_frames: lengths (frames) of training blinks;
    meta: JSON-able description (fps, training data, command, fit statistics).
    """
    order: int
    A: np.ndarray
    B: np.ndarray
    c: np.ndarray
    sd: np.ndarray
    noise: np.ndarray
    chol: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    blink: np.ndarray
    blink_frames: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return float(self.meta.get("fps", 25.0))

    def check(self) -> None:
        """Raise MotionError unless every array has the shape and finiteness the generator needs."""
        d, p = len(STATE), self.order
        shapes = {"A": (p * d, d), "B": (len(COND), d), "c": (d,), "sd": (d,), "noise": (2, d), "chol": (d, d),
                  "lo": (d,), "hi": (d,), "blink": (len(BLINK_COND),)}
        for name, shape in shapes.items():
            arr = getattr(self, name)
            if arr.shape != shape or not np.all(np.isfinite(arr)):
                raise MotionError(f"Motion model: '{name}' must be a finite array of shape {shape}, not {arr.shape}.")
        if p < 1 or len(self.blink_frames) == 0 or np.any(self.sd <= 0):
            raise MotionError("Motion model: order, blink lengths or state s.d. are missing.")

    def save(self, path: str | Path) -> None:
        arrays = {k: np.asarray(getattr(self, k), np.float32) for k in ("A", "B", "c", "sd", "noise", "chol", "lo", "hi",
                                                                          "blink", "blink_frames")}
        meta = {**self.meta, "format": FORMAT, "order": self.order, "state": STATE, "cond": COND,
                "blink_cond": BLINK_COND}
        with open(path, "wb") as f:
            np.savez_compressed(f, meta=np.array(json.dumps(meta)), **arrays)

    @staticmethod
    def load(path: str | Path) -> "MotionModel":
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                arrays = {k: z[k].astype(np.float64) for k in ("A", "B", "c", "sd", "noise", "chol", "lo", "hi",
                                                                "blink", "blink_frames")}
        except FileNotFoundError:
            raise MotionError(f"Motion model not found: {path}") from None
        except (OSError, KeyError, ValueError) as exc:
            raise MotionError(f"{path} is not a motion model written by tools.train_motion ({exc}).") from None
        if meta.get("format") != FORMAT or tuple(meta.get("state", ())) != STATE or tuple(meta.get("cond", ())) != COND:
            raise MotionError(f"{path} is a motion model of another format or feature set; re-train it with "
                              "python -m tools.train_motion.")
        model = MotionModel(order=int(meta["order"]), meta=meta, **arrays)
        model.check()
        return model


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime: float) -> MotionModel:
    return MotionModel.load(path)


def load_motion_model(name: str | Path = "default") -> MotionModel:
    """'default' -> the shipped weights (assets/motion_model.npz); otherwise a path to weights
    (cached per path and modification time)."""
    path = DEFAULT_WEIGHTS if str(name) == "default" else Path(name)
    if not path.is_file():
        raise MotionError(f"Motion model not found: {path}")
    return _load_cached(str(path), path.stat().st_mtime)


def conditioning(d: Drive) -> np.ndarray:
    """The model's input u (COND order) for one frame's `Drive`."""
    return np.array([d.level, d.lookahead, d.past, d.onset, d.nod, d.activity, d.accent, d.voicing,
                     float(d.pause)], np.float64)


def noise_drive(d: Drive) -> float:
    """What scales the innovations (0..1): the speaking activity (fast attack, slow release). Measured on the
    held-out clips (head speed vs speech envelope r, 3 seeds): 0.21 with it, 0.09 with the speech level two
    frames ahead instead; the real speakers' own: 0.25."""
    return d.activity


def blink_features(d: Drive, since_s: float) -> np.ndarray:
    """The blink hazard's input (BLINK_COND order): pause, phrase end, level, time since the last blink."""
    s = min(since_s, SINCE_CAP_S) / SINCE_CAP_S
    return np.array([1.0, float(d.pause), float(d.phrase_end), d.level, s, s * s], np.float64)


class LearnedMotionGenerator(MotionGenerator):
    """`MotionGenerator`'s interface (push / finish, same look-ahead, same controls) with head pose, brows,
    lids, gaze and blinks drawn from a `MotionModel`. Smile and cheeks follow the brows and stresses as in the
    hand-tuned generator; the controls act as there: motion_scale scales the head, gaze adds the main gaze
    direction, distance divides the head size, emotion adds its offsets."""

    def __init__(self, fps: float = 25.0, controls: MotionControls = MotionControls(),
                 model: MotionModel | None = None, amplitudes: MotionAmplitudes = AMPLITUDES):
        super().__init__(fps, controls, amplitudes)
        self.m = model if model is not None else load_motion_model()
        if abs(self.m.fps - self.fps) > 1e-6:
            raise MotionError(f"This motion model runs at {self.m.fps:g} fps, not {self.fps:g}; use fps="
                              f"{self.m.fps:g} or the hand-tuned motion (motion_model='hand-tuned').")
        self._y = np.zeros((self.m.order, len(STATE)))        # standardised state, most recent first
        self._A = self.m.A
        tau = float(self.m.meta.get("output_tau_s", 0.0))
        self._lag = 1.0 - np.exp(-1.0 / (tau * self.fps)) if tau > 0 else 1.0
        self._u1 = np.zeros(len(STATE))
        self._u2 = np.zeros(len(STATE))
        self._since = 2.0                                      # seconds since the last blink ended
        self._shape: np.ndarray | None = None
        self._pos = 0

    def _frame(self, prosody: np.ndarray, ahead_levels: list[float], past: list[float],
               rng: np.random.Generator) -> np.ndarray:
        c, a, m = self.c, self.a, self.m
        d = self._drive(prosody, ahead_levels, past)
        z = rng.standard_normal(len(STATE))
        u = conditioning(d)
        sd_now = np.sqrt(np.maximum(m.noise[0] + m.noise[1] * noise_drive(d), 1e-6))
        y = m.c + u @ m.B + self._y.reshape(-1) @ self._A + sd_now * (m.chol @ z)
        y = np.clip(y, m.lo / m.sd, m.hi / m.sd)
        self._y = np.concatenate([y[None], self._y[:-1]])
        # the tracks the model learnt from were smoothed (Savitzky-Golay, 5 frames); an AR model cannot make that
        # smoothing's short memory, so its own output is smoothed causally to the same bandwidth
        self._u1 += self._lag * (y - self._u1)
        self._u2 += self._lag * (self._u1 - self._u2)
        x = dict(zip(STATE, m.sd * self._u2))

        s = c.motion_scale
        smile0, brow0, pitch0, _, cheek0, lid0 = EMOTIONS[c.emotion]
        w = c.emotion_weight
        out = np.array([DEFAULTS[k] for k in PARAMS], np.float64)
        col = PARAMS.index
        out[col("yaw")] = s * x["yaw"]
        out[col("pitch")] = s * x["pitch"] + w * pitch0
        out[col("roll")] = s * x["roll"]
        out[col("tx")] = s * x["tx"]
        out[col("ty")] = s * x["ty"]
        out[col("scale")] = (1.0 + s * x["scale"]) / c.distance
        brow = float(np.clip(x["brow_raise"] + w * brow0, -1, 1))
        out[col("brow_raise")] = brow
        raised = max(0.0, x["brow_raise"])
        out[col("smile")] = np.clip(a.smile_rest + a.smile_brow * raised + w * smile0, -1, 1)
        stress = float(np.clip(d.nod_deg / a.nod_deg, 0.0, 1.0))
        smiling = max(0.0, out[col("smile")] - a.smile_rest)
        out[col("cheek_raise")] = np.clip(a.cheek_smile * smiling + a.cheek_brow * raised + a.cheek_stress * stress
                                          + w * cheek0, 0, 1)
        out[col("lid_tension")] = np.clip(x["lid_tension"] + w * lid0, -1, 1)
        blink = self._learned_blink(d, rng)
        out[col("blink_l")] = out[col("blink_r")] = blink
        out[col("gaze_x")] = np.clip(c.gaze[0] + x["gaze_x"], -25, 25)
        out[col("gaze_y")] = np.clip(c.gaze[1] + x["gaze_y"], -20, 20)
        self._i += 1
        return out

    def _learned_blink(self, d: Drive, rng: np.random.Generator) -> float:
        """Blink value of this frame (1 = closed): a new blink starts with the model's hazard."""
        u = rng.random()
        if self._shape is None:
            self._since += 1.0 / self.fps
            if self._since >= BLINK_REFRACTORY_S:
                p = 1.0 / (1.0 + np.exp(-blink_features(d, self._since) @ self.m.blink))
                if u < p:
                    frames = self.m.blink_frames
                    k = int(np.clip(frames[int(rng.integers(len(frames)))], 3, 8))
                    self._shape = np.sin(np.linspace(0, np.pi, k + 2)[1:-1]) ** 0.7
                    self._pos = 0
        if self._shape is None:
            return 0.0
        value = float(self._shape[self._pos])
        self._pos += 1
        if self._pos >= len(self._shape):
            self._shape, self._since = None, 0.0
        return value


class _Recorder(MotionGenerator):
    """Runs the generator's causal prosody trackers over a clip and records each frame's `Drive`."""

    def __init__(self, fps: float):
        super().__init__(fps, MotionControls(seed=0))
        self.drives: list[Drive] = []

    def _frame(self, prosody, ahead_levels, past, rng) -> np.ndarray:
        self.drives.append(self._drive(prosody, ahead_levels, past))
        self._i += 1
        return np.zeros(len(PARAMS))


def drives(prosody: np.ndarray, fps: float = 25.0) -> list[Drive]:
    """Each frame's `Drive` for (T, 3) prosody rows (loudness, voicing, pitch), exactly as the generator
    computes it while it runs (the training data's conditioning)."""
    rec = _Recorder(fps)
    rec.push(prosody)
    rec.finish()
    return rec.drives
