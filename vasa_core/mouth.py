"""Audio -> mouth parameters: the v1 acoustic model.

A mouth model maps audio to the eight mouth parameters per video frame (all in [0, 1]):
  jaw_open        1 = wide open 'a'
  lip_funnel      rounding / pucker (o, u, w)
  lip_stretch     spread lips (i, e)
  lip_press       lips closed and pressed (p, b, m closures)
  upper_lip_raise upper lip lifted off the teeth
  lower_lip_drop  lower lip pulled down from the lower teeth
  lower_lip_tuck  lower lip against the upper teeth (f, v)
  tongue_show     tongue tip visible (th, l)

Every mouth model has the same call, `predict(samples, sample_rate, fps, num_frames) -> (num_frames, 8)`,
so the motion generator does not care which one it uses. `AcousticMouth` reads loudness and spectral
shape; the learned log-mel model (`vasa_core.lipsync.model`) streams live with 142.5 ms of delay; the default,
the Whisper mouth (`vasa_core.lipsync.whisper_mouth`), reads Whisper-base speech features and was fitted to
real tracked mouths (offline: a frame waits for its encoder window). A model with `live = False` is replaced
by the learned one for live streams (`TalkingFacePipeline.live_mouth`).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Protocol

import numpy as np

from .audio import SAMPLE_RATE, Audio, AudioFeatures, extract_features, resample_samples

MOUTH_PARAMS = ("jaw_open", "lip_funnel", "lip_stretch", "lip_press",
                "upper_lip_raise", "lower_lip_drop", "lower_lip_tuck", "tongue_show")


class MouthModel(Protocol):
    name: str

    def predict(self, samples: np.ndarray, sample_rate: int, fps: float, num_frames: int) -> np.ndarray:
        """Mouth parameters for `num_frames` video frames at `fps`: float32 array (num_frames, 8) in [0, 1]."""
        ...


@lru_cache(maxsize=1)
def _mel_centres() -> np.ndarray:
    """Centre frequency (Hz) of each of the feature extractor's mel bands."""
    from .audio import FMAX, FMIN, N_MELS, mel_frequencies
    return mel_frequencies(N_MELS + 2, FMIN, FMAX)[1:-1]


def _band(mel: np.ndarray, lo_hz: float, hi_hz: float) -> np.ndarray:
    """Power (linear) summed over the mel bands whose centres lie in [lo_hz, hi_hz]."""
    centres = _mel_centres()
    sel = (centres >= lo_hz) & (centres < hi_hz)
    return np.exp(mel[:, sel]).sum(axis=1) + 1e-10


def _smooth(x: np.ndarray, attack: float, release: float) -> np.ndarray:
    """First-order smoothing with different time constants (in samples) for rising and falling values."""
    a_up, a_dn = 1.0 / max(attack, 1.0), 1.0 / max(release, 1.0)
    y = np.empty_like(x)
    acc = x[0] if len(x) else 0.0
    for i, v in enumerate(x):          # a 1-pole recursion: sequential by nature, ~1 us per step
        acc += (v - acc) * (a_up if v > acc else a_dn)
        y[i] = acc
    return y


