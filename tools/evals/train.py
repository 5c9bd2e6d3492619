"""Re-train the shipped detector in one command (after any change to rendering):

    .venv/bin/python -m tools.evals.train --media ../shared/media --work /tmp/detector

1. `data.build`: our unmarked fakes from the current renderer (RENDERER_VERSION), every clip's signals in the
   same re-encoding variants, cached in WORK (real and other generators' clips are decoded once, ever);
2. `evaluate.logo`: the leave-one-generator-out evaluation (per generator, pooled, own clips, real FPR);
3. the shipped model on every row: Platt calibration and thresholds from a cross-validation on it (split by
   person and generator), medians of the real clips for the per-verdict cue effects, the renderer version;
4. the speed of `detect` on one of our 512x512 clips;
5. writes assets/detector.pkl and assets/detector_eval.json (the Detector report reads only the latter).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from tools.evals import data as E
from tools.evals import evaluate as V


def train_final(rows: list[dict], kind: str, meta: dict):
    """The shipped model: fit on every row, calibrated and thresholded by a cross-validation on the same rows."""
    from safety import detector as D
    (a, b), (lo, hi) = V.inner_calibration(rows, kind, folds=5)
    est = V.fit(rows, kind)
    X = np.stack([r["x"] for r in rows if r["label"] == 0])
    med = np.nanmedian(X, 0)
    med = np.where(np.isfinite(med), med, 0.0)
    return D.DetectorModel(estimator=est, feature_names=D.FEATURE_NAMES, calibration=(a, b), thresholds=(lo, hi),
                           medians=tuple(float(x) for x in med), meta=meta)


def speed(fake_dir: Path, model) -> dict:
    """Seconds `detect` takes on one of our 512x512 fakes (forensic only, and with the watermark check)."""
    from safety import detector as D
    clips = sorted(Path(fake_dir).glob("*.mp4"))
    for p in clips:
        import av
        with av.open(str(p)) as c:
            w, h = c.streams.video[0].width, c.streams.video[0].height
        dur, _ = E.probe(p)
        if (w, h) == (512, 512) and dur >= 7.5:
            D.detect(p, check_watermark=False, model=model)        # warm-up (mediapipe graph, mouth model)
            analysed = min(dur, D.ANALYSIS_SECONDS)
            t = time.perf_counter()
            D.detect(p, check_watermark=False, model=model)
            tf = time.perf_counter() - t
            t = time.perf_counter()
            D.detect(p, check_watermark=True, model=model)
            tw = time.perf_counter() - t
            return {"size": f"{w}x{h}", "clip_seconds": round(dur, 2), "analysed_seconds": round(analysed, 2),
                    "forensic_seconds": round(tf, 3), "forensic_x_realtime": round(analysed / tf, 1),
                    "with_watermark_seconds": round(tw, 3), "with_watermark_x_realtime": round(analysed / tw, 1)}
    return {}


def main(argv: list[str] | None = None) -> int:
    from safety import detector as D
    ap = argparse.ArgumentParser(prog="python -m tools.evals.train", description=__doc__.split("\n")[0])
    ap.add_argument("--media", default=str(E.ROOT.parent / "shared" / "media"), help="research media folder")
    ap.add_argument("--work", default=str(E.DEFAULT_WORK), help="cache of fakes, signals and features")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--model", default="logreg", choices=("hgb", "logreg"))
    ap.add_argument("--out", default=str(D.MODEL_PATH))
    ap.add_argument("--eval-out", default=str(D.EVAL_PATH))
    ap.add_argument("--skip-build", action="store_true", help="use the cached signals as they are")
    ap.add_argument("--fakes-version", help="train on our fakes of this renderer version (already in WORK) "
                    "instead of rendering the current one; the weights record it")
    ap.add_argument("--ablation", action="store_true", help="also each cue group alone (7x the LOGO time)")
    ap.add_argument("--ablation-from", help="a JSON file of an earlier `--ablation` run to carry into the record")
    args = ap.parse_args(argv)
    media, work = Path(args.media), Path(args.work)
    t0 = time.time()
    version = args.fakes_version or E.renderer_version()
    if not args.skip_build and not args.fakes_version:
        E.build(media, work, args.workers)
    rows = V.load_rows(media, work, args.workers, version=version)
    print(f"{len(rows)} rows: {sum(r['label'] == 0 for r in rows)} real, {sum(r['label'] == 1 for r in rows)} "
          f"generated ({time.time() - t0:.0f} s)", file=sys.stderr)
    ev = V.summarise(V.logo(rows, args.model), rows)
    if args.ablation:
        ev["cue_groups"] = V.group_ablation(rows, args.model)
    elif args.ablation_from:
        d = json.loads(Path(args.ablation_from).read_text())
        ev["cue_groups"], ev["cue_groups_note"] = d["cue_groups"], d.get("note", "from an earlier run")
    meta = {"renderer_version": version, "renderer_commit": E.renderer_commit(),
            "feature_version": V.feature_version(), "model": args.model, "n_rows": len(rows),
            "n_clips": len({r["id"] for r in rows}), "n_real_clips": len({r["id"] for r in rows if r["label"] == 0}),
            "n_generators": len({r["generator"] for r in rows if r["label"] == 1}),
            "trained_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    model = train_final(rows, args.model, meta)
    ev["thresholds"] = {"real": model.thresholds[0], "generated": model.thresholds[1]}
    ev["calibration"] = list(model.calibration)
    ev["speed"] = speed(work / "fakes" / version, model)
    meta["train_seconds"] = round(time.time() - t0)
    ev["meta"] = meta
    ev["feature_names"] = list(D.FEATURE_NAMES)
    D.save_model(model, args.out)
    Path(args.eval_out).write_text(json.dumps(ev, indent=1, default=float))
    print(V.report_markdown(ev))
    print(json.dumps({"speed": ev["speed"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
