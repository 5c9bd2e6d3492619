"""Train the bundled detector in one command (data generation, cross-validated evaluation, final model).

    .venv/bin/python -m tools.evals.train --media ../shared/media --work ../build/detector

1. `data.build`: unmarked fakes from the current renderer (paired with each real clip's first frame and own
   audio, plus portraits x voices), every clip re-encoded by the same variants, features cached in WORK
   (real clips' features are reused across renderer versions; fakes are remade when vasa_core/ changes);
2. `evaluate.run`: grouped 5-fold cross-validation (split by person) -> held-out scores, Platt calibration,
   thresholds, the evaluation record; a final model on all rows;
3. checks that the score ignores our watermark and the visible label, and measures speed;
4. writes assets/detector.pkl and assets/detector_eval.json (the Detector report reads only these).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from safety import detector as D
from tools.evals import data as E
from tools.evals import evaluate as V


def watermark_invariance(media: Path, model: D.DetectorModel, n: int = 4, seed: int = 5) -> dict:
    """Render `n` held-aside fakes, write each unmarked and with our watermark + visible label (same encoder),
    and compare forensic scores. Returns {"max_abs_diff", "mean_abs_diff", "pairs": [[unmarked, marked], ...]}."""
    from safety.watermark import Watermarker, label_frame, new_payload
    from safety.publish import build_pipeline
    specs = [s for s in E.fake_specs(media, seed=seed) if s.kind in ("portrait", "package")]
    rng = np.random.default_rng(seed)
    pipe = build_pipeline(size=512, device="cpu")
    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        for s in rng.permutation(len(specs)):
            if len(pairs) >= n:
                break
            spec = specs[int(s)]
            samples = E.read_audio(spec.audio, spec.audio_start, min(spec.seconds, 8.0), 48_000)
            if samples is None:
                continue
            import io

            import soundfile as sf
            wav = io.BytesIO()
            sf.write(wav, samples, 48_000, format="WAV")
            try:
                audio = pipe.load_audio(wav.getvalue())
                frames = list(pipe.frames(E.spec_image(spec), pipe.motion(audio, **spec.controls)))
            except Exception:
                continue
            marker = Watermarker(new_payload(), frames[0].shape[1], frames[0].shape[0])
            marked = [label_frame(marker.embed(f, i)) for i, f in enumerate(frames)]
            a, b = Path(tmp) / "a.mp4", Path(tmp) / "b.mp4"
            E.encode(frames, pipe.fps, samples, 48_000, E.PRODUCT_CRF, a)
            E.encode(marked, pipe.fps, samples, 48_000, E.PRODUCT_CRF, b)
            pairs.append([model.score_clip(D.clip_features(a)), model.score_clip(D.clip_features(b))])
    d = np.abs(np.diff(np.array(pairs), axis=1)) if pairs else np.zeros((0, 1))
    return {"n": len(pairs), "max_abs_diff": float(d.max()) if len(d) else None,
            "mean_abs_diff": float(d.mean()) if len(d) else None, "pairs": pairs}


def speed(media: Path, model: D.DetectorModel) -> dict:
    """Seconds to score a 512x512 clip of ours (forensic only, and with the watermark check), x real time."""
    fakes = sorted((p for p in Path(media).rglob("*.mp4")), key=lambda p: -p.stat().st_size)
    out = {}
    for p in fakes:
        dur, _ = E.probe(p)
        import av
        with av.open(str(p)) as c:
            w, h = c.streams.video[0].width, c.streams.video[0].height
        if (w, h) == (512, 512) and dur >= 8:
            D.detect(p, check_watermark=False, model=model)          # warm-up (mediapipe graph)
            analysed = min(dur, D.MAX_WINDOWS * D.WINDOW_SECONDS)
            t = time.perf_counter()
            D.detect(p, check_watermark=False, model=model)
            tf = time.perf_counter() - t
            t = time.perf_counter()
            D.detect(p, check_watermark=True, model=model)
            tw = time.perf_counter() - t
            out = {"clip_seconds": round(dur, 2), "analysed_seconds": round(analysed, 2),
                   "forensic_seconds": round(tf, 3), "forensic_x_realtime": round(analysed / tf, 1),
                   "with_watermark_seconds": round(tw, 3), "with_watermark_x_realtime": round(analysed / tw, 1)}
            break
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.evals.train", description=__doc__.split("\n")[0])
    ap.add_argument("--media", default=str(D.ROOT.parent / "shared" / "media"), help="research media folder")
    ap.add_argument("--work", default=str(V.DEFAULT_WORK), help="where fakes and features are cached")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(D.MODEL_PATH))
    ap.add_argument("--eval-out", default=str(D.EVAL_PATH))
    ap.add_argument("--skip-build", action="store_true", help="use the cached features as they are")
    ap.add_argument("--wm-clips", type=int, default=4, help="clips for the watermark/label invariance check")
    ap.add_argument("--blends", action="store_true",
                    help="also train on the self-blended mouth pseudo-fakes (measured: no gain on other generators, "
                         "lower recall on ours; off by default)")
    args = ap.parse_args(argv)
    media, work = Path(args.media), Path(args.work)
    t0 = time.time()
    commit = E.renderer_commit()
    if not args.skip_build:
        info = E.build(media, work, workers=args.workers, with_blends=args.blends)
        commit = info["commit"]
        print(f"data: {info['n_fakes']}/{info['n_fake_specs']} fakes made, {len(info['records'])} items "
              f"({time.time() - t0:.0f} s)", file=sys.stderr)
    records, commit = V.load_records(work, None if args.skip_build else commit)
    blends = [r for r in records if r["item"]["kind"] == "blend"]
    records = [r for r in records if r["item"]["kind"] != "blend" or args.blends]
    ev, model = V.run(records, commit)
    if blends and not args.blends:      # the experiment that did not help, kept in the record
        ev["ablation_with_self_blended"] = V.summary(V.run(records + blends, commit)[0])
    rows = [r for r in V.table(records) if r["kind"] != "other"]
    ev["cue_importance_auc_drop"] = V.feature_importance(model, rows)
    print("evaluation done; checking watermark invariance and speed", file=sys.stderr)
    if args.wm_clips:
        ev["watermark_invariance"] = watermark_invariance(media, model, args.wm_clips)
    ev["speed"] = speed(work / "fakes" / commit, model)
    ev["meta"]["trained_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    ev["meta"]["train_seconds"] = round(time.time() - t0)
    model = D.DetectorModel(**{**model.__dict__, "meta": ev["meta"]})
    D.save_model(model, args.out)
    Path(args.eval_out).write_text(json.dumps(ev, indent=1, default=float))
    print(D.report_markdown(ev))
    print(json.dumps({k: ev.get(k) for k in ("watermark_invariance", "speed", "cue_importance_auc_drop")},
                     default=float, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
