"""Tests of the invisible watermark: ECC, marking quality and cost, every attack on one short clip, unmarked media.

The full robustness table (many clips, >= 1000 unmarked frames) is `python -m tools.evals.watermark evaluate`.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from safety import watermark as W
from tools.evals import watermark as E   # sample media, attacks, evaluation

PAYLOAD = 0x5EC0FFEE


@pytest.fixture(scope="module")
def hopper_clip():
    """3 s of Grace Hopper with head-like motion, marked, through the product's CRF-18 writer."""
    img = E.sample_images()["grace_hopper"]
    frames = E.talking_frames(img, 75, seed=7)
    wm = W.Watermarker(PAYLOAD, 512, 512)
    marked = [wm.embed(f, i) for i, f in enumerate(frames)]
    master = E.decode_bytes(E.encode_mp4(marked, crf=18, audio=False))
    return frames, marked, master


# ---------------------------------------------------------------------------------------------- payload + ECC
def test_payload_is_random_and_wide_enough():
    ids = {W.new_payload() for _ in range(200)}
    assert len(ids) == 200
    assert W.PAYLOAD_BITS >= 32
    assert all(0 <= p < 2 ** W.PAYLOAD_BITS for p in ids)
    assert W.payload_hex(0xABC) == "00000abc"
    assert len(W.payload_hex(W.new_payload())) == W.PAYLOAD_BITS // 4


def test_ecc_corrects_noise_and_flips():
    """Soft noise (sigma 0.6 on +-1 symbols) plus 8 hard flips: decoded in at least 99% of 400 seeded trials
    (measured 0.43% failures over 3,000; a failure is a CRC refusal, never a wrong id). Fixed seeds: a
    random draw per run made this test fail about one CI run in ten."""
    failures = 0
    for seed in range(400):
        rng = np.random.default_rng(seed)
        payload = int(rng.integers(0, 2 ** W.PAYLOAD_BITS))
        coded = W._encode_payload(payload)
        soft = (1.0 - 2.0 * coded) + rng.normal(0, 0.6, coded.size)
        flips = rng.choice(coded.size, 8, replace=False)          # 8 hard errors on top of the noise
        soft[flips] *= -1
        decoded = W._decode_payload(soft)
        assert decoded in (payload, None)                          # never a wrong id
        failures += decoded is None
    assert failures <= 4


def test_crc_rejects_garbage():
    rng = np.random.default_rng(1)
    # pure noise must (almost always) fail the CRC: 2^-16 per try, 200 tries
    assert sum(W._decode_payload(rng.normal(0, 1, W._N_CODED)) is not None for _ in range(200)) == 0


def test_false_positive_bound_is_below_1e6():
    assert W.N_HYPOTHESES * np.exp(-W.Z_THRESHOLD ** 2 / 2) * 2.0 ** -W.CRC_BITS < 1e-6
    assert W._fp_bound(W.Z_THRESHOLD, True) < 1e-6
    assert W.fp_bound_total() < 1e-6
    assert W.N_LOCAL_HYPOTHESES * np.exp(-W.Z_LOCAL_THRESHOLD ** 2 / 2) * 2.0 ** -W.CRC_BITS < 1e-6


# ---------------------------------------------------------------------------------------------- marking
def test_embed_quality_shape_and_cost():
    img = E.sample_images()["astronaut"]
    frames = E.talking_frames(img, 40, seed=2)
    wm = W.Watermarker(PAYLOAD, 512, 512)
    out = wm.embed(frames[0], 0)
    assert out.shape == frames[0].shape and out.dtype == np.uint8
    assert not np.array_equal(out, frames[0])
    psnrs = []
    t = time.process_time()             # CPU time: the 2-core machine is shared, wall time is not the cost
    for i, f in enumerate(frames):
        m = wm.embed(f, i)
        psnrs.append(10 * np.log10(255 ** 2 / np.mean((m.astype(float) - f) ** 2)))
    per_frame_ms = (time.process_time() - t) * 1e3 / len(frames)
    assert min(psnrs) >= 38.0
    assert per_frame_ms <= 10.0, per_frame_ms
    # luma-only: the same delta on R, G and B (up to clipping)
    d = out.astype(int) - frames[0]
    inside = (frames[0] > 10).all(-1) & (frames[0] < 245).all(-1)
    assert np.array_equal(d[..., 0][inside], d[..., 1][inside])
    with pytest.raises(ValueError):
        wm.embed(frames[0][:100], 0)


