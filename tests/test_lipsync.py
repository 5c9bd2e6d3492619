"""Learned lip sync (vasa_core.lipsync): phoneme table, data generator, training, shipped weights, metrics.

Needs espeak-ng (installed by scripts/setup.sh); does not need MBROLA voices.
"""
import shutil
import time

import numpy as np
import pytest
import torch

from vasa_core.lipsync import phonemes as P
from tools.lipsync import evaluate as E
from vasa_core.lipsync.model import DEFAULT_WEIGHTS, LearnedMouth, dither, logmel, pool_to_frames

torch.set_num_threads(1)
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


# ------------------------------------------------------------------------------------------------ phonemes
def test_phone_name_parsing():
    assert P.ipa_tokens("aɪ") == ["a", "ɪ"]
    assert P.ipa_tokens("ˈuː") == ["u"]
    assert P.ipa_tokens("") == []
    assert P.sampa_tokens("tS") == ["t", "ʃ"]
    assert P.sampa_tokens("@U") == ["ə", "ʊ"]
    assert P.sampa_tokens("a1") == ["a"] and P.sampa_tokens("O1") == ["ɔ"]
    assert P.arpa_tokens("UW1") == ["u"] and P.arpa_tokens("SIL") == []
    segs = P.expand_segments([("", 0, .2), ("tʃ", .2, .3), ("aɪ", .3, .5)])
    assert [s for s, *_ in segs] == ["_", "t", "ʃ", "a", "ɪ"]
    assert segs[-1][2] == .5 and abs(segs[1][2] - .235) < 1e-6


def test_coarticulated_targets():
    segs = P.expand_segments([("", 0, .5), ("m", .5, .58), ("a", .58, .8), ("s", .8, .9), ("t", .9, .95),
                              ("u", .95, 1.15), ("f", 1.15, 1.23), ("i", 1.23, 1.4), ("", 1.4, 2.0)])
    t = np.arange(0, 2.0, 0.01)
    y = P.targets_from_segments(segs, t)
    at = lambda s: y[int(round(s * 100))]
    assert np.all(y >= 0) and np.all(y <= 1)
    assert at(.54)[P.PRS] > .9                       # lips closed on m
    assert at(.7)[P.JAW] > .6 and at(.7)[P.PRS] < .1  # open on a
    assert at(1.05)[P.FUN] > .8                      # rounded u
    assert at(.92)[P.FUN] > .3                       # ... anticipated during the s/t before it
    assert at(1.19)[P.TUCK] > .9                     # f: lower lip to teeth
    assert at(1.32)[P.STR] > .5                      # spread i
    assert np.abs(at(.1)).max() < .02 and np.abs(at(1.9)).max() < .02   # rest in silence


# ------------------------------------------------------------------------------------------------ data
@needs_espeak
def test_espeak_phoneme_events():
    from tools.lipsync.data import Espeak
    audio, sr, segs = Espeak.get().synth("mama", "en")
    assert sr > 8000 and len(audio) > sr * 0.2
    toks = [s for s, *_ in P.expand_segments(segs)]
    assert toks.count("m") == 2
    assert all(a < b for _, a, b in segs) and segs[-1][2] <= len(audio) / sr + 1e-6


@needs_espeak
def test_generate_tiny_dataset(tmp_path):
    from tools.lipsync.data import generate
    info = generate(tmp_path, minutes=0.4, seed=3, use_mbrola=False, eval_items=3, log=lambda s: None)
    assert info["items"] >= 2 and info["eval_items"] == 3
    z = np.load(next((tmp_path / "train").glob("shard_*.npz")))
    assert z["feats"].shape[0] == z["y"].shape[0] == z["vis"].shape[0] == z["lens"].sum()
    assert z["feats"].shape[1] == 40 and z["y"].shape[1] == 8
    assert 0 <= z["y"].min() and z["y"].max() <= 1 and z["y"][:, P.JAW].max() > .3
    assert len(list((tmp_path / "eval").glob("*.wav"))) == 3


