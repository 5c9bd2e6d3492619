"""Fit the Whisper mouth's readout (`vasa_core.lipsync.whisper_mouth`) on tracked real mouths.

    python -m tools.lipsync.whisper_train --real ../shared/media/real_speech --real ../shared/media/real_video \
        --track-cache build/real_tracks --out assets/mouth_whisper.npz [--alpha 30000] [--folds 8] \
        [--folds-out build/whisper_folds]   # + one readout per fold, for `evaluate --real --heldout-weights`

For every video with >= 1 s of speech (silero-vad) and a tracked face: the real inner-lip gap and mouth width
(`tools.lipsync.real`: the evaluator's tracker and its cache, so the trained and the evaluated mouths are the
same measurements), each z-scored per clip; the clip's sound through the shipped front end (decoded at 48 kHz
as the pipeline does, soxr to 16 kHz, `vasa_core.whisper.encode` with the readout's layers and window),
pooled to 25 fps and read at +-1 and +-2 frames (= the shipped readout's +-2 and +-4 encoder frames).
Ridge regression on standardised features. Scores are out of fold with folds by speaker (`real.speaker_of`):
no speaker is ever scored by a readout that saw them. The calibration (jaw gain, closed level, width gain)
maps the out-of-fold predictions' median range to the real speakers' median range through the face rig's
measured response (`whisper_mouth.RIG_*`). Clips that are not speech (`--exclude`, default liveportrait__d6:
a woman pulling faces) are left out of training and scoring.
"""
from __future__ import annotations

import argparse
import sys
import json
import time
from pathlib import Path

import numpy as np

from vasa_core.lipsync.whisper_mouth import (HEADS, OFFSETS, RIG_GAP_PER_JAW, Readout, context)
from vasa_core.whisper import encode, pool_to_fps

from .real import FPS, cached_track, group_of, list_videos, speaker_of, speech_masks


