"""The bundled deepfake detector (safety.detector, tools.evals): a tiny training run and leave-one-generator-out
pass on clips made here, the shipped weights (they load, they match the renderer version of the code), a
generated (watermarked) and an unmarked clip, bad files, the CLI, batch scans and the report.

Clips are made here from package media (Grace Hopper, the astronaut, assets/default_speech.ogg): generated
ones with the pipeline, "camera" ones by moving a photo with noise and flicker (a stand-in for real video,
only to exercise the training code; the research media are never needed)."""
from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest

from safety import detector as D
from tools.evals import data as E
from tools.evals import evaluate as V

SECONDS = 3.0


def _speech_wav(default_audio, seconds: float = SECONDS, offset: float = 0.0) -> bytes:
    import soundfile as sf
    x = E.read_audio(default_audio, offset, seconds, 48_000)
    buf = io.BytesIO()
    sf.write(buf, x, 48_000, format="WAV")
    return buf.getvalue()


def _camera_clip(img: np.ndarray, path, seed: int, seconds: float = SECONDS, fps: float = 25.0,
                 audio: np.ndarray | None = None) -> None:
    """A photo filmed by a shaky, noisy camera: global sub-pixel drift, sensor noise, brightness flicker."""
    import cv2
    rng = np.random.default_rng(seed)
    h, w = img.shape[:2]
    s = 512 / min(h, w)
    img = cv2.resize(img, (int(w * s), int(h * s)))[:512, :512]
    frames, drift = [], np.zeros(2)
    for i in range(int(seconds * fps)):
        drift = 0.9 * drift + rng.normal(0, 0.6, 2)
        m = np.float32([[1, 0, drift[0]], [0, 1, drift[1]]])
        f = cv2.warpAffine(img, m, (512, 512), borderMode=cv2.BORDER_REFLECT).astype(np.float32)
        f = f * (1 + 0.02 * math.sin(2 * math.pi * 1.2 * i / fps)) + rng.normal(0, 3, f.shape)
        frames.append(np.clip(f, 0, 255).astype(np.uint8))
    E.encode(frames, fps, audio, 16_000, 23, path)


@pytest.fixture(scope="module")
def clips(tmp_path_factory, hopper_path, astronaut, default_audio):
    """Clips the tests need: generated (watermarked + label, via write), the same frames unmarked, a second
    unmarked fake, two camera clips, and a file that is not a video."""
    from safety.publish import build_pipeline
    d = tmp_path_factory.mktemp("detector")
    pipe = build_pipeline(size=512, device="cpu")
    wav = _speech_wav(default_audio)
    out = pipe.write(hopper_path, wav, d / "generated.mp4", seed=0, label=True)
    audio = pipe.load_audio(wav)
    frames = list(pipe.frames(hopper_path, out.motion))           # the renderer's frames, no mark, no label
    E.encode(frames, pipe.fps, audio.samples, audio.sample_rate, E.PRODUCT_CRF, d / "unmarked.mp4")
    wav2 = _speech_wav(default_audio, offset=4.0)
    audio2 = pipe.load_audio(wav2)
    frames2 = list(pipe.frames(astronaut, pipe.motion(audio2, seed=3)))
    E.encode(frames2, pipe.fps, audio2.samples, audio2.sample_rate, E.PRODUCT_CRF, d / "unmarked_astronaut.mp4")
    import matplotlib.image
    hopper = np.asarray(matplotlib.image.imread(hopper_path))
    speech16 = E.read_audio(default_audio, 0.0, SECONDS, 16_000)
    _camera_clip(hopper, d / "camera_hopper.mp4", 1, audio=speech16)
    _camera_clip(astronaut, d / "camera_astronaut.mp4", 2, audio=speech16)
    _camera_clip(hopper[::-1].copy()[::-1], d / "camera_hopper2.mp4", 3, audio=None)
    (d / "not_a_video.mp4").write_text("this is text, not a video\n")
    return d