def test_augment_keeps_timing():
    from tools.lipsync.data import augment, _codec_roundtrip
    sr = 16000
    rng = np.random.default_rng(0)
    x = np.zeros(sr, np.float32)
    x[8000:8800] = np.sin(np.arange(800) * 0.3)       # a click-like burst at 0.5 s
    segs = [("_", 0, .5), ("a", .5, .55), ("_", .55, 1.0)]
    for _ in range(6):
        y, sr2, segs2, desc = augment(x, sr, segs, rng)
        peak = np.argmax(np.abs(y) > 0.3 * np.abs(y).max()) / sr2
        a_start = [s for n, s, e in segs2 if n == "a"][0]
        assert abs(peak - a_start) < 0.012, desc
    z = _codec_roundtrip(x, sr, "mp3")
    onset = lambda v: int(np.argmax(np.abs(v) > 0.3 * np.abs(v).max()))
    assert len(z) == len(x) and abs(onset(z) - onset(x)) < 40      # encoder delay removed (< 2.5 ms)


# ------------------------------------------------------------------------------------------------ model
def test_inference_does_not_import_the_data_generator():
    import subprocess
    import sys
    code = ("import sys, vasa_core.lipsync.model, vasa_core.mouth, vasa_core.stream; "
            "sys.exit(int('tools.lipsync.data' in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_features_and_pooling():
    x = np.random.default_rng(0).standard_normal(22050).astype(np.float32) * .1
    f = logmel(x, 22050)
    assert f.shape == (100, 40) and np.isfinite(f).all()
    y = np.zeros((100, 8), np.float32)
    y[52:55, P.PRS] = 1          # a 30 ms closure between video frames 12 and 14
    v = pool_to_frames(y, 25, 25)
    assert v.shape == (25, 8) and v[13, P.PRS] == 1


def test_background_speech_and_music_beds():
    """The in-the-wild augmentations: another utterance looped under the target, and a music bed whose
    chords change over time; both at unit RMS so augment() can put them at a chosen level under the target."""
    from tools.lipsync.data import _background_speech, _music_bed
    rng = np.random.default_rng(3)
    sr, n = 16000, 16000 * 4
    other = np.sin(2 * np.pi * 180 * np.arange(sr) / sr).astype(np.float32) * np.hanning(sr).astype(np.float32)
    bg = _background_speech(rng, [(other, sr)], n, sr)
    assert bg.shape == (n,) and abs(float(np.std(bg)) - 1) < 1e-3
    spec = np.abs(np.fft.rfft(bg))
    assert np.argmax(spec) * sr / n == pytest.approx(180, abs=2)           # it is the other utterance
    music = _music_bed(rng, n, sr)
    assert music.shape == (n,) and abs(float(np.std(music)) - 1) < 1e-3 and np.isfinite(music).all()
    quarters = [np.abs(np.fft.rfft(q))[20:2000] for q in np.split(music, 4)]
    assert min(np.corrcoef(quarters[0], q)[0, 1] for q in quarters[1:]) < 0.9  # the harmony changes


@needs_espeak
def test_train_a_few_steps(tmp_path):
    from tools.lipsync.data import generate
    from tools.lipsync.train import train
    generate(tmp_path / "d", minutes=0.3, seed=1, use_mbrola=False, eval_items=1, log=lambda s: None)
    net, info = train(tmp_path / "d", tmp_path / "w.npz", steps=4, batch=4, crop=200, channels=32, log=lambda s: None,
                      val_every=2)
    assert np.isfinite(info["best_val"])
    m = LearnedMouth.load(tmp_path / "w.npz")
    y = m.predict(np.zeros(16000, np.float32), 16000, 25, 25)
    assert y.shape == (25, 8) and y.dtype == np.float32


def test_vocal_tract_warp_moves_formants_and_keeps_the_rest():
    """`--vtlp`: alpha 1 leaves the features alone; alpha > 1 (a shorter vocal tract) moves a spectral peak to a
    higher mel bin, alpha < 1 to a lower one; frequency masks fill bands with the crop's mean; shapes kept."""
    from tools.lipsync.train import augment_features, warp_features, warp_source_bins
    assert np.allclose(warp_source_bins(1.0), np.arange(40))
    x = np.full((50, 40), -8.0, np.float32)
    x[:, 20] = 0.0                                               # a formant at bin 20
    rng = np.random.default_rng(0)
    peaks = {}
    for alpha in (0.85, 1.15):
        src = warp_source_bins(alpha)
        assert np.all(np.diff(src) >= 0) and src.min() >= 0 and src.max() <= 39
        peaks[alpha] = int(np.argmax(warp_features(x, alpha)[0]))
    assert peaks[0.85] < 20 < peaks[1.15]
    y = augment_features(x, rng, vtlp=0.15, freq_masks=3)
    assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
    assert np.array_equal(augment_features(x, rng), x)


def test_open_vowel_weight_makes_false_closures_cost_more():
    """`--open-weight`: a lip press predicted in an open vowel (jaw target > 0.3, no press) costs more; a press
    inside a closure costs the same."""
    from vasa_core.lipsync.phonemes import JAW, NP, PRS
    from tools.lipsync.train import loss_fn

    class Fixed(torch.nn.Module):                 # a "network" that always predicts the given parameters
        def __init__(self, p):
            super().__init__()
            self.p = p

        def forward(self, X):
            return self.p, torch.zeros(*self.p.shape[:2], 10)

    Y = torch.zeros(1, 4, NP)
    Y[0, :2, JAW] = 0.6                           # frames 0-1: an open vowel; frames 2-3: a closure
    Y[0, 2:, PRS] = 1.0
    V, M, X = torch.zeros(1, 4, dtype=torch.long), torch.ones(1, 4), torch.zeros(1, 4, 40)
    false_press = Y.clone()
    false_press[0, :2, PRS] = 0.8
    missed = Y.clone()
    missed[0, 2:, PRS] = 0.2
    for pred, grows in ((false_press, True), (missed, False)):
        base = loss_fn(Fixed(pred), X, Y, V, M, closure_weight=3.0)[1].item()
        weighted = loss_fn(Fixed(pred), X, Y, V, M, closure_weight=3.0, open_weight=5.0)[1].item()
        assert (weighted > 1.5 * base) if grows else np.isclose(weighted, base), (base, weighted)


@pytest.fixture(scope="module")
def shipped():
    assert DEFAULT_WEIGHTS.exists(), "assets/lipsync.npz missing: run python -m tools.lipsync.train"
    return LearnedMouth.load_default()


def test_shipped_weights_contract(shipped):
    assert DEFAULT_WEIGHTS.stat().st_size <= 5 * 1024 * 1024
    assert shipped.lookahead_s <= 0.1
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(48000 * 3) * 0.05).astype(np.float32)
    y = shipped.predict(x, 48000, 25.0, 75)
    assert y.shape == (75, 8) and y.dtype == np.float32 and 0 <= y.min() and y.max() <= 1
    y = shipped.predict(np.zeros(8000, np.float32), 8000, 30.0, 30)
    assert y.shape == (30, 8) and y[:, P.JAW].max() < 0.15        # digital silence: mouth stays shut
    x = (rng.standard_normal(16000 * 20) * 0.05).astype(np.float32)
    shipped.predict(x[:16000], 16000, 25, 25)
    t = time.perf_counter()
    shipped.predict(x, 16000, 25, 500)
    assert (time.perf_counter() - t) / 500 < 0.002 * 2.5            # <= 2 ms a frame, with slack for a busy CPU