def clip_data(path: Path, cache: str | None, layers: int, window_s: float, log=print,
              feature_cache: str | None = None) -> dict | None:
    """Features (n, len(OFFSETS) * D) at 25 fps and real targets for one video (None when unusable)."""
    from vasa_core.audio import load_audio, resample_samples
    from vasa_core.errors import InputError
    try:
        audio = load_audio(path, sample_rate=48000)
    except InputError as exc:
        log(f"{path.name}: no usable audio ({exc})")
        return None
    n = max(1, int(round(audio.duration * FPS)))
    x16 = resample_samples(audio.samples, 48000, 16000)
    speech, _ = speech_masks(x16, n)
    if speech.sum() < FPS:
        return None
    track, first = cached_track(path, n, cache)
    if track.valid.mean() < 0.5:
        return None
    cached = Path(feature_cache) / f"{path.stem}_{path.stat().st_size}_L{layers}_W{window_s:g}.npy" \
        if feature_cache else None
    if cached is not None and cached.exists():
        feats = np.load(cached)
    else:
        feats = pool_to_fps(encode(x16, layers=layers, window_s=window_s), FPS, n)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            np.save(cached, feats)
    X = context(feats, tuple(o // 2 for o in OFFSETS)).astype(np.float64)
    raw = np.stack([track.gap, track.width], 1)
    ok = np.all(np.isfinite(raw), 1)
    Y = (raw - np.nanmean(raw[ok], 0)) / np.nanstd(raw[ok], 0)
    return {"name": path.name, "speaker": speaker_of(path.name), "group": group_of(path.name), "X": X, "Y": Y,
            "ok": ok, "speech": speech, "gap_range": float(np.diff(np.nanpercentile(track.gap[speech & ok], [5, 95]))[0]),
            "width_range": float(np.diff(np.nanpercentile(track.width[speech & ok], [5, 95]))[0])}


def _stats(c: dict) -> dict:
    X, Y = c["X"][c["ok"]], c["Y"][c["ok"]]
    return {"n": len(X), "s": X.sum(0), "G": X.T @ X, "XY": X.T @ Y, "ys": Y.sum(0)}


def fit(stats: list[dict], alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ridge on standardised features from summed sufficient statistics -> (mu, sd, weights, bias)."""
    n = sum(s["n"] for s in stats)
    mu = sum(s["s"] for s in stats) / n
    ym = sum(s["ys"] for s in stats) / n
    cov = sum(s["G"] for s in stats) / n - np.outer(mu, mu)
    sd = np.sqrt(np.maximum(np.diag(cov), 1e-12))
    corr = cov / np.outer(sd, sd) * n
    cxy = (sum(s["XY"] for s in stats) / n - np.outer(mu, ym)) / sd[:, None] * n
    w = np.linalg.solve(corr + alpha * np.eye(len(corr)), cxy)
    return mu, sd, w, ym


def predict(c: dict, model) -> np.ndarray:
    mu, sd, w, ym = model
    return ((c["X"] - mu) / sd) @ w + ym


def calibration(clips: list[dict], oof: dict, render_gain: float = 1.0) -> dict:
    """Jaw gain, closed level and width gain that map the out-of-fold predictions' median range (p5-p95 during
    speech) onto the real speakers' median range, through the rig's measured response; the jaw gain times
    `render_gain` (the rendered video shows a smaller inner-lip gap than the rig asks for: see --render-gain)."""
    p5 = np.median([np.percentile(oof[c["name"]][c["speech"], 0], 5) for c in clips])
    rng = lambda c, h: np.diff(np.percentile(oof[c["name"]][c["speech"], h], [5, 95]))[0]
    open_range = np.median([rng(c, 0) for c in clips])
    width_range = np.median([rng(c, 1) for c in clips])
    real_gap = float(np.median([c["gap_range"] for c in clips]))
    real_width = float(np.median([c["width_range"] for c in clips]))
    return {"open_closed": float(p5), "render_gain": float(render_gain),
            "open_gain": float(render_gain * real_gap / (RIG_GAP_PER_JAW * open_range)),
            "width_gain": float(real_width / width_range), "real_gap_range_iod": real_gap,
            "real_width_range_iod": real_width}


def _r(a, b) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.corrcoef(a[ok], b[ok])[0, 1]) if ok.sum() > 10 else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", action="append", required=True, help="folder of real talking videos (repeatable)")
    ap.add_argument("--track-cache", default=None, help="folder for the tracker's cache (outside the repository)")
    ap.add_argument("--out", default="assets/mouth_whisper.npz")
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--window", type=float, default=10.0, help="encoder window, seconds")
    ap.add_argument("--alpha", type=float, default=30000.0)
    ap.add_argument("--folds", type=int, default=8)
    ap.add_argument("--render-gain", type=float, default=1.6,
                    help="jaw gain on top of the rig calibration: the rendered video's tracked gap range was 0.62x "
                         "the real one (median over 42 held-out clips) with 1.0, 2.2x less than the rig's")
    ap.add_argument("--feature-cache", default=None, help="keep each clip's pooled features here (outside the repo)")
    ap.add_argument("--folds-out", default=None, help="also write one readout per fold + heldout.json here")
    ap.add_argument("--exclude", default="liveportrait__d6", help="comma-separated name parts to leave out")
    a = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    t0 = time.time()
    skip = [s for s in a.exclude.split(",") if s]
    clips = []
    for path in list_videos(a.real):
        if any(s in path.name for s in skip):
            continue
        c = clip_data(path, a.track_cache, a.layers, a.window, feature_cache=a.feature_cache)
        if c is not None:
            c.update(_stats(c))
            clips.append(c)
            print(f"{path.name}: {len(c['X'])} frames ({time.time() - t0:.0f} s)", flush=True)
    speakers = sorted({c["speaker"] for c in clips})
    order = np.random.default_rng(0).permutation(len(speakers))
    fold_of = {speakers[i]: k % a.folds for k, i in enumerate(order)}
    oof = {}
    for f in range(a.folds):
        model = fit([c for c in clips if fold_of[c["speaker"]] != f], a.alpha)
        for c in clips:
            if fold_of[c["speaker"]] == f:
                oof[c["name"]] = predict(c, model)
    scores = {}
    for h, head in enumerate(HEADS):
        rs = {c["name"]: _r(oof[c["name"]][:, h], c["Y"][:, h]) for c in clips}
        scores[head] = {"all": float(np.nanmean(list(rs.values())))}
        for g in sorted({c["group"] for c in clips}):
            scores[head][g] = float(np.nanmean([rs[c["name"]] for c in clips if c["group"] == g]))
    base = {"layers": a.layers, "window_s": a.window, "offsets": list(OFFSETS), "heads": list(HEADS),
            "alpha": a.alpha, "cv_folds_by_speaker": a.folds, "cv_r": scores, "clips": len(clips),
            "speakers": len(speakers), "excluded": skip,
            "command": "python -m tools.lipsync.whisper_train " + " ".join(argv if argv is not None else sys.argv[1:])}
    mu, sd, w, ym = fit(clips, a.alpha)
    meta = {**base, **calibration(clips, oof, a.render_gain)}
    Readout(mu.astype(np.float32), sd.astype(np.float32), w.astype(np.float32), ym.astype(np.float32), meta).save(a.out)
    if a.folds_out:
        # one readout per fold, fitted and calibrated without that fold's speakers, for `evaluate --real
        # --heldout-weights`: every clip is then scored by a mouth that never saw its speaker
        out_dir = Path(a.folds_out)
        out_dir.mkdir(parents=True, exist_ok=True)
        mapping = {}
        for f in range(a.folds):
            rest = [c for c in clips if fold_of[c["speaker"]] != f]
            fm = fit(rest, a.alpha)
            path = out_dir / f"fold{f}.npz"
            Readout(*(v.astype(np.float32) for v in fm), {**base, **calibration(rest, oof, a.render_gain), "fold": f}).save(path)
            mapping.update({c["name"]: str(path.resolve()) for c in clips if fold_of[c["speaker"]] == f})
        (out_dir / "heldout.json").write_text(json.dumps(mapping, indent=1))
    print(json.dumps({k: v for k, v in meta.items() if k != "command"}, indent=1))
    print(f"wrote {a.out} ({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
