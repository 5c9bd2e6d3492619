"""Streaming (VASA-1's online mode): the same numbers as offline, bounded lookahead, bounded memory, the CLI."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from vasa_core.__main__ import main as cli
from vasa_core.audio import SAMPLE_RATE, Audio, ProsodyStream, extract_features, load_audio
from vasa_core.motion import PARAMS, MotionControls
from vasa_core.stream import MotionStream, paced_chunks, timing


@pytest.fixture(scope="module")
def pipeline256():
    """Live mode's mouth: the learned log-mel model (the default Whisper mouth waits for whole encoder windows,
    so live streams use the learned one; its own stream is tested in test_lipsync.py)."""
    from safety.publish import build_pipeline
    return build_pipeline(size=256, device="cpu", lipsync="learned")


@pytest.fixture(scope="module")
def speech48(default_audio) -> Audio:
    return load_audio(default_audio, sample_rate=48000)


def _random_chunks(x: np.ndarray, seed: int, most: int = 3000):
    rng = np.random.default_rng(seed)
    i = 0
    while i < len(x):
        k = int(rng.integers(1, most))
        yield x[i:i + k]
        i += k


def test_prosody_stream_equals_whole_clip_features(default_audio):
    audio = load_audio(default_audio)
    whole = extract_features(audio)
    stream = ProsodyStream()
    rows = np.concatenate([stream.push(c) for c in _random_chunks(audio.samples, 1)] + [stream.finish()])
    assert rows.shape == (len(whole.loudness), 3)
    assert np.array_equal(rows[:, 0], whole.loudness)
    assert np.array_equal(rows[:, 1], whole.voicing) and np.array_equal(rows[:, 2], whole.pitch)


def test_mouth_stream_equals_one_pass(pipeline256, default_audio):
    audio = load_audio(default_audio)
    n = int(round(audio.duration * 25))
    whole = pipeline256.mouth.predict(audio.samples, SAMPLE_RATE, 25, n)
    for seed, most in ((1, 3000), (2, 200)):           # chunks of 1..3000 and 1..200 samples
        stream = pipeline256.mouth.stream(25)
        rows = np.concatenate([stream.push(c) for c in _random_chunks(audio.samples, seed, most)] + [stream.finish(n)])
        assert rows.shape == whole.shape and np.abs(rows - whole).max() < 1e-5


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_evaluated_mouth_equals_shipped_mouth_at_any_rate(pipeline256, default_audio, rate):
    """`LearnedMouth.predict` (what the evaluation scores) and `MotionStream` (what renders) give the same mouth
    at every common sample rate: one resampler (soxr) and one log-mel front end."""
    from vasa_core.mouth import MOUTH_PARAMS
    audio = load_audio(default_audio, sample_rate=rate)
    stream = MotionStream(pipeline256.mouth, rate, 25)
    rows = np.concatenate([stream.push(c) for c in _random_chunks(audio.samples, rate, 4000)] + [stream.finish()])
    predicted = pipeline256.mouth.predict(audio.samples, rate, 25, len(rows))
    shipped = rows[:, [PARAMS.index(k) for k in MOUTH_PARAMS]]
    assert shipped.shape == predicted.shape and np.abs(shipped - predicted).max() < 1e-4
    assert shipped[:, 0].max() > 0.3                       # it is speech: the jaw does open


def test_streamed_motion_equals_offline_motion(pipeline256, speech48):
    controls = dict(seed=5, gaze=(4.0, -2.0), emotion="happy", emotion_weight=0.7, motion_scale=1.3)
    offline = pipeline256.motion(speech48, **controls)
    for seed in (3, 4):
        stream = MotionStream(pipeline256.mouth, 48000, 25, MotionControls(**controls))
        rows = np.concatenate([stream.push(c) for c in _random_chunks(speech48.samples, seed, 5000)] + [stream.finish()])
        assert rows.shape == offline.values.shape
        assert np.abs(rows - offline.values).max() < 1e-4


def test_lookahead_is_bounded(pipeline256, default_audio):
    """Each frame comes out as soon as the audio up to its time + 142.5 ms (+ one 10 ms chunk) is in."""
    audio = load_audio(default_audio)
    stream = MotionStream(pipeline256.mouth, SAMPLE_RATE, 25)     # 16 kHz in: no resampler delay
    chunk = SAMPLE_RATE // 100
    waits = []
    received = 0
    emitted = 0
    for a in range(0, len(audio.samples), chunk):
        rows = stream.push(audio.samples[a:a + chunk])
        received += len(audio.samples[a:a + chunk])
        for i in range(emitted, emitted + len(rows)):
            waits.append(received / SAMPLE_RATE - i / 25)
        emitted += len(rows)
    assert emitted >= int(audio.duration * 25) - 4                 # all but the last ~130 ms before the end
    delay = pipeline256.mouth.frame_delay_s(25)
    assert delay == pytest.approx(0.1425)
    assert max(waits) <= delay + 0.0101 and min(waits) > delay - 0.02   # never later, not earlier than allowed


def test_memory_stays_bounded(pipeline256, speech48):
    """After a minute of audio every buffer inside the stream holds only what the next frames need."""
    stream = MotionStream(pipeline256.mouth, 48000, 25)
    loop = np.tile(speech48.samples, 6)
    total = sum(len(stream.push(c)) for c in paced_chunks(loop, 48000, 0.04, realtime=False))
    assert total > 1400
    mouth = stream._mouth
    assert len(mouth._x) < 2000 and len(mouth._feats) < 120 and len(mouth._y) < 30
    assert len(stream._prosody._buf) < 2000 and len(stream._feat) < 10
    assert len(stream._rows) + len(stream._mouths) < 10 and len(stream._motion._levels) < 10


def test_stream_frames_equal_offline_frames(astronaut, speech48, pipeline256):
    """Streamed frames are the offline frames (same audio and seed), watermarked with the stream's id."""
    from safety.watermark import Watermarker
    clip = Audio(speech48.samples[: int(2.0 * 48000)], 48000)
    stream = pipeline256.stream(astronaut, paced_chunks(clip.samples, 48000, 0.04, realtime=False), 48000, seed=2)
    streamed = np.stack(list(stream))
    motion = pipeline256.motion(clip, seed=2)
    marker = Watermarker(stream.payload, 256, 256)
    offline = np.stack([marker.embed(f, i) for i, f in enumerate(pipeline256.frames(astronaut, motion))])
    assert streamed.shape == offline.shape == (50, 256, 256, 3)
    diff = np.abs(streamed.astype(int) - offline)
    assert diff.max() <= 1 and diff.mean() < 0.01
    t = timing(stream, 0.04)
    assert t["frames"] == 50 and 0 < t["first_frame_ms"] < 2000