def test_bounded_lookahead(shipped):
    """Outputs up to (cut - lookahead) do not change when the audio after `cut` changes: it can stream."""
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(16000 * 3) * 0.05).astype(np.float32)
    x2 = x.copy()
    x2[24000:] = rng.standard_normal(24000) * 0.3
    a, b = shipped.predict_100hz(x, 16000), shipped.predict_100hz(x2, 16000)
    first_diff = np.argmax(np.abs(a - b).max(1) > 1e-5)
    assert first_diff * 0.01 >= 1.5 - 0.1


def test_chunked_inference_equals_one_pass(shipped):
    x = (np.random.default_rng(2).standard_normal(16000 * 32) * 0.05).astype(np.float32)
    chunked = shipped.predict_100hz(x, 16000)                  # 30 s chunks
    whole = shipped.net(logmel(dither(x), 16000)[None])[0][0]
    assert chunked.shape == whole.shape and np.abs(chunked - whole).max() < 1e-4


def test_numpy_network_equals_torch_network(shipped, default_audio, tmp_path):
    """Inference runs the network in numpy (no torch import); training runs it in torch: one network, the same
    numbers on the default speech, and `save_weights` -> `LearnedMouth.load` round-trips the weights."""
    from vasa_core.audio import load_audio
    from vasa_core.lipsync.model import MouthNet, load_torch_net, save_weights
    net, meta = load_torch_net(DEFAULT_WEIGHTS)
    assert isinstance(net, MouthNet) and meta["blocks"] == shipped.net.BLOCKS
    f = logmel(dither(load_audio(default_audio).samples), 16000)
    with torch.no_grad():
        params_t, logits_t = (v[0].numpy() for v in net.eval()(torch.from_numpy(f)[None]))
    params_n, logits_n = shipped.net(f)
    assert params_n.shape == params_t.shape == (len(f), 8) and params_t[:, P.JAW].max() > 0.3
    assert np.abs(params_n - params_t).max() < 1e-4 and np.abs(logits_n - logits_t).max() < 1e-3
    save_weights(tmp_path / "w.npz", net, jaw_gain=1.5, lead_ms=10.0)
    again = LearnedMouth.load(tmp_path / "w.npz")
    assert again.jaw_gain == 1.5 and again.lead_s == 0.01 and np.array_equal(again.net(f)[0], params_n)