def test_flat_regions_get_a_faint_mark():
    flat = np.full((512, 512, 3), 120, np.uint8)
    d = W.Watermarker(PAYLOAD, 512, 512).embed(flat).astype(int) - flat
    assert np.abs(d).max() <= 2                       # at most 2 grey levels on a perfectly flat frame
    # and it is still detectable there (nothing hides it)
    assert W.detect_frames([flat + d.astype(np.uint8)]).payload == PAYLOAD


def test_smooth_skin_gets_a_faint_mark():
    """Skin as smooth as an AI face's (Grace Hopper's portrait through two bilateral passes), framed as the
    product renders it: the mark stays >= 42 dB PSNR in the smooth skin (43.7-44.4 dB over six random keys;
    36.97 dB with the former mask, whose texture measure spilled from the eyes, lips and glasses into the skin
    beside them); the face's SSIM does not drop (0.960-0.962; 0.959 before: the wrinkles now carry more of
    the mark); one frame still carries the payload."""
    frame, face = E.framed_face(E.smoothed_portrait(E.sample_images()["grace_hopper"]))
    marked = W.Watermarker(PAYLOAD, 512, 512).embed(frame)
    v = E.visibility(frame, marked, face)
    assert v["smooth_fraction"] > 0.03                   # there is smooth skin to measure
    assert v["psnr_smooth_skin"] >= 42.0, v
    assert v["ssim_face"] >= 0.955, v
    assert W.detect_frames([marked]).payload == PAYLOAD


def test_the_mark_hides_in_texture():
    """The energy goes where the image can hide it: on Grace Hopper's portrait the mark's mean size on
    textured pixels (fine detail > 6 grey levels: flag, medals, hair) is >= 3x that on smooth ones (< 1.5:
    backdrop, skin); 2.0x with the former mask, 3.6-4.4x with this one (six random keys)."""
    img = E.sample_images()["grace_hopper"]
    d = np.abs(W.Watermarker(PAYLOAD, 512, 512).embed(img).astype(np.float64) - img)[..., 1]
    act = E.activity(img)
    smooth, textured = d[act < 1.5].mean(), d[act > 6].mean()
    assert textured >= 3.0 * smooth, (smooth, textured)