class AcousticMouth:
    """v1 mouth: loudness and spectral shape -> jaw, rounding, stretch; closures in short gaps.

    Rules (100 Hz, then resampled to video frames):
      - speech level = loudness between the utterance's noise floor (10th pct) and its peak (97th pct);
      - jaw opening grows with level and with the share of energy in the F1 region (300-1000 Hz);
      - rounding when voiced and the F2 region (1-2.5 kHz) is weak relative to F1; stretch when it is strong;
      - unvoiced hiss (energy above 3 kHz dominant) keeps the mouth nearly closed, teeth showing;
      - a short gap (30-200 ms) inside speech presses the lips shut (stop closures such as p, b, m);
      - silence relaxes to a closed, still mouth.
    """
    name = "acoustic"

    def predict(self, samples: np.ndarray, sample_rate: int, fps: float, num_frames: int) -> np.ndarray:
        samples = resample_samples(samples, sample_rate, SAMPLE_RATE)
        feats = extract_features(Audio(samples, SAMPLE_RATE))
        return self.predict_features(feats, fps, num_frames)

    def predict_features(self, feats: AudioFeatures, fps: float, num_frames: int) -> np.ndarray:
        n = len(feats.loudness)
        out = np.zeros((n, len(MOUTH_PARAMS)), np.float32)
        if n == 0:
            return np.zeros((num_frames, len(MOUTH_PARAMS)), np.float32)
        loud = feats.loudness
        floor = max(np.percentile(loud, 10), -75.0)
        peak = max(np.percentile(loud, 97), floor + 20.0)
        level = np.clip((loud - floor - 6.0) / (peak - floor - 6.0), 0.0, 1.0)
        speech = level > 0.12

        low = _band(feats.mel, 60, 300)
        f1 = _band(feats.mel, 300, 1000)
        f2 = _band(feats.mel, 1000, 2500)
        high = _band(feats.mel, 3000, 7600)
        total = low + f1 + f2 + high
        f1_share = f1 / total
        hiss = high / total
        f2_f1 = np.log(f2 / f1)
        voiced = feats.voicing > 0.35

        openness = np.clip((f1_share - 0.15) / 0.45, 0.0, 1.0)
        jaw = level ** 0.8 * (0.25 + 0.75 * openness)
        jaw = np.where(hiss > 0.45, np.minimum(jaw, 0.12), jaw)
        ref = np.median(f2_f1[voiced & speech]) if np.any(voiced & speech) else 0.0
        funnel = voiced * np.clip((ref - f2_f1 - 0.2) / 1.2, 0.0, 1.0) * (level > 0.2)
        stretch = voiced * np.clip((f2_f1 - ref - 0.1) / 1.0, 0.0, 1.0) * (level > 0.2)

        press = np.zeros(n, np.float32)
        quiet = ~speech
        i = 0
        while i < n:                    # find runs of quiet frames bordered by speech on both sides
            if quiet[i]:
                j = i
                while j < n and quiet[j]:
                    j += 1
                if i > 0 and j < n and 3 <= j - i <= 20:
                    press[i:j] = 1.0
                i = j
            else:
                i += 1

        out[:, 0] = _smooth(jaw * (1 - press), attack=3, release=5)
        out[:, 1] = _smooth(funnel, attack=6, release=8)
        out[:, 2] = _smooth(stretch, attack=5, release=8)
        out[:, 3] = _smooth(press, attack=2, release=4)
        out[:, 5] = 0.5 * out[:, 0] * (1 - out[:, 1])           # lower lip follows the jaw a little
        out[:, 4] = 0.15 * out[:, 2]                              # spread vowels lift the upper lip slightly
        # lips anticipate the sound by ~40 ms
        out = np.concatenate([out[4:], np.repeat(out[-1:], 4, 0)], 0)
        t_video = np.arange(num_frames) / fps
        t_feat = np.arange(n) / feats.rate
        res = np.stack([np.interp(t_video, t_feat, out[:, k]) for k in range(out.shape[1])], 1)
        return np.clip(res, 0.0, 1.0).astype(np.float32)


def load_mouth_model(name: str = "default") -> MouthModel:
    """'default' ($VASA_LIPSYNC, else 'whisper') or 'whisper' -> the Whisper mouth
    (`vasa_core.lipsync.whisper_mouth`: Whisper-base features, a readout trained on real mouths; raises
    WhisperModelError with one sentence when the Whisper model is missing or damaged); 'acoustic' ->
    AcousticMouth; 'learned' -> the learned log-mel model (the live-stream mouth; FileNotFoundError without
    its weights)."""
    if name == "default":
        import os
        name = os.environ.get("VASA_LIPSYNC", "whisper")      # e.g. VASA_LIPSYNC=learned for a bench baseline
    if name == "acoustic":
        return AcousticMouth()
    if name == "whisper":
        from .lipsync.whisper_mouth import WhisperMouth
        return WhisperMouth.load_default()
    if name != "learned":
        raise ValueError(f"Unknown mouth model {name!r}: use default, whisper, learned or acoustic.")
    from .lipsync.model import LearnedMouth
    return LearnedMouth.load_default()