def test_cli_stream_realtime(tmp_path, hopper_path, speech48, capsys):
    from safety.verify import verify
    src = tmp_path / "live.wav"
    sf.write(src, speech48.samples[: int(1.6 * 48000)], 48000)
    out = tmp_path / "live.mp4"
    assert cli(["stream", "--image", str(hopper_path), "--audio", str(src), "--out", str(out), "--size", "256",
                "--realtime", "--emotion", "happy:0.5", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "40 frames" in text and "first frame" in text and "after their audio was spoken" in text
    report = verify(out)
    assert report.watermark_found and report.manifest_status in ("Valid", "Trusted") and report.payload_consistent
    assert cli(["stream", "--image", str(hopper_path), "--audio", str(src), "--out", str(out),
                "--chunk-ms", "0"]) == 2
    assert "error: --chunk-ms" in capsys.readouterr().err


def test_acoustic_mouth_cannot_stream(astronaut):
    from safety.publish import build_pipeline
    pipe = build_pipeline(size=256, lipsync="acoustic")
    with pytest.raises(ValueError, match="cannot stream"):
        pipe.stream(astronaut, iter([np.zeros(480, np.float32)]), 48000)


def test_integer_and_stereo_microphone_buffers(pipeline256, speech48):
    x = speech48.samples[: 3 * 48000]
    pcm16 = np.round(x * 32767).astype(np.int16)
    stereo = np.stack([x, x], 1)                       # (n, 2) float
    runs = []
    for source in (x, pcm16, stereo):
        stream = MotionStream(pipeline256.mouth, 48000, 25)
        runs.append(np.concatenate([stream.push(source[a:a + 1920]) for a in range(0, len(source), 1920)]
                                   + [stream.finish()]))
    assert runs[0].shape == runs[1].shape == runs[2].shape == (75, runs[0].shape[1])
    assert np.abs(runs[2] - runs[0]).max() < 1e-5
    jaw = PARAMS.index("jaw_open")
    assert np.corrcoef(runs[1][:, jaw], runs[0][:, jaw])[0, 1] > 0.99
