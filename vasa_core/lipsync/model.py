"""The learned audio -> mouth model.

Features: the engine's one front end (`vasa_core.audio`: soxr to 16 kHz, `log_mel` with 40 bands 50-7600 Hz,
25 ms Hann windows centred every 10 ms).
Network: a small temporal convolution network (residual dilated 1-D convolutions).  The first three blocks
are centred (look 1+2+4 = 7 frames ahead), the rest are causal, so the total lookahead is 70 ms of frames +
12.5 ms of analysis window = 82.5 ms (<= 100 ms: it can stream), and it sees ~0.7 s of the past.
Outputs the eight mouth parameters (sigmoid) at 100 Hz plus viseme-class logits (training aid only);
`LearnedMouth.predict` pools them to video frames (mean; max for closures so a 40 ms p/b/m is not lost).

Two implementations of one network: `MouthNet` (torch) is what trains (train.py, realtune.py);
`MouthNetNumpy` is what infers. Inference never imports torch: importing it costs ~1.5 s of a cold
`generate` on a 2-core machine (measured with `python -X importtime`), more than the network's work on a
10-s clip (~0.1 s), and numpy gives the same numbers (< 1e-4, tested). `MouthNet` is built on first access
(`from vasa_core.lipsync.model import MouthNet` imports torch then).

Weights: one file, `assets/lipsync.npz`, written only by `save_weights` (float16 weights, float32 feature
normalisation, and a JSON `meta` entry with the architecture (channels, blocks) and the calibration fields),
read by `load_weights`, so a retrained network with other channels or blocks drops in. Checkpoints in the
older torch format (`torch.save`) still load, through torch; `python -m vasa_core.lipsync.model convert IN.pt
OUT.npz` rewrites one with `save_weights`.
"""
from __future__ import annotations

import argparse
import functools
import json
import zipfile
from pathlib import Path

import numpy as np
from scipy.special import erf, expit
from threadpoolctl import threadpool_limits

from .. import ASSETS
from ..audio import HOP as FEAT_HOP, SAMPLE_RATE as FEAT_SR, WIN, log_mel, resample_samples
from .phonemes import JAW, LLD, MOUTH_PARAMS, NP, VISEMES, PRS, TUCK, TNG

FEAT_HOP_S = FEAT_HOP / FEAT_SR
N_MELS = 40
MEL_RANGE = (50.0, 7600.0)
DEFAULT_WEIGHTS = ASSETS / "lipsync.npz"
WEIGHTS_FORMAT = "vasa-mouthnet-1"
# (dilation, centred) of each residual block: centred blocks look d frames ahead, causal ones none
BLOCKS = ((1, True), (2, True), (4, True), (1, False), (2, False), (4, False), (8, False), (16, False))
LAYER_NORM_EPS = 1e-5     # torch.nn.LayerNorm's default


def _logmel_range(x: np.ndarray, start: int, stop: int, offset: int = 0) -> np.ndarray:
    """The model's features: `vasa_core.audio.log_mel` frames start..stop-1 with 40 bands, 50-7600 Hz."""
    return log_mel(x, start, stop, offset, n_mels=N_MELS, fmin=MEL_RANGE[0], fmax=MEL_RANGE[1], eps=1e-9)


