"""One input edge: a request's portrait is decoded once and its face found once, its audio decoded once, and
what the gate checked is what the engine animates (the demo's Generate path: gate -> pipeline.write)."""
from __future__ import annotations

from collections import Counter

import numpy as np

import vasa_core.faces
import vasa_core.portrait
import vasa_core.validate
from safety.audit import AuditLog
from safety.consent import CONSENT_PUBLIC_DOMAIN
from safety.gate import check_request
from safety.likeness import Gallery
from safety.publish import build_pipeline
from tests.conftest import DEFAULT_AUDIO, HOPPER
from vasa_core.audio import Audio, resample_samples
from vasa_core.pipeline import OUTPUT_SAMPLE_RATE


def _counting(monkeypatch, counts: Counter):
    """Count every image decode, audio decode and face detection, wherever it is called from."""
    def wrap(module, name, key):
        real = getattr(module, name)

        def counted(*args, **kwargs):
            counts[key] += 1
            return real(*args, **kwargs)
        monkeypatch.setattr(module, name, counted)

    wrap(vasa_core.validate, "_decode_image", "image decodes")
    wrap(vasa_core.validate, "_decode_audio", "audio decodes")
    wrap(vasa_core.faces, "detect_faces", "face detections")      # the gate's detector imports it on use
    wrap(vasa_core.portrait, "_detect", "face detections")         # the engine's import of the same function


def test_one_generate_request_decodes_once_and_finds_the_face_once(monkeypatch, tmp_path):
    counts: Counter = Counter()
    _counting(monkeypatch, counts)
    decision = check_request(HOPPER, DEFAULT_AUDIO, CONSENT_PUBLIC_DOMAIN, "Ada Tester", audit=AuditLog(tmp_path / "a.db"),
                             gallery=Gallery(tmp_path / "g.db"), audio_sample_rate=OUTPUT_SAMPLE_RATE)
    assert decision.allowed, decision.reason
    assert decision.face is not None and decision.face.points is not None
    pipe = build_pipeline(size=256, device="cpu", audit_path=tmp_path / "a.db")
    clip = Audio(decision.audio.samples, decision.audio.sample_rate)
    seen: list[tuple[float, str]] = []
    out = pipe.write(decision.image.rgb, clip, tmp_path / "o.mp4", face_box=decision.face,
                     request_id=decision.request_id, progress=lambda fraction, what: seen.append((fraction, what)))
    assert out.path.stat().st_size > 0
    # one call, the progress reported by the pipeline itself: stages in order, then frames, never backwards
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and 0 < fractions[0] and fractions[-1] > 0.9
    assert [w for _, w in seen[:2]] == ["Analysing the portrait", "Generating motion from the voice"]
    assert f"of {len(out.motion)}" in seen[-1][1] and "s left" in seen[-1][1]
    assert counts == Counter({"image decodes": 1, "audio decodes": 1, "face detections": 1}), counts


def test_a_face_box_still_finds_the_face_again():
    """The counter can fail: without the gate's face the engine runs its own detection."""
    counts: Counter = Counter()
    import pytest
    mp = pytest.MonkeyPatch()
    try:
        _counting(mp, counts)
        rgb = vasa_core.validate.validate_image(HOPPER).rgb
        vasa_core.portrait.analyze_portrait(rgb, 256)
    finally:
        mp.undo()
    assert counts["face detections"] == 1 and counts["image decodes"] == 1


def test_the_speech_check_hears_the_samples_the_engine_is_handed():
    """The gate's 16-kHz speech-check samples are the engine's: the one resampler (soxr) made from the 48-kHz
    samples the engine receives, not a second decode or a second resampling library."""
    data = DEFAULT_AUDIO.read_bytes()
    fmt = vasa_core.validate.sniff_audio_format(data)
    decoded = vasa_core.validate._decode_audio(data, fmt, "Ogg", 60.0, [16000, OUTPUT_SAMPLE_RATE])
    engine_16k = resample_samples(decoded[OUTPUT_SAMPLE_RATE], OUTPUT_SAMPLE_RATE, 16000)
    assert decoded[16000].shape == engine_16k.shape
    assert np.array_equal(decoded[16000], engine_16k)
