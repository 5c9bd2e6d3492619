"""The learned audio -> mouth model.

Features: log-mel, 40 bands 50-7600 Hz, 16 kHz, 25 ms Hann window centred every 10 ms.
Network: a small temporal convolution network (residual dilated 1-D convolutions).  The first three blocks
are centred (look 1+2+4 = 7 frames ahead), the rest are causal, so the total lookahead is 70 ms of frames +
12.5 ms of analysis window = 82.5 ms (<= 100 ms: it can stream), and it sees ~0.7 s of the past.
Outputs the eight mouth parameters (sigmoid) at 100 Hz plus viseme-class logits (training aid only);
`LearnedMouth.predict` pools them to video frames (mean; max for closures so a 40 ms p/b/m is not lost).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .phonemes import MOUTH_PARAMS, NP, VISEMES, PRS, TUCK, TNG

FEAT_SR = 16000
FEAT_HOP = 160
FEAT_HOP_S = FEAT_HOP / FEAT_SR
N_FFT = 512
WIN = 400
N_MELS = 40
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[2] / "assets" / "lipsync.pt"


@lru_cache(maxsize=1)
def _mel_fb():
    import librosa
    return librosa.filters.mel(sr=FEAT_SR, n_fft=N_FFT, n_mels=N_MELS, fmin=50, fmax=7600).astype(np.float32)


def _to16k(x, sr):
    from .data import resample
    return resample(np.asarray(x, np.float32), int(sr), FEAT_SR)


def logmel(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """(T, 40) float32; frame t is centred at t * 10 ms."""
    x = _to16k(samples, sample_rate)
    n = int(np.ceil(len(x) / FEAT_HOP)) if len(x) else 0
    if n == 0:
        return np.zeros((0, N_MELS), np.float32)
    pad = np.pad(x, (N_FFT // 2, N_FFT // 2 + FEAT_HOP))
    w = np.zeros(N_FFT, np.float32)
    w[(N_FFT - WIN) // 2:(N_FFT - WIN) // 2 + WIN] = np.hanning(WIN)
    out = np.empty((n, N_MELS), np.float32)
    for s in range(0, n, 3000):          # 30 s at a time: memory stays flat however long the audio
        e = min(s + 3000, n)
        idx = np.arange(N_FFT)[None] + FEAT_HOP * np.arange(s, e)[:, None]
        spec = np.abs(np.fft.rfft(pad[idx] * w, axis=1)) ** 2
        out[s:e] = np.log(spec.astype(np.float32) @ _mel_fb().T + 1e-9)
    return out


def dither(samples: np.ndarray) -> np.ndarray:
    """Every training clip has a noise floor of at least -90 dBFS; digital silence (exact zeros) would be far
    outside what the model saw, so inference adds a fixed, deterministic -85 dBFS dither."""
    x = np.asarray(samples, np.float32).reshape(-1)
    return x + np.random.default_rng(0).standard_normal(len(x)).astype(np.float32) * np.float32(10 ** (-85 / 20))


class Block(nn.Module):
    def __init__(self, c, dilation, centred):
        super().__init__()
        self.d, self.centred = dilation, centred
        self.conv = nn.Conv1d(c, c, 3, dilation=dilation)
        self.proj = nn.Conv1d(c, c, 1)
        self.norm = nn.LayerNorm(c)

    def forward(self, x):                      # (B, C, T)
        left, right = (self.d, self.d) if self.centred else (2 * self.d, 0)
        h = self.conv(F.pad(x, (left, right)))
        h = self.proj(F.gelu(h))
        return self.norm((x + h).transpose(1, 2)).transpose(1, 2)


class MouthNet(nn.Module):
    BLOCKS = ((1, True), (2, True), (4, True), (1, False), (2, False), (4, False), (8, False), (16, False))

    def __init__(self, channels=128, n_mels=N_MELS):
        super().__init__()
        self.register_buffer("mu", torch.zeros(n_mels))
        self.register_buffer("sd", torch.ones(n_mels))
        self.inp = nn.Conv1d(n_mels, channels, 1)
        self.blocks = nn.ModuleList(Block(channels, d, c) for d, c in self.BLOCKS)
        self.out = nn.Conv1d(channels, NP + len(VISEMES), 1)
        self.channels = channels

    @property
    def lookahead_frames(self):
        return sum(d for d, c in self.BLOCKS if c)

    def forward(self, feats):                  # (B, T, M) -> (params (B,T,8) in [0,1], viseme logits (B,T,V))
        x = ((feats - self.mu) / self.sd).transpose(1, 2)
        x = self.inp(x)
        for b in self.blocks:
            x = b(x)
        o = self.out(x).transpose(1, 2)
        return torch.sigmoid(o[..., :NP]), o[..., NP:]


def pool_to_frames(y100: np.ndarray, fps: float, num_frames: int, hop_s: float = FEAT_HOP_S) -> np.ndarray:
    """100 Hz parameters -> video frames (frame i at time i/fps, window +-0.5/fps): mean, but max for
    lip_press / lower_lip_tuck / tongue_show so short closures survive."""
    out = np.zeros((num_frames, y100.shape[1]), np.float32)
    if len(y100) == 0:
        return out
    t = np.arange(len(y100)) * hop_s
    half = 0.5 / fps
    for i in range(num_frames):
        c = i / fps
        a, b = np.searchsorted(t, [c - half, c + half])
        if b <= a:
            j = min(int(round(c / hop_s)), len(y100) - 1)
            a, b = j, j + 1
        seg = y100[a:b]
        out[i] = seg.mean(0)
        out[i, [PRS, TUCK, TNG]] = seg[:, [PRS, TUCK, TNG]].max(0)
    return out


class LearnedMouth:
    """predict(samples, sample_rate, fps, num_frames) -> (num_frames, 8) float32 in MOUTH_PARAMS order."""
    params = MOUTH_PARAMS
    name = "learned"

    def __init__(self, net: MouthNet):
        self.net = net.eval()

    @classmethod
    def load(cls, path) -> "LearnedMouth":
        ck = torch.load(str(path), map_location="cpu", weights_only=True)
        net = MouthNet(channels=int(ck.get("channels", 128)))
        net.load_state_dict({k: v.float() for k, v in ck["state_dict"].items()})
        return cls(net)

    @classmethod
    def load_default(cls) -> "LearnedMouth":
        return cls.load(DEFAULT_WEIGHTS)

    @property
    def lookahead_s(self) -> float:
        return self.net.lookahead_frames * FEAT_HOP_S + WIN / 2 / FEAT_SR

    @property
    def context_s(self) -> float:
        """How much past audio an output depends on (a streaming window needs this much history)."""
        past = sum(d if c else 2 * d for d, c in self.net.BLOCKS)
        return past * FEAT_HOP_S + WIN / 2 / FEAT_SR

    @torch.inference_mode()
    def predict_100hz(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        f = logmel(dither(samples), sample_rate)
        if len(f) == 0:
            return np.zeros((0, NP), np.float32)
        # in chunks of 30 s with enough context on both sides that the result equals one pass over the whole
        # clip, so memory stays flat for long audio
        chunk, past = 3000, sum(d if c else 2 * d for d, c in self.net.BLOCKS) + 1
        ahead = self.net.lookahead_frames + 1
        out = np.zeros((len(f), NP), np.float32)
        ft = torch.from_numpy(f)
        for s in range(0, len(f), chunk):
            a, b = max(0, s - past), min(len(f), s + chunk + ahead)
            y, _ = self.net(ft[a:b][None])
            out[s:s + chunk] = y[0, s - a:s - a + min(chunk, len(f) - s)].numpy()
        return out

    def predict(self, samples: np.ndarray, sample_rate: int, fps: float, num_frames: int) -> np.ndarray:
        y = self.predict_100hz(samples, sample_rate)
        return pool_to_frames(y, fps, int(num_frames))