@needs_espeak
def test_long_pause_stays_still(shipped):
    """A 3 s pause between two phrases (digital silence or a -60 dBFS noise floor): the mouth rests."""
    from tools.lipsync.data import Espeak
    a, sr, _ = Espeak.get().synth("Hello there, my friend.", "en")
    x = np.concatenate([a * .5, np.zeros(sr * 3, np.float32), a * .5])
    for floor in (0.0, 1e-3):
        y = shipped.predict(x + floor * np.random.default_rng(0).standard_normal(len(x)).astype(np.float32), sr, 25,
                            int(len(x) / sr * 25))
        pause = y[int((len(a) / sr + 0.5) * 25):int((len(a) / sr + 2.5) * 25)]
        assert pause[:, P.JAW].max() < 0.08 and np.abs(np.diff(pause, axis=0)).sum(1).mean() < 0.02


@needs_espeak
def test_shipped_model_on_espeak_speech(shipped):
    """Sanity on an unseen sentence: the jaw follows the target and the lips close for 'm'/'b'."""
    from tools.lipsync.data import Espeak
    audio, sr, segs = Espeak.get().synth("Mama bought a big blue balloon, maybe.", "en+f5")
    segs = P.expand_segments(segs)
    n = int(round(len(audio) / sr * 25))
    pred = shipped.predict(audio, sr, 25, n)
    tgt = E.target_frames(segs, len(audio) / sr, 25, n)
    st = E.item_stats(pred, tgt, segs)
    s = E.summarise([pred], [tgt], [st])
    assert s["jaw_corr"] > 0.5 and s["bilabial_recall"] >= 0.5


# ------------------------------------------------------------------------------------------------ metrics
def _handmade():
    """0.0-0.4 silence, m (0.4-0.5), a (0.5-0.8), i (0.8-1.0), u (1.0-1.2), silence to 2.0 s; 25 fps."""
    segs = [("_", 0, .4), ("m", .4, .5), ("a", .5, .8), ("i", .8, 1.0), ("u", 1.0, 1.2), ("_", 1.2, 2.0)]
    n = 50
    tgt = E.target_frames(segs, 2.0, 25, n)
    return segs, tgt, n


