"""End to end: the default example, identity over a clip, determinism, the CLI, and the MP4 itself."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from safety.publish import build_pipeline
from vasa_core.__main__ import main as cli
from vasa_core.errors import AudioError
from vasa_core.video import probe, read_frames


@pytest.fixture(scope="module")
def short_audio(tmp_path_factory, default_audio):
    """The first 2.4 s of the default speech (60 frames)."""
    from vasa_core.audio import load_audio
    a = load_audio(default_audio, sample_rate=24000)
    path = tmp_path_factory.mktemp("audio") / "short.wav"
    sf.write(path, a.samples[: int(2.4 * 24000)], 24000)
    return path


def test_default_example_end_to_end(tmp_path, hopper_path, default_audio, pipeline256):
    out = pipeline256.write(hopper_path, default_audio, tmp_path / "default.mp4")
    info = probe(out)
    audio_s = sf.info(str(default_audio)).duration
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p" and info["audio_codec"] == "aac"
    assert (info["width"], info["height"]) == (256, 256) and info["fps"] == pytest.approx(25)
    assert abs(info["video_duration"] - audio_s) <= 1 / 25 + 1e-6           # within one frame
    assert abs(info["audio_duration"] - audio_s) < 0.1
    with open(out, "rb") as f:
        head = f.read(4096)
    assert head.find(b"moov") < head.find(b"mdat") or b"mdat" not in head     # faststart: index first
    # provenance: the watermark is in the frames, the C2PA manifest is valid, the audit log has the record
    from safety.audit import AuditLog
    from safety.verify import verify
    report = verify(out.path)
    assert report.watermark_found and report.payload_hex == out.payload and report.payload_consistent
    assert out.manifest is not None
    from safety.provenance import read_manifest
    manifest = read_manifest(out.path)
    assert manifest["valid"] and manifest["claims"][0]["soft_binding_payload"] == out.payload
    record = AuditLog().find_by_watermark(out.payload)[0]
    assert record["output_sha256"] == out.sha256


def test_identity_is_kept_on_every_frame(hopper_path, short_audio, identity):
    pipe = build_pipeline(size=512, device="cpu")
    result = pipe.generate(hopper_path, short_audio, seed=1)      # frames already carry the watermark
    ref = identity.descriptor(pipe.prepare(hopper_path)[0].image)
    distances = []
    for frame in result.frames[::2]:
        d = identity.descriptor(frame)
        assert d is not None
        distances.append(float(np.linalg.norm(d - ref)))
    assert max(distances) < 0.4, distances                  # same person (dlib: < 0.6), with margin
    assert np.all(np.isfinite(result.motion.values))
    assert result.frames.std(0).max() > 10                   # and something does move


def test_same_seed_same_frames(astronaut, short_audio, pipeline256):
    a = pipeline256.generate(astronaut, short_audio, seed=7)
    b = pipeline256.generate(astronaut, short_audio, seed=7)
    c = pipeline256.motion(pipeline256.load_audio(short_audio), seed=8)
    assert np.array_equal(a.motion.values, b.motion.values)
    assert not np.array_equal(a.motion.values, c.values)
    # the rendered frames are identical; the outputs differ only by each generation's own watermark id
    ra = np.stack(list(pipeline256.frames(astronaut, a.motion)))
    rb = np.stack(list(pipeline256.frames(astronaut, b.motion)))
    assert np.array_equal(ra, rb)
    assert a.payload != b.payload
    mse = np.mean((a.frames.astype(float) - ra) ** 2)
    assert 10 * np.log10(255 ** 2 / mse) > 38                   # the mark is invisible (PSNR above 38 dB)


def test_silent_and_bad_audio_are_refused(tmp_path, hopper_path, pipeline256):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    with pytest.raises(AudioError, match="silent"):
        pipeline256.write(hopper_path, silent, tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()


def test_cli_generate_render_and_sheet(tmp_path, hopper_path, short_audio, capsys):
    out, motion = tmp_path / "gen.mp4", tmp_path / "motion.json"
    assert cli(["generate", "--image", str(hopper_path), "--audio", str(short_audio), "--out", str(out),
                "--size", "256", "--seed", "2", "--motion-out", str(motion), "--device", "cpu"]) == 0
    data = json.loads(motion.read_text())
    assert data["num_frames"] == 60 and len(data["tracks"]["jaw_open"]) == 60
    assert probe(out)["frames"] == 60
    # a hand-written motion: turn the head with keyframes, mouth wide open in the middle
    hand = tmp_path / "hand.json"
    hand.write_text(json.dumps({"fps": 25, "tracks": {"yaw": [[0, 0], [1.2, 12], [2.4, 0]],
                                                       "jaw_open": [[0, 0], [1.2, 0.8], [2.4, 0]]}}))
    out2 = tmp_path / "hand.mp4"
    assert cli(["render", "--image", str(hopper_path), "--audio", str(short_audio), "--motion", str(hand),
                "--out", str(out2), "--size", "256", "--device", "cpu"]) == 0
    frames = list(read_frames(out2))
    assert len(frames) == 60
    assert np.abs(frames[30].astype(int) - frames[0]).mean() > np.abs(frames[1].astype(int) - frames[0]).mean() + 2
    sheet = tmp_path / "sheet.png"
    assert cli(["sheet", str(out2), str(sheet)]) == 0 and sheet.stat().st_size > 10_000
    # bad input: a specific message and exit code 2, no traceback
    capsys.readouterr()
    assert cli(["generate", "--image", str(short_audio), "--audio", str(short_audio), "--out",
                str(tmp_path / "bad.mp4")]) == 2
    assert "error: This file is not a JPEG, PNG or WebP image" in capsys.readouterr().err   # vasa_core.validate's


def test_cli_refuses_a_missing_file_before_loading_any_model(tmp_path, hopper_path, short_audio):
    """A missing or undecodable input is refused from its header, before torch, mediapipe or OpenCV load."""
    import subprocess
    import sys
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(64))
    code = ("import sys; from vasa_core.__main__ import main; "
            "rcs = [main(['generate', '--image', sys.argv[1], '--audio', a, '--out', sys.argv[3]]) "
            "for a in (sys.argv[2], sys.argv[4])]; "
            "loaded = sorted(m for m in ('torch', 'mediapipe', 'cv2', 'facenet_pytorch') if m in sys.modules); "
            "print(rcs, loaded)")
    out = subprocess.run([sys.executable, "-c", code, str(hopper_path), str(tmp_path / "missing.wav"),
                          str(tmp_path / "x.mp4"), str(garbage)], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[2, 2] []", out.stdout + out.stderr
    assert "The audio file" in out.stderr and "could not be found" in out.stderr
    assert "WAV audio could not be decoded" in out.stderr
    assert not (tmp_path / "x.mp4").exists()


def test_cli_generate_never_imports_torch(tmp_path, hopper_path, short_audio):
    """On the CPU, `generate` runs without torch (the lip-sync network and MTCNN run in numpy; the device is
    decided without it): importing torch and torchvision cost ~3 s of a cold start."""
    import subprocess
    import sys
    from vasa_core.pipeline import _resolve_device
    code = ("import sys; from vasa_core.__main__ import main; "
            "rc = main(['generate', '--image', sys.argv[1], '--audio', sys.argv[2], '--out', sys.argv[3], "
            "'--size', '256', '--device', 'cpu']); "
            "print(rc, sorted(m for m in ('torch', 'torchvision', 'facenet_pytorch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(hopper_path), str(short_audio), str(tmp_path / "x.mp4")],
                         capture_output=True, text=True, timeout=300)
    assert out.stdout.strip().splitlines()[-1] == "0 []", out.stdout + out.stderr
    assert probe(tmp_path / "x.mp4")["frames"] == 60
    import glob
    if not glob.glob("/dev/nvidia[0-9]*"):
        assert _resolve_device("auto") == "cpu"
    assert _resolve_device("cuda") == "cuda" and _resolve_device("cpu") == "cpu"


def test_write_reads_the_audio_file_piece_by_piece(monkeypatch, tmp_path, hopper_path, short_audio, pipeline256):
    """A file is never decoded whole: one scan pass, then 1-s pieces shared by the motion and the encoder."""
    import vasa_core.pipeline as P
    monkeypatch.setattr(P, "load_audio", lambda *a, **k: pytest.fail("write() decoded the whole file"))
    pieces = []
    original = P.VideoWriter.write_audio

    def spy(writer, samples):
        pieces.append(len(samples))
        original(writer, samples)
    monkeypatch.setattr(P.VideoWriter, "write_audio", spy)
    out = pipeline256.write(hopper_path, short_audio, tmp_path / "pieces.mp4", seed=3)
    assert max(pieces) <= 48000 and sum(pieces) == int(round(2.4 * 48000))
    assert len(out.motion) == 60 and probe(out.path)["frames"] == 60
    monkeypatch.undo()
    from vasa_core.audio import load_audio
    whole = pipeline256.motion(load_audio(short_audio, sample_rate=48000), seed=3)   # same motion as in memory
    assert np.abs(out.motion.values - whole.values).max() < 1e-4


def test_a_wheel_carries_the_assets(tmp_path):
    """pyproject.toml: assets/ (weights, default speech, detector model) ships as package data (vasa_core/assets/
    in a wheel), found by vasa_core.ASSETS (and safety.detector through it) when installed outside the checkout;
    the console scripts are declared."""
    import os
    import subprocess
    import sys
    import zipfile
    from vasa_core import ASSETS
    root = ASSETS.parent
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(root)], check=True, capture_output=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ("lipsync.npz", "default_speech.ogg", "detector.pkl"):
        assert f"vasa_core/assets/{f}" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "vasa = vasa_core.__main__:cli" in zipfile.ZipFile(wheel).read(entry).decode()
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(tmp_path / "site"),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    code = ("import vasa_core, vasa_core.lipsync.model as m; "
            "print(vasa_core.ASSETS == m.DEFAULT_WEIGHTS.parent, m.DEFAULT_WEIGHTS.is_file(), "
            "m.LearnedMouth.load_default().name, vasa_core.ASSETS); "
            "import safety.detector as d; print(d.MODEL_PATH.parent == vasa_core.ASSETS, "
            "len(d.load_model().feature_names) > 0, d.EVAL_PATH.is_file())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env=env)
    assert out.stdout.split() == ["True", "True", "learned", str(tmp_path / "site" / "vasa_core" / "assets"),
                                  "True", "True", "True"], out.stdout + out.stderr


def test_validated_audio_at_the_output_rate_feeds_the_engine(tmp_path, hopper_path, short_audio, pipeline256):
    """One decode for an upload: `validate_audio(..., sample_rate=48000)` returns the clip at the MP4's rate
    (its speech check runs on the same 16 kHz samples as the default call), and the engine takes that array."""
    from vasa_core.validate import validate_audio
    from vasa_core.audio import Audio
    from vasa_core.pipeline import OUTPUT_SAMPLE_RATE
    v16 = validate_audio(short_audio)
    v48 = validate_audio(short_audio, sample_rate=OUTPUT_SAMPLE_RATE)
    assert (v16.sample_rate, v48.sample_rate) == (16000, OUTPUT_SAMPLE_RATE)
    assert v48.speech_s == v16.speech_s > 1.0 and v48.sha256 == v16.sha256
    assert abs(v48.duration_s - v16.duration_s) < 0.002 and not v48.samples.flags.writeable
    out = pipeline256.write(hopper_path, Audio(v48.samples, v48.sample_rate), tmp_path / "v.mp4")
    info = probe(out.path)
    assert info["frames"] == 60 and info["audio_codec"] == "aac" and abs(info["audio_duration"] - 2.4) < 0.05
    import av
    with av.open(str(out.path)) as c:
        assert c.streams.audio[0].codec_context.sample_rate == OUTPUT_SAMPLE_RATE
    with pytest.raises(ValueError):
        validate_audio(short_audio, sample_rate=100)
