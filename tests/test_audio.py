"""Audio loading (formats, rates, channels, bad files) and features."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import soundfile as sf

from vasa_core.audio import SAMPLE_RATE, Audio, extract_features, load_audio
from vasa_core.errors import AudioError


def _tone(seconds=1.0, sr=44100, f0=200.0, stereo=False):
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    y = y.astype(np.float32)
    return np.stack([y, 0.5 * y], 1) if stereo else y


def _write_pyav(path, y, sr, codec, fmt):
    import av
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=sr, layout="mono")
        step = 1024
        for i in range(0, len(y), step):
            fr = av.AudioFrame.from_ndarray(y[None, i:i + step].astype(np.float32), format="fltp", layout="mono")
            fr.sample_rate, fr.pts, fr.time_base = sr, i, Fraction(1, sr)
            for p in s.encode(fr):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


@pytest.mark.parametrize("ext,sr,stereo", [("wav", 8000, False), ("wav", 48000, True), ("flac", 22050, True),
                                           ("ogg", 44100, False)])
def test_load_soundfile_formats(tmp_path, ext, sr, stereo):
    path = tmp_path / f"x.{ext}"
    sf.write(path, _tone(1.5, sr, stereo=stereo), sr)
    audio = load_audio(path)
    assert audio.sample_rate == SAMPLE_RATE
    assert audio.samples.ndim == 1
    assert abs(audio.duration - 1.5) < 0.04          # within one video frame at 25 fps


@pytest.mark.parametrize("codec,fmt,ext", [("mp3", "mp3", "mp3"), ("aac", "mp4", "m4a")])
def test_load_compressed_formats(tmp_path, codec, fmt, ext):
    path = tmp_path / f"x.{ext}"
    _write_pyav(path, _tone(2.0, 44100), 44100, codec, fmt)
    audio = load_audio(path)
    assert abs(audio.duration - 2.0) < 0.08           # encoder priming may add a few ms


def test_bad_audio_files(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        load_audio(empty)
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"this is not audio at all" * 100)
    with pytest.raises(AudioError, match="decode|no audio"):
        load_audio(junk)
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "missing.wav")
    long = tmp_path / "long.wav"
    sf.write(long, _tone(3.0, 16000), 16000)
    with pytest.raises(AudioError, match="longer than"):
        load_audio(long, max_seconds=2)
    truncated = tmp_path / "trunc.wav"
    sf.write(truncated, _tone(1.0, 16000), 16000)
    truncated.write_bytes(truncated.read_bytes()[:60])
    with pytest.raises(AudioError):
        load_audio(truncated)


def test_features_track_pitch_and_loudness():
    sr = SAMPLE_RATE
    quiet = np.zeros(sr // 2, np.float32)
    tone = _tone(1.0, sr, f0=180.0)
    feats = extract_features(Audio(np.concatenate([quiet, tone]).astype(np.float32), sr))
    n = len(feats.loudness)
    assert feats.mel.shape == (n, 80) and abs(n - 150) <= 1          # 100 frames per second
    assert feats.loudness[10:40].max() < -60 < feats.loudness[70:140].min()
    voiced = feats.voicing[70:140]
    assert voiced.mean() > 0.8 and feats.voicing[10:40].max() < 0.1
    assert np.median(feats.pitch[70:140]) == pytest.approx(180.0, rel=0.03)
    assert feats.num_video_frames(25) == 38 and feats.at_fps(feats.loudness, 25).shape == (38,)


def test_piecewise_decoding_and_scan(default_audio, tmp_path):
    import hashlib

    from vasa_core.audio import iter_audio, scan_audio
    whole = load_audio(default_audio, sample_rate=48000)
    pieces = list(iter_audio(default_audio, 48000, piece_s=1.0))
    assert all(len(p) == 48000 for p in pieces[:-1]) and 0 < len(pieces[-1]) <= 48000
    assert np.array_equal(np.concatenate(pieces), whole.samples)
    info = scan_audio(default_audio, 48000)
    assert info.duration == pytest.approx(whole.duration) and info.peak == pytest.approx(np.abs(whole.samples).max())
    assert info.sha256 == hashlib.sha256(whole.samples.tobytes()).hexdigest()
    with pytest.raises(AudioError, match="longer than the limit of 3 s"):
        list(iter_audio(default_audio, 16000, max_seconds=3))


@pytest.mark.parametrize("n_mels, fmin, fmax", [(80, 60.0, 7600.0), (40, 50.0, 7600.0)])
def test_mel_basis_equals_librosa(n_mels, fmin, fmax):
    """The numpy filter bank (built without importing librosa's filter module, for start-up time) is librosa's
    Slaney-scale, Slaney-normalised bank for both band settings in use (engine features; lip-sync network)."""
    import librosa
    from vasa_core.audio import FMAX, FMIN, N_FFT, N_MELS, mel_basis, mel_frequencies
    from vasa_core.lipsync.model import MEL_RANGE, N_MELS as LIPSYNC_MELS
    assert (n_mels, fmin, fmax) in [(N_MELS, FMIN, FMAX), (LIPSYNC_MELS, *MEL_RANGE)]   # the settings in use
    ours = mel_basis(n_mels, fmin, fmax)
    ref = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=False,
                              norm="slaney")
    assert ours.shape == ref.shape == (n_mels, N_FFT // 2 + 1) and ours.dtype == np.float32
    assert np.abs(ours - ref).max() <= 1e-6
    assert np.allclose(mel_frequencies(n_mels + 2, fmin, fmax), librosa.mel_frequencies(n_mels + 2, fmin=fmin, fmax=fmax),
                       rtol=1e-12, atol=0)
