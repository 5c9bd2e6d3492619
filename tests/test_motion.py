"""Motion sequences: JSON in and out, validation, the v1 generator, and the acoustic mouth."""
from __future__ import annotations

import numpy as np
import pytest

from vasa_core.audio import SAMPLE_RATE, Audio, extract_features, load_audio
from vasa_core.errors import MotionError
from vasa_core.motion import PARAMS, MotionSequence, generate_motion
from vasa_core.mouth import MOUTH_PARAMS, AcousticMouth


def test_json_round_trip_and_keyframes(tmp_path):
    data = {"fps": 25, "num_frames": 51, "tracks": {"yaw": [[0, 0], [1, 10], [2, 0]], "jaw_open": [0.0, 0.5, 1.0]}}
    m = MotionSequence.from_json(data)
    assert len(m) == 51 and m["yaw"][25] == pytest.approx(10) and m["yaw"][12] == pytest.approx(4.8)
    assert m["jaw_open"][2] == pytest.approx(1.0) and m["jaw_open"][50] == pytest.approx(1.0)   # holds the last
    assert m["scale"][0] == 1.0 and m["pitch"][0] == 0.0                                       # defaults
    m.save(tmp_path / "m.json")
    again = MotionSequence.load(tmp_path / "m.json")
    assert np.allclose(again.values, m.values, atol=1e-4)
    assert len(MotionSequence.from_json(data, num_frames=100)) == 100


def test_json_errors(tmp_path):
    with pytest.raises(MotionError, match="Unknown motion parameter"):
        MotionSequence.from_json({"tracks": {"wiggle": [1]}})
    with pytest.raises(MotionError, match="range"):
        MotionSequence.from_json({"tracks": {"yaw": [0, 90]}})
    with pytest.raises(MotionError, match="NaN"):
        MotionSequence.from_json({"tracks": {"yaw": [0, float("nan")]}})
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(MotionError, match="not valid JSON"):
        MotionSequence.load(tmp_path / "bad.json")


def _speech_with_pause(default_audio) -> Audio:
    speech = load_audio(default_audio)
    silence = np.zeros(SAMPLE_RATE, np.float32)
    return Audio(np.concatenate([silence, speech.samples[: 3 * SAMPLE_RATE]]), SAMPLE_RATE)


def test_acoustic_mouth_is_still_in_silence_and_moves_with_speech(default_audio):
    audio = _speech_with_pause(default_audio)
    n = int(round(audio.duration * 25))
    mouth = AcousticMouth().predict(audio.samples, audio.sample_rate, 25, n)
    assert mouth.shape == (n, len(MOUTH_PARAMS)) and np.all((mouth >= 0) & (mouth <= 1))
    jaw = mouth[:, 0]
    assert jaw[:22].max() < 0.02                   # the first second is silent
    assert jaw[30:].max() > 0.3 and jaw[30:].std() > 0.05
    loud = extract_features(audio).loudness
    level = np.interp(np.arange(n) / 25, np.arange(len(loud)) / 100, loud)
    assert np.corrcoef(jaw[25:], level[25:])[0, 1] < 0.95   # not simply following loudness


def test_generator_is_deterministic_and_in_range(default_audio):
    audio = _speech_with_pause(default_audio)
    feats = extract_features(audio)
    n = feats.num_video_frames(25)
    mouth = AcousticMouth().predict_features(feats, 25, n)
    a = generate_motion(feats, mouth, seed=3)
    b = generate_motion(feats, mouth, seed=3)
    c = generate_motion(feats, mouth, seed=4)
    assert np.array_equal(a.values, b.values) and not np.array_equal(a.values, c.values)
    assert a.values.shape == (n, len(PARAMS)) and np.all(np.isfinite(a.values))
    assert np.abs(a["yaw"]).max() < 15 and np.abs(a["pitch"]).max() < 12
    assert np.abs(np.diff(a["yaw"])).max() < 1.5          # smooth: no pops between frames
    assert a["blink_l"].max() > 0.9                         # at least one blink in 4 s
    still = generate_motion(feats, mouth, seed=3, motion_scale=0)
    assert np.ptp(still["yaw"]) == 0 and np.ptp(still["pitch"]) == 0 and np.ptp(still["roll"]) == 0
    assert np.array_equal(still["jaw_open"], a["jaw_open"])
    with pytest.raises(MotionError, match="emotion"):
        generate_motion(feats, mouth, emotion="bored")