def test_metrics_known_answers():
    segs, tgt, n = _handmade()
    s = E.summarise([tgt], [tgt], [E.item_stats(tgt, tgt, segs)])
    assert s["jaw_corr"] == pytest.approx(1) and s["round_corr"] == pytest.approx(1)
    assert s["bilabial_recall"] == 1 and s["bilabial_n"] == 1 and s["rounding_acc"] == 1
    assert s["best_offset"] == 0 and s["sil_motion"] == pytest.approx(0, abs=1e-3)
    # lips never close, rounding and spreading swapped, jitter in the silence, 2 frames late
    bad = tgt.copy()
    bad[:, P.PRS] = 0
    bad[:, [P.FUN, P.STR]] = bad[:, [P.STR, P.FUN]]
    s = E.summarise([bad], [tgt], [E.item_stats(bad, tgt, segs)])
    assert s["bilabial_recall"] == 0 and s["rounding_acc"] == 0
    late = np.concatenate([np.repeat(tgt[:1], 2, 0), tgt[:-2]])
    assert E.summarise([late], [tgt], [E.item_stats(late, tgt, segs)])["best_offset"] == 2
    jit = tgt.copy()
    jit[40:, P.JAW] = np.tile([0, .2], 5)          # 1.6-2.0 s: alternating 0 / 0.2 inside the long pause
    s = E.summarise([jit], [tgt], [E.item_stats(jit, tgt, segs)])
    assert s["sil_motion"] > 0.05 and s["sil_jaw"] > 0.02


# ------------------------------------------------------------------------------------------------ real videos
def test_real_video_metrics_known_answers():
    """The real-mouth metrics on made-up tracks: a copy scores r 1 at lag 0, a late copy shows its lag, a
    closure the other mouth does not make is missed, a still mouth in silence has no motion."""
    from tools.lipsync.real import MouthTrack, clip_metrics
    n = 250
    t = np.arange(n)
    gap = 0.2 + 0.06 * np.sin(2 * np.pi * (t - 0) / 12)         # syllables, never near closed ...
    for k in range(0, 16):                                      # ... but for 16 closures at syllable peaks
        gap[3 + 12 * k:5 + 12 * k] = 0.0
    speech = np.ones(n, bool)
    speech[200:] = False
    silence = ~speech
    gap[200:] = 0.01
    real = MouthTrack(gap, np.full(n, 1.2))
    m = clip_metrics(real, MouthTrack(gap.copy(), np.full(n, 1.2)), speech, silence)
    assert m["r0"] == pytest.approx(1) and m["best_lag"] == 0 and m["closure"] == 1 and m["amp"] == pytest.approx(1)
    assert m["sil_motion"] == pytest.approx(0, abs=1e-9)
    late = np.r_[np.full(2, 0.15), gap[:-2]]                   # ours 2 frames late, half the amplitude
    m = clip_metrics(real, MouthTrack(0.5 * late, np.full(n, 1.2)), speech, silence)
    assert m["best_lag"] == 2 and m["r_best"] > 0.99 > m["r0"] and m["amp"] == pytest.approx(0.5, abs=0.05)
    open_mouth = 0.2 + 0.06 * np.sin(2 * np.pi * t / 12)       # the same syllables, never closes
    open_mouth[200:] = 0.01
    assert clip_metrics(real, MouthTrack(open_mouth, np.full(n, 1.2)), speech, silence)["closure"] < 0.5