def test_embed_is_thread_safe_and_deterministic():
    img = E.sample_images()["astronaut"]
    wm = W.Watermarker(PAYLOAD, 512, 512)
    ref = wm.embed(img, 0)
    results = []
    th = [threading.Thread(target=lambda: results.append(wm.embed(img, 1))) for _ in range(4)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    assert all(np.array_equal(r, ref) for r in results)


def test_other_frame_sizes():
    img = E.sample_images()["astronaut"]
    wide = np.ascontiguousarray(np.concatenate([img, img[:, ::-1]], axis=1)[::2, ::2][:, :400])   # 256x400
    wm = W.Watermarker(PAYLOAD, 400, 256)
    marked = [wm.embed(wide, i) for i in range(10)]
    d = W.detect_frames(E.decode_bytes(E.encode_mp4(marked, crf=18, audio=False)))
    assert d.found and d.payload == PAYLOAD


def test_label_frame():
    img = E.sample_images()["grace_hopper"]
    out = W.label_frame(img)
    assert out.shape == img.shape and out.dtype == np.uint8
    changed = np.any(out != img, axis=-1)
    ys, xs = np.nonzero(changed)
    assert ys.min() > 512 * 0.8 and xs.min() > 512 * 0.55        # only the bottom-right corner
    assert changed.mean() < 0.03
    assert np.array_equal(img, E.sample_images()["grace_hopper"])  # input untouched


# ---------------------------------------------------------------------------------------------- attacks
def test_clean_master(hopper_clip):
    _, marked, master = hopper_clip
    d = W.detect_frames(master)
    assert d.found and d.payload == PAYLOAD and d.frames_used == 75
    assert d.confidence > 1 - 1e-6 and d.z > 15


@pytest.mark.parametrize("attack", [a for a in E.ATTACKS if not a.startswith("none")])
def test_each_attack_recovers_payload_exactly(hopper_clip, attack):
    _, _, master = hopper_clip
    frames = E.ATTACKS[attack](master, np.random.default_rng(3))
    d = W.detect_frames(frames)
    assert d.found, (attack, d.z)
    assert d.payload == PAYLOAD
    if "crop" in attack:
        assert frames[0].shape[0] < 512 and d.scale < 1.0
    if "30 fps" in attack:
        assert len(frames) == 90


def test_harder_portrait_survives_crf28(hopper_clip):
    img = E.sample_images()["astronaut"]
    wm = W.Watermarker(PAYLOAD ^ 0xFFFF, 512, 512)
    marked = [wm.embed(f, i) for i, f in enumerate(E.talking_frames(img, 50, seed=11))]
    d = W.detect_frames(E._reencode(marked, 28))
    assert d.found and d.payload == PAYLOAD ^ 0xFFFF


def test_destroyed_mark_is_not_misread(hopper_clip):
    """Far beyond the design point (CRF 51 at 1/4 size): no detection, and never a wrong payload."""
    _, _, master = hopper_clip
    d = W.detect_frames(E._reencode(master[:25], 51, size=(128, 128)))
    assert (not d.found) or d.payload == PAYLOAD


def test_detect_video_file_with_audio(tmp_path, hopper_clip):
    _, marked, _ = hopper_clip
    path = tmp_path / "clip.mp4"
    E.encode_mp4(marked[:50], path, crf=23)
    import av

    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.name == "h264" and len(c.streams.audio) == 1
    d = W.detect_video(path)
    assert d.found and d.payload == PAYLOAD and d.frames_used == 50
    assert d.to_dict()["payload_hex"] == W.payload_hex(PAYLOAD)


# ---------------------------------------------------------------------------------------------- unmarked media
def test_unmarked_clips_stay_unmarked(hopper_clip):
    frames, _, _ = hopper_clip
    d = W.detect_frames(E.decode_bytes(E.encode_mp4(frames, crf=18, audio=False)))
    assert not d.found and d.payload is None and d.z < W.Z_THRESHOLD
    img = E.sample_images()["astronaut"]
    d = W.detect_frames(E.talking_frames(img, 30, seed=5))
    assert not d.found


def test_unmarked_real_frames_stay_unmarked():
    zs = []
    for f in E.negative_frames(40, seed=123):
        d = W.detect_frames([f])
        assert not d.found
        zs.append(d.z)
    # under H0 the best of ~2.6M sync scores sits near sqrt(2 ln N) ~ 5.4, not at the threshold
    assert np.median(zs) < 6.0


def test_marked_with_another_payload_reads_that_payload():
    img = E.sample_images()["grace_hopper"]
    a, b = 0x12345678, 0x87654321
    fa = W.Watermarker(a, 512, 512).embed(img)
    fb = W.Watermarker(b, 512, 512).embed(img)
    assert W.detect_frames([fa]).payload == a
    assert W.detect_frames([fb]).payload == b


def test_evaluate_runs_small():
    res = E.evaluate(n_clips=1, seconds=2.2, n_negative_frames=5, library=False)
    assert {r["attack"] for r in res["attacks"]} == set(E.ATTACKS)
    assert res["unmarked_frames"]["frames"] == 5 and res["unmarked_frames"]["false_detections"] == 0
    assert res["timing"]["embed_ms_mean"] < 10
    assert "| H.264 CRF 28 |" in E.format_report(res)