def test_features_are_finite_and_named(clips):
    sig = D.extract_signals(clips / "unmarked.mp4")
    assert sig.landmarks.shape[1:] == (478, 3) and len(sig.sample_t) == pytest.approx(SECONDS * 12.5, abs=1)
    X = D.clip_features(clips / "unmarked.mp4")
    assert X.shape == (1, len(D.FEATURE_NAMES))
    named = dict(zip(D.FEATURE_NAMES, X[0]))
    assert named["face_found_frac"] == 1.0
    # a face was tracked and audio read: kinematic, lip-audio (both the loudness and the mouth model's),
    # mouth-appearance and face-texture cues are all present
    for k in ("mouth_open_std", "head_roll_speed", "ear_mean", "av_energy_corr_max", "av_model_corr_max",
              "mouth_flicker", "lip_edge", "face_hf_vs_wide", "face_res_corr", "rppg_std"):
        assert np.isfinite(named[k]), k
    assert np.isfinite(X).mean() > 0.9
    # the signals round-trip through the cache format and give the same features
    path = clips / "sig.npz"
    sig.save(path)
    again = D.features(D.ClipSignals.load(path))
    assert np.allclose(np.nan_to_num(again), np.nan_to_num(D.features(sig)), atol=1e-3)


def test_a_clip_without_audio_has_no_lip_audio_cues(clips):
    named = dict(zip(D.FEATURE_NAMES, D.clip_features(clips / "camera_hopper2.mp4")[0]))
    assert all(math.isnan(named[k]) for k in D.CUE_GROUPS["lip_audio"])
    assert np.isfinite(named["mouth_open_std"])


def _rows(clips, tmp_path):
    """Training rows from the test's clips: two 'generators' (our two fakes) and three camera clips."""
    spec = (("unmarked", 1, "ours", "hopper"), ("unmarked_astronaut", 1, "astro_gen", "astronaut"),
            ("camera_hopper", 0, "", "hopper"), ("camera_astronaut", 0, "", "astronaut"),
            ("camera_hopper2", 0, "", "hopper2"))
    rows = []
    for name, label, gen, group in spec:
        it = E.Item(id=f"t:{name}", path=str(clips / f"{name}.mp4"), label=label, group=group,
                    kind="real" if not label else ("ours" if gen == "ours" else "other"), generator=gen,
                    variants=("clean", "hard", "crf35"))
        for v, p in E.item_signals(it, tmp_path).items():
            assert not p.startswith("error"), p
            rows.append({"id": it.id, "kind": it.kind, "generator": gen, "group": group, "label": label,
                         "variant": v, "x": D.features(D.ClipSignals.load(p))})
    return rows


def test_tiny_training_and_leave_one_generator_out(clips, tmp_path):
    """The training code path (signals -> features -> LOGO -> calibration -> thresholds -> final model) runs on
    tiny data, and the final model separates its own training clips."""
    from tools.evals import train as T
    rows = _rows(clips, tmp_path)
    assert len(rows) == 15
    res = V.logo(rows, "logreg", folds=2, progress=False)
    ev = V.summarise(res, rows)
    # with five clips some (fold, generator) pairs have nothing left to train on and are skipped; what is
    # scored was scored by a model that never saw that generator
    scored = {d["generator"] for d in ev["per_generator"]}
    assert scored and scored <= {"ours", "astro_gen"}
    assert all(0.0 <= d["auc"] <= 1.0 for d in ev["per_generator"] if not math.isnan(d["auc"]))
    assert 0.0 <= ev["headline"]["real_fpr"] <= 1.0
    md = V.report_markdown({**ev, "thresholds": {"real": 0.3, "generated": 0.6}, "meta": {}})
    assert all(f"| {'our renderer (left out too)' if g == 'ours' else g} |" in md for g in scored)
    assert "VASA-1" in md and "unsourced" in md
    model = T.train_final(rows, "logreg", {"renderer_version": "test"})
    lo, hi = model.thresholds
    assert 0 <= lo <= hi <= 1
    fake = model.score_clip(rows[0]["x"][None])
    real = model.score_clip(rows[6]["x"][None])
    assert rows[0]["label"] == 1 and rows[6]["label"] == 0
    assert 0 <= real < fake <= 1
    D.save_model(model, tmp_path / "tiny.pkl")
    again = D.load_model(tmp_path / "tiny.pkl")
    assert again.feature_names == D.FEATURE_NAMES and again.renderer_version == "test"
    assert abs(again.score_clip(rows[0]["x"][None]) - fake) < 1e-9


def test_shipped_weights_match_the_renderer_version():
    """Retrain (`python -m tools.evals.train`) after any change to rendering: the shipped weights record the
    renderer version they were trained on, and it must be the code's."""
    from vasa_core.render import RENDERER_VERSION
    model = D.load_model()
    assert model.renderer_version == RENDERER_VERSION, (
        f"assets/detector.pkl was trained on renderer {model.renderer_version}, the code is {RENDERER_VERSION}: "
        "retrain with `python -m tools.evals.train`")
    ev = json.loads(D.EVAL_PATH.read_text())
    assert ev["meta"]["renderer_version"] == RENDERER_VERSION


