"""Audio loading and features.

`load_audio` decodes any common container (wav, mp3, m4a/aac, ogg, flac; any sample rate; mono or stereo)
with PyAV and returns mono float32 samples at 16 kHz. `extract_features` turns samples into per-10 ms
features (log-mel, loudness, voicing, pitch) and `AudioFeatures.at_fps` resamples them to video frames.

One resampler and one log-mel front end serve the whole engine (decoding, prosody, both mouth models, live
streams, the lip-sync training data and its evaluation), so every path sees the same numbers:
  - `resample_samples` / `resample_stream`: soxr, "HQ" quality; a stream fed in any chunks gives exactly the
    samples of one call on the whole clip;
  - `log_mel`: power spectra of 25 ms Hann windows centred every 10 ms on 16 kHz audio, a mel filter bank
    (band count and range per consumer), natural log.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import AudioError

SAMPLE_RATE = 16_000        # Hz, the engine's internal rate
HOP = 160                   # samples = 10 ms: features are at 100 Hz
WIN = 400                   # samples = 25 ms analysis window
N_MELS = 80
FMIN, FMAX = 60.0, 7600.0   # Hz, mel range
MAX_SECONDS_DEFAULT = 3600.0


@dataclass(frozen=True)
class Audio:
    """Decoded audio: `samples` float32 mono in [-1, 1], shape (N,), at `sample_rate` Hz."""
    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / float(self.sample_rate)


def peak(samples: np.ndarray) -> float:
    """Largest absolute sample value, without a whole-clip temporary array."""
    return float(max(np.max(samples), -np.min(samples))) if len(samples) else 0.0


@dataclass(frozen=True)
class AudioFeatures:
    """Per-10 ms audio features (100 frames per second).

    mel:      (N, 80) log-mel energies (`log_mel`: natural log of power + 1e-9)
    loudness: (N,) RMS level in dBFS (about -100 for digital silence, 0 for full scale)
    voicing:  (N,) periodicity in [0, 1] (normalised autocorrelation peak in the 60-500 Hz lag range)
    pitch:    (N,) fundamental frequency in Hz, 0 where unvoiced
    duration: length of the audio in seconds
    """
    mel: np.ndarray
    loudness: np.ndarray
    voicing: np.ndarray
    pitch: np.ndarray
    duration: float

    rate: float = 100.0  # feature frames per second

    def num_video_frames(self, fps: float) -> int:
        """Number of video frames covering the audio (duration within half a frame)."""
        return max(1, int(round(self.duration * fps)))

    def at_fps(self, values: np.ndarray, fps: float) -> np.ndarray:
        """Linearly resample a per-10 ms array (N, ...) to video frames (T, ...) at `fps`."""
        n = self.num_video_frames(fps)
        t_video = np.arange(n) / fps
        t_feat = np.arange(len(values)) / self.rate
        if values.ndim == 1:
            return np.interp(t_video, t_feat, values).astype(np.float32)
        return np.stack([np.interp(t_video, t_feat, values[:, k]) for k in range(values.shape[1])], 1).astype(np.float32)


def iter_audio(source: str | Path | bytes, sample_rate: int = SAMPLE_RATE,
               max_seconds: float = MAX_SECONDS_DEFAULT, piece_s: float = 1.0) -> Iterator[np.ndarray]:
    """Decode an audio file (path or bytes) piece by piece: mono float32 arrays in [-1, 1] of about `piece_s`
    seconds at `sample_rate`, so a long file never has to sit in memory whole.

    Raises AudioError with a specific message for a missing, unreadable, corrupt, empty or too-long file (the
    last as soon as the limit is crossed) and for NaN samples.
    """
    import av

    if isinstance(source, (bytes, bytearray)):
        handle = io.BytesIO(source)
        name = "the audio"
    else:
        path = Path(source)
        if not path.is_file():
            raise AudioError(f"Audio file not found: {path}")
        if path.stat().st_size == 0:
            raise AudioError(f"The audio file {path.name} is empty.")
        handle = str(path)
        name = path.name
    piece = max(1, int(piece_s * sample_rate))
    pending: list[np.ndarray] = []
    n_pending = total = 0

    def ready(final: bool) -> Iterator[np.ndarray]:
        nonlocal pending, n_pending
        while n_pending >= piece or (final and n_pending):
            joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
            out, rest = joined[:piece], joined[piece:]
            pending, n_pending = ([rest] if len(rest) else []), len(rest)
            if not np.isfinite(np.sum(out, dtype=np.float64)):
                raise AudioError(f"{name} decodes to invalid (NaN) samples; it is probably corrupt.")
            yield np.clip(out, -1.0, 1.0)

    def add(arr: np.ndarray) -> None:
        nonlocal n_pending, total
        if len(arr):
            pending.append(arr)
            n_pending += len(arr)
            total += len(arr)

    try:
        with av.open(handle, mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AudioError(f"{name} contains no audio track.")
            # PyAV only converts to float mono at the file's own rate; the rate change is the engine's one
            # resampler (soxr), so a file and the same audio streamed in pieces give the same samples
            mixer = soxr_stream = None
            for frame in container.decode(container.streams.audio[0]):
                if mixer is None:
                    source_rate = int(frame.sample_rate)
                    mixer = av.AudioResampler(format="flt", layout="mono", rate=source_rate)
                    soxr_stream = resample_stream(source_rate, sample_rate)
                for out in mixer.resample(frame):
                    arr = out.to_ndarray().reshape(-1)
                    add(soxr_stream.resample_chunk(arr, last=False) if soxr_stream else arr)
                    if total > (max_seconds + 1) * sample_rate:
                        raise AudioError(
                            f"{name} is longer than the limit of {max_seconds:.0f} s; please trim it.")
                yield from ready(final=False)
            if mixer is not None:
                for out in mixer.resample(None):
                    arr = out.to_ndarray().reshape(-1)
                    add(soxr_stream.resample_chunk(arr, last=False) if soxr_stream else arr)
                if soxr_stream is not None:
                    add(np.asarray(soxr_stream.resample_chunk(np.zeros(0, np.float32), last=True), np.float32))
            yield from ready(final=True)
    except AudioError:
        raise
    except Exception as exc:  # PyAV raises many error types for corrupt or foreign files
        raise AudioError(f"Could not decode {name} as audio (wav, mp3, m4a/aac, ogg or flac): {exc}") from None
    if total > max_seconds * sample_rate:
        raise AudioError(f"{name} is longer than the limit of {max_seconds:.0f} s; please trim it.")


def _audio_name(source) -> str:
    return "the audio" if isinstance(source, (bytes, bytearray)) else Path(source).name


def load_audio(source: str | Path | bytes, max_seconds: float = MAX_SECONDS_DEFAULT,
               sample_rate: int = SAMPLE_RATE) -> Audio:
    """Decode a whole audio file (path or bytes) to mono float32 at `sample_rate` (default 16 kHz).

    Raises AudioError with a specific message for a missing, unreadable, corrupt, empty, too-short or
    too-long file.
    """
    buffer = _Growing(sample_rate)
    for piece in iter_audio(source, sample_rate, max_seconds):
        buffer.append(piece)
    samples = buffer.array()
    if len(samples) < sample_rate // 10:
        raise AudioError(f"{_audio_name(source)} is shorter than 0.1 s; there is nothing to animate.")
    return Audio(samples, sample_rate)


@dataclass(frozen=True)
class AudioInfo:
    """What one decoding pass learns about an audio file: length (seconds), peak |sample|, and the SHA-256 of
    its float32 samples at the scanned rate (the audit log's audio hash)."""
    duration: float
    peak: float
    sha256: str


class AudioScan:
    """Length, peak and hash of audio seen piece by piece (e.g. while it is also being turned into motion)."""

    def __init__(self, sample_rate: int):
        import hashlib
        self.sample_rate = sample_rate
        self._sha, self._n, self._peak = hashlib.sha256(), 0, 0.0

    def add(self, piece: np.ndarray) -> None:
        self._sha.update(memoryview(np.ascontiguousarray(piece, np.float32)))
        self._n += len(piece)
        self._peak = max(self._peak, peak(piece))

    def info(self, name: str = "the audio") -> AudioInfo:
        """What was seen; AudioError when it is shorter than 0.1 s."""
        if self._n < self.sample_rate // 10:
            raise AudioError(f"{name} is shorter than 0.1 s; there is nothing to animate.")
        return AudioInfo(duration=self._n / self.sample_rate, peak=self._peak, sha256=self._sha.hexdigest())


def scan_audio(source: str | Path | bytes, sample_rate: int = SAMPLE_RATE,
               max_seconds: float = MAX_SECONDS_DEFAULT) -> AudioInfo:
    """Decode a file once without keeping it: the same checks as `load_audio`, plus length, peak and hash."""
    scan = AudioScan(sample_rate)
    for piece in iter_audio(source, sample_rate, max_seconds):
        scan.add(piece)
    return scan.info(_audio_name(source))


class _Growing:
    """A float32 sample buffer filled piece by piece, doubling when full (collecting the pieces and
    concatenating them at the end would need twice the audio's size at once)."""

    def __init__(self, sample_rate: int):
        self._data = np.empty(sample_rate * 10, np.float32)
        self.size = 0

    def append(self, piece: np.ndarray) -> None:
        if self.size + len(piece) > len(self._data):
            bigger = np.empty(max(2 * len(self._data), self.size + len(piece)), np.float32)
            bigger[:self.size] = self._data[:self.size]
            self._data = bigger
        self._data[self.size:self.size + len(piece)] = piece
        self.size += len(piece)

    def array(self) -> np.ndarray:
        """The samples (a copy when the buffer is much larger than what was filled, else a view)."""
        if self.size < 0.9 * len(self._data):
            return self._data[:self.size].copy()
        return self._data[:self.size]


RESAMPLE_QUALITY = "HQ"   # soxr quality used everywhere


def speech_band_energy(samples: np.ndarray, sample_rate: int = 16000) -> tuple[np.ndarray, np.ndarray]:
    """Log energy of the 300-3400 Hz band at 100 Hz (25 ms Hann windows) of mono samples -> (times in s, log
    energy); empty arrays for under one window. A model-free loudness-of-speech track: the detector's lip-audio
    cue and the real-video evaluation's file-offset estimate use it."""
    win, hop = int(round(0.025 * sample_rate)), int(round(0.01 * sample_rate))
    if len(samples) < win:
        return np.zeros(0), np.zeros(0)
    n = 1 + (len(samples) - win) // hop
    idx = np.arange(win)[None, :] + hop * np.arange(n)[:, None]
    spec = np.abs(np.fft.rfft(samples[idx] * np.hanning(win)[None, :], axis=1)) ** 2
    freqs = np.fft.rfftfreq(win, 1.0 / sample_rate)
    band = (freqs >= 300) & (freqs <= 3400)
    return (np.arange(n) * hop + win / 2) / sample_rate, np.log(spec[:, band].sum(axis=1) + 1e-6)


def resample_samples(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Mono float32 samples at another rate (soxr). Equal to `resample_stream` fed the same samples."""
    x = np.asarray(x, np.float32).reshape(-1)
    if int(sr_in) == int(sr_out) or len(x) == 0:
        return x
    import soxr
    return np.asarray(soxr.resample(x, int(sr_in), int(sr_out), quality=RESAMPLE_QUALITY), np.float32)


def resample_stream(sr_in: int, sr_out: int):
    """A soxr stream resampler (`resample_chunk(x, last=False)`), or None when the rates are equal."""
    if int(sr_in) == int(sr_out):
        return None
    import soxr
    return soxr.ResampleStream(int(sr_in), int(sr_out), 1, dtype="float32", quality=RESAMPLE_QUALITY)


def resample(audio: Audio, sample_rate: int = SAMPLE_RATE) -> Audio:
    """The same audio at another sample rate (`resample_samples`)."""
    if audio.sample_rate == sample_rate:
        return audio
    return Audio(resample_samples(audio.samples, audio.sample_rate, sample_rate), sample_rate)


def _frames(x: np.ndarray, win: int, hop: int, start: int, stop: int, offset: int = 0) -> np.ndarray:
    """Frames `start..stop-1` (frame i centred on sample i*hop) of a signal of which `x` holds the samples
    from index `offset` on; zero-padded before sample 0 and after the end of `x`: (n, win) float32."""
    idx = (np.arange(start, stop) * hop - win // 2)[:, None] + np.arange(win)[None, :] - offset
    valid = (idx >= 0) & (idx < len(x))
    return np.where(valid, x[np.clip(idx, 0, max(len(x) - 1, 0))], 0.0).astype(np.float32)


BLOCK = 3000   # feature frames (30 s) computed at a time, so memory stays flat however long the audio


N_FFT = 512
_MEL_CACHE: dict[tuple, np.ndarray] = {}
_HANN = np.hanning(WIN).astype(np.float32)


# Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz (200/3 Hz per mel), logarithmic above.
_MEL_HZ_PER_MEL = 200.0 / 3
_MEL_LOG_HZ = 1000.0                               # Hz where the log part starts
_MEL_LOG_MEL = _MEL_LOG_HZ / _MEL_HZ_PER_MEL       # the same point in mels (15)
_MEL_LOG_STEP = np.log(6.4) / 27.0                 # log(Hz) per mel above 1 kHz


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Frequencies (Hz) on Slaney's mel scale (the same numbers as `librosa.hz_to_mel`, htk=False)."""
    hz = np.asarray(hz, np.float64)
    log_part = _MEL_LOG_MEL + np.log(np.maximum(hz, _MEL_LOG_HZ) / _MEL_LOG_HZ) / _MEL_LOG_STEP
    return np.where(hz >= _MEL_LOG_HZ, log_part, hz / _MEL_HZ_PER_MEL)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of `hz_to_mel`: mels to Hz (the same numbers as `librosa.mel_to_hz`, htk=False)."""
    mel = np.asarray(mel, np.float64)
    log_part = _MEL_LOG_HZ * np.exp(_MEL_LOG_STEP * (np.maximum(mel, _MEL_LOG_MEL) - _MEL_LOG_MEL))
    return np.where(mel >= _MEL_LOG_MEL, log_part, _MEL_HZ_PER_MEL * mel)


def mel_frequencies(n: int, fmin: float, fmax: float) -> np.ndarray:
    """`n` frequencies (Hz) evenly spaced in mels from `fmin` to `fmax` (as `librosa.mel_frequencies`)."""
    return mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), int(n)))


def mel_basis(n_mels: int = N_MELS, fmin: float = FMIN, fmax: float = FMAX) -> np.ndarray:
    """(n_mels, N_FFT // 2 + 1) float32 mel filter bank at 16 kHz, cached: triangles on Slaney's mel scale with
    Slaney's area normalisation, equal to `librosa.filters.mel(sr=16000, n_fft=512, ...)` (tested). Built here
    in numpy because importing librosa's filter module (scipy.signal, numba) costs ~1 s of a cold start."""
    key = (int(n_mels), float(fmin), float(fmax))
    if key not in _MEL_CACHE:
        freqs = np.fft.rfftfreq(N_FFT, d=1.0 / SAMPLE_RATE)                   # (N_FFT // 2 + 1,) Hz
        edges = mel_frequencies(int(n_mels) + 2, fmin, fmax)                   # band i spans edges[i..i+2]
        width = np.diff(edges)
        ramps = edges[:, None] - freqs[None, :]
        rising, falling = -ramps[:-2] / width[:-1, None], ramps[2:] / width[1:, None]
        weights = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)
        weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]                   # Slaney: equal area per band
        _MEL_CACHE[key] = weights
    return _MEL_CACHE[key]


def log_mel(x: np.ndarray, start: int, stop: int, offset: int = 0, n_mels: int = N_MELS, fmin: float = FMIN,
            fmax: float = FMAX, eps: float = 1e-9) -> np.ndarray:
    """The engine's one log-mel front end: frames `start..stop-1` (frame i = the 25 ms Hann window centred on
    sample i*HOP) of a 16 kHz signal of which `x` holds the samples from index `offset` on (zeros outside);
    log(mel power + eps), (stop - start, n_mels) float32. Computed BLOCK frames at a time (flat memory)."""
    out = np.empty((max(0, stop - start), n_mels), np.float32)
    basis = mel_basis(n_mels, fmin, fmax).T
    for s in range(start, stop, BLOCK):
        e = min(s + BLOCK, stop)
        spec = np.abs(np.fft.rfft(_frames(x, WIN, HOP, s, e, offset) * _HANN, n=N_FFT)) ** 2
        out[s - start:e - start] = np.log(spec.astype(np.float32) @ basis + np.float32(eps))
    return out


def _loudness(frames: np.ndarray) -> np.ndarray:
    """RMS level in dBFS of each row of (n, WIN) frames."""
    rms = np.sqrt(np.mean(frames ** 2, axis=1) + 1e-12)
    return (20 * np.log10(rms + 1e-5)).astype(np.float32)


def extract_features(audio: Audio) -> AudioFeatures:
    """Compute 100 Hz features from 16 kHz mono audio. Cost: about 1 ms per second of audio on one core."""
    audio = resample(audio, SAMPLE_RATE)
    x = audio.samples.astype(np.float32)
    n_frames = int(np.ceil(len(x) / HOP))
    mel, loudness, voicing, pitch = [], [], [], []
    for start in range(0, n_frames, BLOCK):
        stop = min(start + BLOCK, n_frames)
        mel.append(log_mel(x, start, stop))
        loudness.append(_loudness(_frames(x, WIN, HOP, start, stop)))
        v, f0 = _periodicity(x, start, stop)
        voicing.append(v)
        pitch.append(f0)
    return AudioFeatures(mel=np.concatenate(mel), loudness=np.concatenate(loudness),
                         voicing=np.concatenate(voicing), pitch=np.concatenate(pitch), duration=audio.duration)


class ProsodyStream:
    """Loudness (dBFS), voicing and pitch (Hz) at 100 Hz, computed while 16 kHz audio arrives.

    `push(samples)` returns the rows (k, 3) whose analysis windows are complete (frame i needs the audio up
    to i*10 ms + 20 ms); `finish()` returns the rest, zero-padded at the end. The numbers are the same as
    `extract_features`' loudness, voicing and pitch (same windows, same code).
    """
    NEED = 320   # samples of audio a frame needs after its centre (half of the 40 ms periodicity window)

    def __init__(self):
        self._buf = np.zeros(0, np.float32)
        self._offset = 0            # absolute index of self._buf[0]
        self._next = 0              # next frame to compute
        self._total = 0             # samples received

    def _compute(self, stop: int) -> np.ndarray:
        start = self._next
        if stop <= start:
            return np.zeros((0, 3), np.float32)
        loud = _loudness(_frames(self._buf, WIN, HOP, start, stop, self._offset))
        voicing, pitch = _periodicity(self._buf, start, stop, self._offset)
        self._next = stop
        keep_from = max(0, stop * HOP - self.NEED - self._offset)        # what the next frame's window needs
        self._buf, self._offset = self._buf[keep_from:], self._offset + keep_from
        return np.stack([loud, voicing, pitch], 1)

    def push(self, samples: np.ndarray) -> np.ndarray:
        samples = np.asarray(samples, np.float32).reshape(-1)
        self._buf = np.concatenate([self._buf, samples])
        self._total += len(samples)
        return self._compute(max(0, (self._total - self.NEED) // HOP + 1) if self._total >= self.NEED else 0)

    def finish(self) -> np.ndarray:
        return self._compute(int(np.ceil(self._total / HOP)))


def _periodicity(x: np.ndarray, start: int, stop: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Voicing strength and f0 per 10 ms from the normalised autocorrelation of 40 ms windows.

    Hand-written instead of librosa.pyin: pyin costs ~0.5 s per second of audio here, this costs ~3 ms.
    """
    win = 640                      # 40 ms: two periods of 50 Hz
    lag_min, lag_max = SAMPLE_RATE // 500, SAMPLE_RATE // 60
    frames = _frames(x, win, HOP, start, stop, offset)
    frames = frames - frames.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(frames, n=2 * win)
    ac = np.fft.irfft(np.abs(spec) ** 2, n=2 * win)[:, : lag_max + 1]
    energy = ac[:, :1] + 1e-9
    nac = ac / energy
    seg = nac[:, lag_min : lag_max + 1]
    best = np.argmax(seg, axis=1)
    peak = seg[np.arange(len(seg)), best]
    lag = (best + lag_min).astype(np.float32)
    loud = 10 * np.log10(energy[:, 0] / win + 1e-12)
    voicing = np.clip((peak - 0.3) / 0.6, 0.0, 1.0) * (loud > -50)
    pitch = np.where(voicing > 0.3, SAMPLE_RATE / lag, 0.0)
    return voicing.astype(np.float32), pitch.astype(np.float32)