def logmel(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """(T, 40) float32; frame t is centred at t * 10 ms (audio resampled to 16 kHz by the engine's soxr)."""
    x = resample_samples(samples, int(sample_rate), FEAT_SR)
    n = int(np.ceil(len(x) / FEAT_HOP)) if len(x) else 0
    return _logmel_range(x, 0, n)


DITHER = np.float32(10 ** (-85 / 20))


def dither(samples: np.ndarray) -> np.ndarray:
    """Every training clip has a noise floor of at least -90 dBFS; digital silence (exact zeros) would be far
    outside what the model saw, so inference adds a fixed, deterministic -85 dBFS dither."""
    x = np.asarray(samples, np.float32).reshape(-1)
    return x + np.random.default_rng(0).standard_normal(len(x)).astype(np.float32) * DITHER


def lookahead_frames(blocks) -> int:
    """Feature frames a network output needs after its own: the centred blocks' dilations."""
    return sum(d for d, centred in blocks if centred)


def past_frames(blocks) -> int:
    """Feature frames before an output that can change it (+1): each block sees d (centred) or 2d back."""
    return sum(d if centred else 2 * d for d, centred in blocks) + 1


# ------------------------------------------------------------------------------------------------ weights
def save_weights(path, net, **fields) -> None:
    """Write a `MouthNet` (torch) to `path` in the one format inference reads: an .npz holding the state dict
    (float32 tensors stored as float16, except the feature normalisation `mu`/`sd`) and `meta`, a JSON string
    with the format name, channels, n_mels, blocks and `fields` (calibration such as jaw_gain, lead_ms,
    pool_ms, and training notes: JSON values, numpy / torch scalars accepted)."""
    arrays = {}
    for k, v in net.state_dict().items():
        a = v.detach().cpu().numpy()
        arrays[k] = a.astype(np.float32 if k in ("mu", "sd") else np.float16) if a.dtype == np.float32 else a
    meta = {"format": WEIGHTS_FORMAT, "channels": int(net.channels), "n_mels": int(arrays["mu"].shape[0]),
            "blocks": [[int(d), bool(c)] for d, c in net.BLOCKS], **fields}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:                    # a file object: np.savez would append ".npz" to a name
        np.savez(f, meta=np.array(json.dumps(meta, default=_plain)), **arrays)


def _plain(value):
    """numpy / torch scalars and arrays in `save_weights` fields -> plain Python values for JSON."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"save_weights: {type(value).__name__} is not JSON-serialisable")


def _is_npz_weights(path: Path) -> bool:
    return zipfile.is_zipfile(path) and "meta.npy" in zipfile.ZipFile(path).namelist()


def load_weights(path) -> tuple[dict[str, np.ndarray], dict]:
    """(state dict as float32 numpy arrays, meta) from a file `save_weights` wrote, or from an older torch
    checkpoint ({"state_dict", "channels", calibration fields}; needs torch); meta always has channels, n_mels
    and blocks."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"lip-sync weights not found: {path}")
    if _is_npz_weights(path):
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            state = {k: z[k].astype(np.float32) for k in z.files if k != "meta"}
        if meta.get("format") != WEIGHTS_FORMAT:
            raise ValueError(f"{path}: unknown lip-sync weights format {meta.get('format')!r}")
    else:
        import torch
        ck = torch.load(str(path), map_location="cpu", weights_only=True)
        state = {k: v.float().numpy() for k, v in ck["state_dict"].items()}
        meta = {k: v for k, v in ck.items() if k != "state_dict"}
        meta.setdefault("channels", 128)
        meta["blocks"] = [list(b) for b in meta.get("blocks", BLOCKS)]
    meta.setdefault("n_mels", int(state["mu"].shape[0]))
    meta["blocks"] = tuple((int(d), bool(c)) for d, c in meta["blocks"])
    return state, meta


def load_torch_net(path):
    """(MouthNet in torch with the file's weights, meta): for fine-tuning from a shipped file."""
    import torch
    state, meta = load_weights(path)
    net = _torch_classes()["MouthNet"](channels=int(meta["channels"]), n_mels=int(meta["n_mels"]), blocks=meta["blocks"])
    net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    return net, meta


# ------------------------------------------------------------------------------------------------ networks
class MouthNetNumpy:
    """`MouthNet`'s forward pass in numpy, float32: what inference runs.

    Per block (channels C, dilation d): a 3-tap convolution with dilation d over the sequence zero-padded by
    (d, d) frames when centred or (2d, 0) when causal, GELU, a 1x1 projection, the residual, LayerNorm over C.
    """

    def __init__(self, state: dict[str, np.ndarray], blocks=BLOCKS):
        f32 = lambda a: np.ascontiguousarray(a, np.float32)
        self.BLOCKS = tuple((int(d), bool(c)) for d, c in blocks)
        self.mu, self.sd = f32(state["mu"]), f32(state["sd"])
        self.channels = int(state["inp.weight"].shape[0])
        self.inp = (f32(state["inp.weight"][:, :, 0].T), f32(state["inp.bias"]))
        self.blocks = []
        for i in range(len(self.BLOCKS)):
            w = state[f"blocks.{i}.conv.weight"]                          # (C_out, C_in, 3)
            self.blocks.append(dict(taps=[f32(w[:, :, k].T) for k in range(3)], b=f32(state[f"blocks.{i}.conv.bias"]),
                                    proj=f32(state[f"blocks.{i}.proj.weight"][:, :, 0].T),
                                    proj_b=f32(state[f"blocks.{i}.proj.bias"]),
                                    g=f32(state[f"blocks.{i}.norm.weight"]), beta=f32(state[f"blocks.{i}.norm.bias"])))
        self.out = (f32(state["out.weight"][:, :, 0].T), f32(state["out.bias"]))

    @property
    def lookahead_frames(self) -> int:
        return lookahead_frames(self.BLOCKS)

    def _one(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = (np.asarray(feats, np.float32) - self.mu) / self.sd           # (T, M)
        x = x @ self.inp[0] + self.inp[1]                                  # (T, C)
        n = len(x)
        for (d, centred), blk in zip(self.BLOCKS, self.blocks):
            left, right = (d, d) if centred else (2 * d, 0)
            xp = np.pad(x, ((left, right), (0, 0)))
            h = blk["b"] + sum(xp[k * d:k * d + n] @ blk["taps"][k] for k in range(3))
            h = np.float32(0.5) * h * (np.float32(1.0) + erf(h * np.float32(np.sqrt(0.5))))   # exact GELU
            y = x + (h @ blk["proj"] + blk["proj_b"])
            mean = y.mean(1, keepdims=True)
            var = ((y - mean) ** 2).mean(1, keepdims=True)
            x = (y - mean) / np.sqrt(var + np.float32(LAYER_NORM_EPS)) * blk["g"] + blk["beta"]
        o = x @ self.out[0] + self.out[1]
        return expit(o[:, :NP]).astype(np.float32), o[:, NP:].astype(np.float32)

    def __call__(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, T, M) or (T, M) log-mel rows -> (params in [0, 1], viseme logits), shaped (B, T, 8) / (B, T, V)
        (or without B)."""
        feats = np.asarray(feats, np.float32)
        # one BLAS thread: these matrices are small, and on a busy 2-core machine OpenBLAS's spinning worker
        # threads made the same call 5-10x slower (measured)
        with threadpool_limits(limits=1, user_api="blas"):
            if feats.ndim == 2:
                return self._one(feats)
            outs = [self._one(f) for f in feats]
        return np.stack([o[0] for o in outs]), np.stack([o[1] for o in outs])


@functools.cache
def _torch_classes() -> dict:
    """`Block` and `MouthNet` in torch, defined on first use so that importing this module stays torch-free."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class Block(nn.Module):
        def __init__(self, c, dilation, centred):
            super().__init__()
            self.d, self.centred = dilation, centred
            self.conv = nn.Conv1d(c, c, 3, dilation=dilation)
            self.proj = nn.Conv1d(c, c, 1)
            self.norm = nn.LayerNorm(c, eps=LAYER_NORM_EPS)

        def forward(self, x):                      # (B, C, T)
            left, right = (self.d, self.d) if self.centred else (2 * self.d, 0)
            h = self.conv(F.pad(x, (left, right)))
            h = self.proj(F.gelu(h))
            return self.norm((x + h).transpose(1, 2)).transpose(1, 2)

    class MouthNet(nn.Module):
        """The network in torch, for training: (B, T, M) log-mel -> (params (B, T, 8) in [0, 1], viseme logits)."""

        def __init__(self, channels=128, n_mels=N_MELS, blocks=BLOCKS):
            super().__init__()
            self.BLOCKS = tuple((int(d), bool(c)) for d, c in blocks)
            self.register_buffer("mu", torch.zeros(n_mels))
            self.register_buffer("sd", torch.ones(n_mels))
            self.inp = nn.Conv1d(n_mels, channels, 1)
            self.blocks = nn.ModuleList(Block(channels, d, c) for d, c in self.BLOCKS)
            self.out = nn.Conv1d(channels, NP + len(VISEMES), 1)
            self.channels = channels

        @property
        def lookahead_frames(self):
            return lookahead_frames(self.BLOCKS)

        def forward(self, feats):                  # (B, T, M) -> (params (B,T,8) in [0,1], viseme logits (B,T,V))
            x = ((feats - self.mu) / self.sd).transpose(1, 2)
            x = self.inp(x)
            for b in self.blocks:
                x = b(x)
            o = self.out(x).transpose(1, 2)
            return torch.sigmoid(o[..., :NP]), o[..., NP:]

    for cls in (Block, MouthNet):
        cls.__qualname__ = cls.__name__
    return {"Block": Block, "MouthNet": MouthNet}


def __getattr__(name: str):
    if name in ("Block", "MouthNet"):
        return _torch_classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _pool_frame(y100: np.ndarray, t: np.ndarray, first: int, c: float, fps: float,
                hop_s: float = FEAT_HOP_S, mean_half_s: float | None = None) -> np.ndarray:
    """One video frame pooled from 100 Hz rows around `c` seconds; `y100` holds rows `first`, `first+1`, ...
    and `t` their times, (arange(len) + first) * hop_s: the mean over c +- `mean_half_s` (default half a
    frame), but the max over c +- `closure_half_s(fps)` for lip_press / lower_lip_tuck / tongue_show so short
    closures survive."""
    half = 0.5 / fps
    mean_half = half if mean_half_s is None else mean_half_s

    def window(h):
        a = np.searchsorted(t, c - h - 1e-6, "left")            # rows with |t - c| <= h (a row exactly on
        b = np.searchsorted(t, c + h + 1e-6, "right")           # the edge counts, whatever float rounding)
        if b <= a:
            j = max(0, min(int(round(c / hop_s)) - first, len(y100) - 1))
            a, b = j, j + 1
        return y100[a:b]
    out = window(mean_half).mean(0)
    out[[PRS, TUCK, TNG]] = window(closure_half_s(fps))[:, [PRS, TUCK, TNG]].max(0)
    return out


def closure_half_s(fps: float) -> float:
    """Half-width (s) of the max-pooling window for closures: +-15 ms at 25-30 fps, so consecutive frames'
    windows leave gaps of at most 40 ms (no p/b/m closure is shorter) without holding a closure over 3 frames.
    Measured against max over the whole frame (+-20 ms at 25 fps): false closures in open vowels on held-out
    synthetic voices 0.36 -> 0.18 and languages 0.18 -> 0.14, p/b/m recall 0.85 -> 0.84 / 0.97 -> 0.95;
    real-video lip-gap r unchanged (0.372 -> 0.374)."""
    return min(0.5 / fps, max(0.015, 0.5 / fps - 0.02))


def pool_to_frames(y100: np.ndarray, fps: float, num_frames: int, hop_s: float = FEAT_HOP_S,
                   lead_s: float = 0.0, mean_half_s: float | None = None) -> np.ndarray:
    """100 Hz parameters -> video frames (frame i at time i/fps, pooled around i/fps + `lead_s`); see
    `_pool_frame`."""
    out = np.zeros((num_frames, y100.shape[1]), np.float32)
    if len(y100) == 0:
        return out
    t = np.arange(len(y100)) * hop_s          # once: per frame it would cost O(clip length) each
    for i in range(num_frames):
        out[i] = _pool_frame(y100, t, 0, i / fps + lead_s, fps, hop_s, mean_half_s)
    return out


class LearnedMouth:
    """predict(samples, sample_rate, fps, num_frames) -> (num_frames, 8) float32 in MOUTH_PARAMS order."""
    params = MOUTH_PARAMS
    name = "learned"

    def __init__(self, net: MouthNetNumpy, jaw_gain: float = 1.0, lead_ms: float = 0.0,
                 pool_ms: float | None = None):
        """net: the network in numpy. Calibration to real mouths (stored with the weights, measured with
        `evaluate --real`): jaw_gain scales the opening; frame i shows the network's output around i/fps +
        lead_ms (real lips move before the sound they shape), averaged over +-pool_ms (default half a frame)."""
        self.net = net
        self.jaw_gain = float(jaw_gain)
        self.lead_s = float(lead_ms) / 1000.0
        self.pool_half_s = None if pool_ms is None else float(pool_ms) / 1000.0

    def frame_delay_s(self, fps: float) -> float:
        """Audio a video frame needs after its own time: lead + pooling half-width + the network's lookahead
        (142.5 ms at 25 fps with the shipped calibration)."""
        half = max(0.5 / fps, self.pool_half_s or 0.0)
        return self.lead_s + half + self.lookahead_s

    def calibrate(self, y: np.ndarray) -> np.ndarray:
        """Network rows (k, 8) -> shipped rows: the opening (jaw_open, lower_lip_drop) scaled by `jaw_gain`, a
        calibration to real mouths stored with the weights (measured with `evaluate --real`)."""
        if self.jaw_gain != 1.0 and len(y):
            y = y.copy()
            y[:, [JAW, LLD]] = np.clip(y[:, [JAW, LLD]] * self.jaw_gain, 0.0, 1.0)
        return y

    @classmethod
    def load(cls, path) -> "LearnedMouth":
        """From a weights file (`load_weights`): the numpy network and the calibration stored with it."""
        state, meta = load_weights(path)
        pool = meta.get("pool_ms")
        return cls(MouthNetNumpy(state, meta["blocks"]), float(meta.get("jaw_gain", 1.0)),
                   float(meta.get("lead_ms", 0.0)), None if pool is None else float(pool))

    @classmethod
    def load_default(cls) -> "LearnedMouth":
        return cls.load(DEFAULT_WEIGHTS)

    @property
    def lookahead_s(self) -> float:
        return self.net.lookahead_frames * FEAT_HOP_S + WIN / 2 / FEAT_SR

    @property
    def _past_frames(self) -> int:
        return past_frames(self.net.BLOCKS)

    def predict_100hz(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """Network output (T, 8) at 100 Hz: soxr to 16 kHz, the fixed dither, log-mel, the network (the same
        steps, in the same order, as `MouthStream` on audio that arrives in pieces)."""
        x = dither(resample_samples(samples, int(sample_rate), FEAT_SR))
        f = _logmel_range(x, 0, int(np.ceil(len(x) / FEAT_HOP)) if len(x) else 0)
        if len(f) == 0:
            return np.zeros((0, NP), np.float32)
        # in chunks of 30 s with enough context on both sides that the result equals one pass over the whole
        # clip, so memory stays flat for long audio
        chunk, past = 3000, self._past_frames
        ahead = self.net.lookahead_frames + 1
        out = np.zeros((len(f), NP), np.float32)
        for s in range(0, len(f), chunk):
            a, b = max(0, s - past), min(len(f), s + chunk + ahead)
            y, _ = self.net(f[a:b])
            out[s:s + chunk] = self.calibrate(y[s - a:s - a + min(chunk, len(f) - s)])
        return out

    def predict(self, samples: np.ndarray, sample_rate: int, fps: float, num_frames: int) -> np.ndarray:
        y = self.predict_100hz(samples, sample_rate)
        return pool_to_frames(y, fps, int(num_frames), lead_s=self.lead_s, mean_half_s=self.pool_half_s)

    def stream(self, fps: float) -> "MouthStream":
        """A streaming predictor: feed 16 kHz audio as it arrives, get mouth rows per video frame."""
        return MouthStream(self, fps)


class MouthStream:
    """`LearnedMouth` on audio that arrives in pieces (VASA-style online mode).

    push(samples at 16 kHz) -> (k, 8) rows for the video frames that are final; finish(num_frames) -> the
    rest. Frame i (time i/fps) is final once the audio up to i/fps + `LearnedMouth.frame_delay_s(fps)` has
    arrived (lead + pooling half-width + network lookahead: 142.5 ms at 25 fps with the shipped calibration). The network sees the same windows as in one pass over the whole clip, so the rows
    equal `LearnedMouth.predict` up to float rounding (< 1e-5), whatever the chunk sizes.
    """

    def __init__(self, mouth: LearnedMouth, fps: float):
        self.mouth, self.fps = mouth, float(fps)
        self._rng = np.random.default_rng(0)                     # the same dither as `dither`
        self._x = np.zeros(0, np.float32)                        # 16 kHz samples from index _x0 on
        self._x0 = 0
        self._total = 0
        self._feats = np.zeros((0, N_MELS), np.float32)          # log-mel rows from index _f0 on
        self._f0 = 0
        self._y = np.zeros((0, NP), np.float32)                  # network output rows from index _y0 on
        self._y0 = 0
        self._frame = 0                                          # next video frame to emit

    def _step(self, final: bool, num_frames: int | None = None) -> np.ndarray:
        # 1. log-mel frames whose 512-sample window has arrived (all of them at the end, zero-padded)
        n_mel = self._f0 + len(self._feats)
        stop = int(np.ceil(self._total / FEAT_HOP)) if final else max(0, (self._total - WIN // 2) // FEAT_HOP + 1)
        if stop > n_mel:
            new = _logmel_range(self._x, n_mel, stop, self._x0)
            self._feats = np.concatenate([self._feats, new])
            keep = max(0, stop * FEAT_HOP - WIN // 2 - self._x0)
            self._x, self._x0 = self._x[keep:], self._x0 + keep
        n_mel = self._f0 + len(self._feats)
        # 2. network outputs that no longer depend on audio still to come
        n_y = self._y0 + len(self._y)
        ready = n_mel if final else max(0, n_mel - self.mouth.net.lookahead_frames)
        if ready > n_y:
            a = max(self._f0, n_y - self.mouth._past_frames)
            b = n_mel if final else min(n_mel, ready + self.mouth.net.lookahead_frames + 1)
            y, _ = self.mouth.net(self._feats[a - self._f0:b - self._f0])
            self._y = np.concatenate([self._y, self.mouth.calibrate(y[n_y - a:ready - a])])
            drop = max(0, ready - self.mouth._past_frames - self._f0)
            self._feats, self._f0 = self._feats[drop:], self._f0 + drop
        n_y = self._y0 + len(self._y)
        # 3. video frames whose pooling window is covered
        rows = []
        m = self.mouth
        half = max(0.5 / self.fps, m.pool_half_s or 0.0)
        while True:
            i = self._frame
            if final and i >= num_frames:
                break
            c = i / self.fps + m.lead_s
            if not final and not (n_y > 0 and (n_y - 1) * FEAT_HOP_S >= c + half - 1e-6):
                break
            if len(self._y):
                t = (np.arange(len(self._y)) + self._y0) * FEAT_HOP_S   # a few rows: the buffer is trimmed
                rows.append(_pool_frame(self._y, t, self._y0, c, self.fps, FEAT_HOP_S, m.pool_half_s))
            else:
                rows.append(np.zeros(NP, np.float32))
            self._frame += 1
            first_needed = max(0, int(np.floor((self._frame / self.fps + m.lead_s - half) / FEAT_HOP_S)) - 1)
            drop = min(max(0, first_needed - self._y0), max(0, len(self._y) - 1))
            self._y, self._y0 = self._y[drop:], self._y0 + drop
        return np.array(rows, np.float32).reshape(-1, NP)

    def push(self, samples16k: np.ndarray) -> np.ndarray:
        x = np.asarray(samples16k, np.float32).reshape(-1)
        x = x + self._rng.standard_normal(len(x)).astype(np.float32) * DITHER
        self._x = np.concatenate([self._x, x])
        self._total += len(x)
        return self._step(final=False)

    def finish(self, num_frames: int) -> np.ndarray:
        """The remaining rows up to `num_frames` video frames in all."""
        return self._step(final=True, num_frames=int(num_frames))


def cli(argv: list[str] | None = None) -> int:
    """python -m vasa_core.lipsync.model convert IN.pt OUT.npz: rewrite a torch checkpoint with `save_weights`."""
    parser = argparse.ArgumentParser(prog="python -m vasa_core.lipsync.model", description=cli.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("convert", help="a torch checkpoint -> the .npz weights inference reads")
    c.add_argument("src")
    c.add_argument("out")
    args = parser.parse_args(argv)
    net, meta = load_torch_net(args.src)
    fields = {k: v for k, v in meta.items() if k not in ("channels", "n_mels", "blocks", "format")}
    save_weights(args.out, net.eval(), **fields)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())