def test_file_av_offset_found_without_a_mouth_model():
    """A file whose mouth leads its sound by 3 frames more than the others is found from the real lip gap and
    the sound alone, and its r is then read at that offset; files in sync keep r at lag 0."""
    from tools.lipsync.real import FPS, add_file_offsets, av_offset, energy_lags, lagged_corr
    rng = np.random.default_rng(3)
    n, sr = 200, 16000
    env_frames = np.convolve(rng.exponential(1.0, n + 20) ** 2, np.hanning(5), "same")   # irregular syllables
    records = []
    for shift in (0, 0, 1, 0, 3):                            # + = this file's sound comes `shift` frames late
        t = np.arange(int(n / FPS * sr)) / sr
        env = np.interp(t * FPS, np.arange(n + 20) + shift, env_frames)
        samples = (rng.standard_normal(len(t)) * (0.01 + env)).astype(np.float32)
        gap = env_frames[:n] + 0.05 * rng.standard_normal(n)     # the real mouth, on the video's clock
        lags = energy_lags(gap, samples)
        assert max(lags, key=lags.get) == shift
        ours = env_frames[:n]                                 # a mouth model that follows the sound's content
        m = {"lags": lagged_corr(gap, np.r_[np.zeros(shift), ours[:n - shift]]), "r0": 0.0}
        records.append({"energy_lags": lags, "models": {"learned": {"predicted": m}}})
    assert av_offset(records[4]["energy_lags"], 0) == 3 and av_offset(records[2]["energy_lags"], 0) == 0
    assert add_file_offsets(records) == 0
    assert [r["file_offset"] for r in records] == [0, 0, 0, 0, 3]
    m = records[4]["models"]["learned"]["predicted"]
    assert m["r_sync"] == pytest.approx(m["lags"][3]) and m["r_sync"] > m["lags"][0] + 0.3


def test_lip_measures_and_rigid_head_pose():
    from tools.lipsync.real import lip_measures
    from vasa_core.portrait import rotation_angles, rotation_matrix
    from tools.stats import rigid_pose
    pts = np.random.default_rng(1).standard_normal((478, 3)) * 50
    pts[33], pts[133], pts[362], pts[263] = [-60, 0, 0], [-20, 0, 0], [20, 0, 0], [60, 0, 0]   # IOD = 80
    for a, b in ((13, 14), (82, 87), (312, 317)):
        pts[a], pts[b] = [0, 60, 0], [0, 68, 0]                 # inner-lip gap 8
    pts[61], pts[291] = [-24, 64, 0], [24, 64, 0]               # mouth width 48
    gap, width = lip_measures(pts)
    assert gap == pytest.approx(0.1) and width == pytest.approx(0.6)
    r = rotation_matrix(6.0, -4.0, 3.0)
    moved = 1.1 * pts @ r.T + [5, -3, 2]
    rel, scale = rigid_pose(moved, pts)
    assert scale == pytest.approx(1.1) and np.allclose(rotation_angles(rel), rotation_angles(r), atol=1e-6)


def test_real_mouth_tracked_twice_agrees_with_itself(hopper_renderer, tmp_path):
    """`track_video` tracks every frame as it is and mirrored; on a clean clip of a mouth that opens and
    closes the two tracks agree (agreement near 1) and follow the opening, while a mirrored track that is
    noise gives an agreement near 0 (the ceiling then says the tracker, not the model, limits r)."""
    from tools.lipsync.real import FPS, MouthTrack, track_video, tracker_agreement
    from vasa_core.video import VideoWriter
    n = 40
    jaw = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / 10)        # four open-close cycles
    path = tmp_path / "mouth.mp4"
    frames = [hopper_renderer.render({"jaw_open": float(j)}) for j in jaw]
    with VideoWriter(path, fps=FPS, size=frames[0].shape[0]) as w:
        for frame in frames:
            w.write(frame)
    track, first = track_video(path, n)
    assert first is not None and track.valid.mean() > 0.9
    assert np.corrcoef(track.gap[track.valid], jaw[track.valid])[0, 1] > 0.9
    assert tracker_agreement(track) > 0.95
    noise = np.random.default_rng(0).standard_normal(n)
    assert abs(tracker_agreement(MouthTrack(track.gap, track.width, noise))) < 0.4
    assert np.isnan(tracker_agreement(MouthTrack(track.gap, track.width)))
