"""The Whisper mouth: Whisper-base encoder features -> a linear readout trained on real tracked mouths.

    mouth = WhisperMouth.load_default()                 # assets/mouth_whisper.npz + the Whisper wheels
    params = mouth.predict(samples, sample_rate, fps, num_frames)   # (num_frames, 8) in MOUTH_PARAMS order

Features: `vasa_core.whisper` (encoder block `layers` of Whisper-base, 50 Hz, windows of `window_s`).
Readout: the features at the frame and at +-40 and +-80 ms (encoder frames j-4, j-2, j, j+2, j+4), each
standardised, times a ridge-regression matrix -> two "heads" at 50 Hz:
  open   the inner-lip gap, in units of a speaker's own gap s.d. (the training targets were z-scored per clip);
  width  the mouth width (corners), likewise.
The 50 Hz heads are pooled to video frames with `vasa_core.whisper.pool_to_fps` (a triangle over +-1 video
frame), which at 25 fps gives exactly the readout of 25-fps pooled features at +-1 and +-2 frames that
`tools/lipsync/whisper_train.py` fits on the tracked real mouths.
From heads to the face rig's parameters (the rig moves the inner-lip gap 0.43 inter-ocular distances (IOD) per
unit of jaw_open and the mouth width 0.165 IOD per unit of lip_stretch, 0.15 per unit of lip_funnel):
  jaw_open       = open_gain * (open - open_closed), clipped to [0, 1] (calibrated so the rig's gap range
                   p95 - p5 matches the real speakers' median range, times a render gain of 1.6: the rendered
                   video's tracked gap is about half the rig's, measured with `evaluate --real`)
  lower_lip_drop = 0.3 * jaw_open (lower teeth show on open vowels)
  lip_stretch / lip_funnel = width_gain * width where positive / negative (spread vs rounded)
  lip_press      = PRESS_MAX * (1 - jaw_open / PRESS_BELOW) while speech is heard and the jaw is nearly shut
  upper_lip_raise = 0.15 * lip_stretch; lower_lip_tuck, tongue_show = 0 (not predicted)
All of it times a loudness gate (0 below -65 dBFS, 1 above -50 dBFS over +-50 ms): no mouth motion in silence.

Streaming: `stream(fps)` feeds audio in pieces; each encoder window is run once its audio has arrived, so a
frame is final about one window (`window_s`) after its time. That suits the offline pipeline (which feeds
10-s pieces); it is not a live latency, so live streams keep the learned log-mel model (`live = False`).
`predict` is the stream fed the whole clip, so both give the same rows.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import ASSETS
from ..audio import SAMPLE_RATE, resample_samples
from ..whisper import FRAME_RATE, SAMPLES_PER_FRAME, WINDOW_MARGIN_S, load_encoder, pool_to_fps
from .phonemes import MOUTH_PARAMS, NP

DEFAULT_WEIGHTS = ASSETS / "mouth_whisper.npz"
WEIGHTS_FORMAT = "vasa-whisper-mouth-1"
OFFSETS = (-4, -2, 0, 2, 4)          # encoder frames (20 ms each) read around each output frame
HEADS = ("open", "width")
RIG_GAP_PER_JAW = 0.43 + 0.3 * 0.06  # IOD of inner-lip gap per unit jaw_open (with lower_lip_drop = 0.3 jaw)
RIG_WIDTH_PER_STRETCH = 0.165        # IOD of mouth width per unit lip_stretch
RIG_WIDTH_PER_FUNNEL = 0.15          # IOD of mouth width lost per unit lip_funnel
PRESS_MAX, PRESS_BELOW = 0.5, 0.08
GATE_DB = (-65.0, -50.0)             # loudness gate: silent below the first, open above the second (dBFS)
_IDX = {name: i for i, name in enumerate(MOUTH_PARAMS)}


@dataclass(frozen=True)
class Readout:
    """The trained readout. mu, sd: (len(OFFSETS) * D,) feature standardisation; weights (len(OFFSETS) * D,
    len(HEADS)); bias (len(HEADS),); meta: layers, window_s, offsets and the calibration (open_gain,
    open_closed, width_gain), plus training notes."""
    mu: np.ndarray
    sd: np.ndarray
    weights: np.ndarray
    bias: np.ndarray
    meta: dict

    def save(self, path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"format": WEIGHTS_FORMAT, **self.meta}
        with open(path, "wb") as f:
            np.savez(f, mu=self.mu.astype(np.float32), sd=self.sd.astype(np.float32),
                     weights=self.weights.astype(np.float16), bias=self.bias.astype(np.float32),
                     meta=np.array(json.dumps(meta)))

    @classmethod
    def load(cls, path) -> "Readout":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Whisper mouth weights not found: {path}")
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format") != WEIGHTS_FORMAT:
                raise ValueError(f"{path}: unknown Whisper mouth weights format {meta.get('format')!r}")
            return cls(z["mu"].astype(np.float32), z["sd"].astype(np.float32), z["weights"].astype(np.float32),
                       z["bias"].astype(np.float32), meta)


def context(feats: np.ndarray, offsets=OFFSETS) -> np.ndarray:
    """(T, D) rows -> (T, len(offsets) * D): row j holds rows j + o for o in offsets (edges repeated)."""
    lo, hi = -min(offsets), max(offsets)
    padded = np.pad(feats, ((lo, hi), (0, 0)), mode="edge")
    return np.concatenate([padded[lo + o:lo + o + len(feats)] for o in offsets], 1)


def loudness_gate(x16: np.ndarray, times_s: np.ndarray, first_sample: int = 0) -> np.ndarray:
    """Per time (s): 0 where the RMS level of the 16 kHz audio within +-50 ms is under GATE_DB[0] dBFS, 1 above
    GATE_DB[1], linear in between. `x16` holds the samples from index `first_sample` on (zeros outside)."""
    half = int(0.05 * SAMPLE_RATE)
    sq = np.concatenate([[0.0], np.cumsum(np.asarray(x16, np.float64) ** 2)])
    c = np.round(np.asarray(times_s) * SAMPLE_RATE).astype(int) - first_sample
    a, b = np.clip(c - half, 0, len(x16)), np.clip(c + half, 0, len(x16))
    ms = (sq[b] - sq[a]) / (2 * half)
    db = 10 * np.log10(ms + 1e-12)
    return np.clip((db - GATE_DB[0]) / (GATE_DB[1] - GATE_DB[0]), 0.0, 1.0).astype(np.float32)


class WhisperMouth:
    """predict(samples, sample_rate, fps, num_frames) -> (num_frames, 8) float32 in MOUTH_PARAMS order."""
    params = MOUTH_PARAMS
    name = "whisper"
    live = False           # a frame is final one encoder window after its time: offline streaming only

    def __init__(self, readout: Readout, encoder_source: str | None = None):
        self.readout = readout
        meta = readout.meta
        self.layers = int(meta["layers"])
        self.window_s = float(meta["window_s"])
        self.offsets = tuple(int(o) for o in meta.get("offsets", OFFSETS))
        self.encoder = load_encoder(encoder_source, self.layers)
        self.open_gain = float(meta["open_gain"])
        self.open_closed = float(meta["open_closed"])
        self.width_gain = float(meta["width_gain"])
        # standardisation folded into the matrix: heads = feats_ctx @ (W / sd) + (bias - (mu / sd) @ W)
        self._w = (readout.weights / readout.sd[:, None]).astype(np.float32)
        self._b = (readout.bias - (readout.mu / readout.sd) @ readout.weights).astype(np.float32)

    @classmethod
    def load(cls, path=DEFAULT_WEIGHTS, encoder_source: str | None = None) -> "WhisperMouth":
        return cls(Readout.load(path), encoder_source)

    @classmethod
    def load_default(cls) -> "WhisperMouth":
        return cls.load(DEFAULT_WEIGHTS)

    def heads_50hz(self, feats: np.ndarray) -> np.ndarray:
        """Encoder rows (T, D) -> heads (T, 2) at 50 Hz."""
        if len(feats) == 0:
            return np.zeros((0, len(HEADS)), np.float32)
        return context(feats, self.offsets) @ self._w + self._b

    def to_params(self, heads: np.ndarray, gate: np.ndarray) -> np.ndarray:
        """Heads at video frames (n, 2) and the loudness gate (n,) -> the eight mouth parameters (n, 8)."""
        out = np.zeros((len(heads), NP), np.float32)
        jaw = np.clip(self.open_gain * (heads[:, 0] - self.open_closed), 0.0, 1.0) * gate
        width = self.width_gain * heads[:, 1] * gate
        out[:, _IDX["jaw_open"]] = jaw
        out[:, _IDX["lower_lip_drop"]] = 0.3 * jaw
        out[:, _IDX["lip_stretch"]] = np.clip(width / RIG_WIDTH_PER_STRETCH, 0.0, 1.0)
        out[:, _IDX["lip_funnel"]] = np.clip(-width / RIG_WIDTH_PER_FUNNEL, 0.0, 1.0)
        out[:, _IDX["upper_lip_raise"]] = 0.15 * out[:, _IDX["lip_stretch"]]
        out[:, _IDX["lip_press"]] = PRESS_MAX * np.clip(1.0 - jaw / PRESS_BELOW, 0.0, 1.0) * (gate > 0.5)
        return out

    def predict(self, samples: np.ndarray, sample_rate: int, fps: float, num_frames: int) -> np.ndarray:
        x = resample_samples(samples, int(sample_rate), SAMPLE_RATE)
        s = self.stream(fps)
        return np.concatenate([s.push(x), s.finish(int(num_frames))])[:int(num_frames)]

    def stream(self, fps: float) -> "WhisperMouthStream":
        return WhisperMouthStream(self, fps)


class WhisperMouthStream:
    """`WhisperMouth` on 16 kHz audio that arrives in pieces: push(samples) -> rows (k, 8) of the video frames
    that are final; finish(num_frames) -> the rest. The encoder runs the same windows as
    `WhisperEncoder.encode` on the whole clip (window i starts at encoder frame i * core, core = window - 2 x
    margin, and keeps its middle), so the rows do not depend on how the audio was cut."""

    def __init__(self, mouth: WhisperMouth, fps: float):
        self.m, self.fps = mouth, float(fps)
        self.win = int(round(mouth.window_s * FRAME_RATE))
        self.margin = min(int(WINDOW_MARGIN_S * FRAME_RATE), self.win // 4)
        self.core = self.win - 2 * self.margin
        self._x = np.zeros(0, np.float32)      # 16 kHz samples from index _x0 on
        self._x0 = 0
        self._total = 0
        self._feats = np.zeros((0, mouth.encoder.dim), np.float32)   # encoder rows from index _f0 on
        self._f0 = 0
        self._window = 0                       # next encoder window to run
        self._heads = np.zeros((0, len(HEADS)), np.float32)          # 50 Hz heads from index _h0 on
        self._h0 = 0
        self._frame = 0                        # next video frame to emit
        self._gx = np.zeros(0, np.float32)     # 16 kHz samples from index _gx0 on, for the loudness gate
        self._gx0 = 0
        self._ahead = max(OFFSETS)
        self._span = max(1, int(np.ceil(FRAME_RATE / self.fps)))     # pooling reach in encoder frames

    def _run_windows(self, final: bool) -> None:
        """Encode every window whose audio is complete (all remaining ones when `final`)."""
        total_frames = -(-self._total // SAMPLES_PER_FRAME)
        while True:
            i = self._window
            a = i * self.core                                  # window start (encoder frames)
            keep_from = a + self.margin if i > 0 else 0
            keep_to = min(total_frames, (i + 1) * self.core + self.margin)
            end = (a + self.win) * SAMPLES_PER_FRAME
            if keep_from >= total_frames or (not final and self._total < end):
                break
            chunk = self._x[a * SAMPLES_PER_FRAME - self._x0:end - self._x0]
            window = np.zeros(self.win * SAMPLES_PER_FRAME, np.float32)
            window[:len(chunk)] = chunk
            feats = self.m.encoder.encode_window(window)
            self._feats = np.concatenate([self._feats, feats[keep_from - a:keep_to - a]])
            self._window += 1
            drop = min(len(self._x), self._window * self.core * SAMPLES_PER_FRAME - self._x0)
            self._x, self._x0 = self._x[drop:], self._x0 + drop

    def _step(self, final: bool, num_frames: int = 0) -> np.ndarray:
        self._run_windows(final)
        n_feat = self._f0 + len(self._feats)
        n_head = self._h0 + len(self._heads)
        ready = n_feat if final else max(0, n_feat - self._ahead)
        if ready > n_head:
            a = max(self._f0, n_head + min(OFFSETS))
            b = n_feat if final else min(n_feat, ready + self._ahead)
            block = self._feats[a - self._f0:b - self._f0]
            # edge rows repeat only at the true ends of the clip; inside, the context is real rows
            h = self.m.heads_50hz(block)[n_head - a:ready - a]
            self._heads = np.concatenate([self._heads, h])
            drop = max(0, ready + min(OFFSETS) - self._f0)
            self._feats, self._f0 = self._feats[drop:], self._f0 + drop
        n_head = self._h0 + len(self._heads)
        rows, times = [], []
        while True:
            k = self._frame
            if final and k >= num_frames:
                break
            c = k / self.fps * FRAME_RATE
            if not final and int(np.floor(c)) + self._span >= n_head:
                break
            times.append(k / self.fps)
            rows.append(self._pool(c, n_head))
            self._frame += 1
        keep = max(0, int(np.floor(self._frame / self.fps * FRAME_RATE)) - self._span - 1 - self._h0)
        keep = min(keep, max(0, len(self._heads) - 1))
        self._heads, self._h0 = self._heads[keep:], self._h0 + keep
        if not rows:
            return np.zeros((0, NP), np.float32)
        gate = loudness_gate(self._gx, np.array(times), self._gx0)
        # the gate needs the audio from 50 ms before the next frame on
        drop = max(0, min(int((self._frame / self.fps - 0.1) * SAMPLE_RATE) - self._gx0, len(self._gx)))
        self._gx, self._gx0 = self._gx[drop:], self._gx0 + drop
        return self.m.to_params(np.array(rows, np.float32), gate)

    def _pool(self, c: float, n_head: int) -> np.ndarray:
        if n_head == 0:
            return np.zeros(len(HEADS), np.float32)
        j = int(np.floor(c)) + np.arange(-self._span, self._span + 1)
        w = np.maximum(0.0, 1.0 - np.abs(j - c) * self.fps / FRAME_RATE)
        ok = (j >= 0) & (w > 0)
        jj = np.clip(j[ok], self._h0, n_head - 1) - self._h0
        return (w[ok, None] * self._heads[jj]).sum(0) / w[ok].sum()

    def push(self, samples16k: np.ndarray) -> np.ndarray:
        x = np.asarray(samples16k, np.float32).reshape(-1)
        self._x = np.concatenate([self._x, x])
        self._gx = np.concatenate([self._gx, x])
        self._total += len(x)
        return self._step(final=False)

    def finish(self, num_frames: int) -> np.ndarray:
        return self._step(final=True, num_frames=int(num_frames))