def test_shipped_model_scores_generated_and_unmarked_clips(clips):
    model = D.load_model()
    assert model.feature_names == D.FEATURE_NAMES and len(model.medians) == len(D.FEATURE_NAMES)
    gen = D.detect(clips / "generated.mp4")
    assert gen.watermark["found"] and len(gen.watermark["payload"]) == 8
    assert gen.verdict == "generated" and gen.fake_score == 1.0
    un = D.detect(clips / "unmarked.mp4")
    assert un.watermark == {"found": False, "payload": None, "confidence": 0.0}
    assert 0.0 <= un.forensic_score <= 1.0 and un.fake_score == un.forensic_score
    assert un.verdict in ("generated", "real", "uncertain")
    # the forensic model does not use the watermark or the visible label: same frames, nearly the same score
    assert abs(gen.forensic_score - un.forensic_score) < 0.15, (gen.forensic_score, un.forensic_score)
    assert set(un.cues) == set(D.CUE_GROUPS) and len(un.drivers()) == 3
    d = json.loads(json.dumps(un.to_dict()))
    assert set(d) == {"fake_score", "verdict", "watermark", "forensic_score", "cues", "seconds"}
    assert "audit" not in json.dumps(gen.to_dict()) and "sha" not in json.dumps(gen.to_dict())


def test_bad_files_get_one_sentence(clips, tmp_path):
    for p in (clips / "not_a_video.mp4", tmp_path / "missing.mp4"):
        with pytest.raises(D.DetectorError) as e:
            D.detect(p)
        msg = str(e.value)
        assert msg.endswith(".") and "\n" not in msg and str(p) not in msg


def test_cli_json(clips, capsys):
    assert D.cli(["detect", str(clips / "unmarked.mp4"), "--json", "--no-watermark"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["verdict"] in ("generated", "real", "uncertain") and 0 <= row["fake_score"] <= 1
    assert row["watermark"] is None


def test_batch_scan_is_resumable_and_survives_bad_files(clips, tmp_path, capsys):
    lst = tmp_path / "clips.txt"
    lst.write_text("\n".join(str(clips / n) for n in ("unmarked.mp4", "not_a_video.mp4", "camera_hopper.mp4")))
    out = tmp_path / "results.jsonl"
    assert D.cli(["detect", str(lst), "--out", str(out), "--no-watermark"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 3
    assert sum("error" in r for r in rows) == 1 and all("fake_score" in r for r in rows if "error" not in r)
    assert "3/3" in capsys.readouterr().err            # the progress bar
    from tools.detector_scan import scan
    assert scan(D.list_clips([str(lst)]), out, check_watermark=False) == 0     # resumed: nothing left
    assert len(out.read_text().splitlines()) == 3


@pytest.mark.slow
def test_batch_scan_on_local_ray(clips, tmp_path):
    """`--ray auto` on a one-CPU local Ray instance this test starts: one task per clip, bad files reported."""
    import ray
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(D.ROOT), "OMP_NUM_THREADS": "1"}})
    try:
        out = tmp_path / "ray.jsonl"
        paths = [str(clips / "unmarked.mp4"), str(clips / "not_a_video.mp4")]
        assert D.cli(["detect", *paths, "--out", str(out), "--ray", "auto", "--no-watermark"]) == 0
    finally:
        ray.shutdown()
    rows = {r["path"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert "error" in rows[paths[1]]
    local = D.detect(paths[0], check_watermark=False)
    assert abs(rows[paths[0]]["forensic_score"] - local.forensic_score) < 1e-6


def test_report_from_shipped_evaluation():
    md, figs = D.report()
    assert "leave-one-generator-out" in md and "| generator left out |" in md
    assert "Own clips" in md and "VASA-1" in md and "unsourced" in md
    assert len(figs) == 3
    ev = json.loads(D.EVAL_PATH.read_text())
    assert ev["thresholds"]["generated"] >= ev["thresholds"]["real"]
    gens = [d for d in ev["per_generator"] if d["generator"] != "ours"]
    assert len(gens) >= 20 and all(d["auc_ci"][0] <= d["auc"] <= d["auc_ci"][1] for d in gens if d.get("auc_ci"))
