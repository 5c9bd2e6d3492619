"""Train the learned motion generator (`vasa_core.motion_model`) on talking videos: your own motion style.

    python -m tools.train_motion --videos DIR [--videos DIR2 ...] --out MODEL.npz [--order 3] [--ridge 1.0]
                                 [--tracks TRACKS.npz] [--save-tracks TRACKS.npz] [--holdout NAME ...]
                                 [--min-seconds 2]

The videos (with their own speech) are tracked by `tools.motion_data` (or `--tracks` reads tracks it wrote);
then, in closed form:
  1. the tracks become the model's state in the face rig's units (`to_state`): head angles minus the clip's
     median, translation from inter-ocular distances (IOD) to fractions of the output side, brows and lids from
     IOD to `brow_raise` / `lid_tension` through the reference rig's own response (`rig_units`: the rig of
     matplotlib's Grace Hopper portrait, deformed by +-1 of each), gaze minus the clip's median; lids inside
     blinks are interpolated (blinks are events, not lid state);
  2. each frame's conditioning is what the generator computes from the same prosody (`motion_model.drives`);
  3. ridge regression of the state, each clip divided by its own s.d. (every speaker's dynamics count alike),
     on its `order` previous frames and the conditioning; the residuals give the innovation variance in
     silence and in speech and their correlation; the AR part is shrunk if it is not stable; the generated
     state is scaled by the mean over clips of their s.d. (`clip_scale`) and smoothed causally (OUTPUT_TAU_S),
     and that scale is corrected by running the generator on the training clips' prosody (`simulated_sd`);
  4. the blink hazard: logistic regression of blink onsets on pauses, phrase ends, level and time since the
     last blink (Newton steps); the blink lengths are kept.
`--holdout NAME` (repeatable, a substring of clip names) leaves clips out of training and reports the one-step
negative log-likelihood per frame on them for orders 1-4 with and without the audio (how the order was chosen).
Use it with `python -m vasa_core generate --motion-model MODEL.npz ...`.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import replace

import numpy as np

from vasa_core.motion_model import (BLINK_COND, COND, STATE, STATE_LIMITS, MotionModel, noise_drive,
                                    blink_features, conditioning, drives)

FPS = 25.0
# rig gaze degrees per tracked gaze degree: the renderer's eyes at gaze_x = +-15 (Grace Hopper, 512 px) track
# as +2.7 / -5.2 degrees with `tools.motion_data`'s iris measure (~0.27 tracked per rig degree, i.e. a gain of
# ~3.7); a gain of 2 is used because the tracked iris of real video also carries glances away from the camera
# and jitter (0.2 deg s.d. on a still clip)
GAZE_GAIN = 2.0
# the generated state is smoothed causally (two one-pole lags of this time constant, seconds): the AR model
# cannot make the tracks' own smoothing (Savitzky-Golay, 5 frames). On the held-out speakers (their own tracks:
# Delta-P 0.68 deg/frame), with the variance calibration: 0.05 s: 0.89, 0.08 s: 0.71,
# 0.12 s: 0.57 (before the calibration, 0.05 s gave 0.65 at a third less spread)
OUTPUT_TAU_S = 0.08
MIRROR = np.array([-1.0 if n in ("yaw", "roll", "tx", "gaze_x") else 1.0 for n in STATE])


def rig_units() -> dict:
    """How the reference face rig's measures respond to its parameters: brow height per IOD at brow_raise
    +1 / -1, lid opening per IOD at lid_tension +1 / -1 and at brow_raise +1 / -1 (changes from neutral), and
    the IOD as a fraction of the output side."""
    from tools.stats import _reference_rig, face_measures
    from vasa_core.face import deform
    rig = _reference_rig()

    def m(**f):
        return face_measures(deform(rig, f))
    base = m()
    up, down = m(brow_raise=1.0), m(brow_raise=-1.0)
    return {"brow_up": up["brow"] - base["brow"], "brow_down": base["brow"] - down["brow"],
            "lid_narrow": base["lid"] - m(lid_tension=1.0)["lid"], "lid_widen": m(lid_tension=-1.0)["lid"] - base["lid"],
            "lid_per_brow_up": up["lid"] - base["lid"], "lid_per_brow_down": down["lid"] - base["lid"],
            "iod_frac": float(rig.iod) / 256.0, "gaze_gain": GAZE_GAIN}


def _rms(a: float, b: float) -> float:
    return float(np.sqrt((a * a + b * b) / 2))


def _interp_nan(x: np.ndarray) -> np.ndarray:
    ok = np.isfinite(x)
    if ok.sum() < 2:
        return x
    out = x.copy()
    out[~ok] = np.interp(np.flatnonzero(~ok), np.flatnonzero(ok), x[ok])
    return out


def to_state(track: np.ndarray, names: tuple, units: dict) -> tuple[np.ndarray, np.ndarray]:
    """(state (T, len(STATE)), blink (T,) 0/1/NaN) of one clip's tracks (see the module docstring)."""
    col = {n: track[:, i] for i, n in enumerate(names)}
    ok = np.isfinite(col["yaw"])
    blink = col["blink"]
    x = np.full((len(track), len(STATE)), np.nan)
    for k, n in enumerate(("yaw", "pitch", "roll")):
        x[:, k] = col[n] - np.nanmedian(col[n])
    x[:, 3] = col["tx"] * units["iod_frac"]
    x[:, 4] = col["ty"] * units["iod_frac"]
    x[:, 5] = col["scale"] - 1.0
    b = col["brow"] - np.nanmedian(col["brow"])
    # one slope per parameter, the RMS of the rig's response either way: the generated state is symmetric, so
    # a real excursion must map to the units that give back its size on average (with the two one-sided slopes,
    # real lid widening, 2.5x weaker per unit on the rig, became large lid_tension that the rig then drew as
    # narrowing too: held-out lid std 2.16 x100 IOD against the speakers' 1.16)
    x[:, 6] = b / _rms(units["brow_up"], units["brow_down"])
    closed = np.convolve(np.nan_to_num(blink), np.ones(3), mode="same") > 0      # a blink and a frame either side
    lid = np.where(closed, np.nan, col["lid"])
    # the rig's brows move its lid landmarks too: that part of the real lids' motion is left to the brows
    bs = x[:, 6]
    from_brows = np.where(bs > 0, bs * units["lid_per_brow_up"], -bs * units["lid_per_brow_down"])
    lid = lid - from_brows
    lid = lid - np.nanmedian(lid)
    x[:, 7] = -lid / _rms(units["lid_narrow"], units["lid_widen"])
    x[:, 7] = np.where(ok, _interp_nan(x[:, 7]), np.nan)
    x[:, 8] = units["gaze_gain"] * (col["gaze_x"] - np.nanmedian(col["gaze_x"]))
    x[:, 9] = units["gaze_gain"] * (col["gaze_y"] - np.nanmedian(col["gaze_y"]))
    x[~ok] = np.nan
    return x, blink


def clip_scale(clips: list[dict]) -> np.ndarray:
    """Each clip's state s.d. (floored at a quarter of the median clip's, so a nearly still speaker does not
    blow up) is stored as c["sd"]; returns their mean over clips (each clip counts once, not each frame): the
    generated motion's s.d. (on the research media: yaw / pitch / roll 3.9 / 2.3 / 2.4 deg, where DESIGN.md's
    reference real speakers have 3.7 / 2.5 / 2.4; the pooled frames' s.d. is 5.3 / 2.7 / 3.1, dominated by
    the liveliest clips)."""
    sds = np.array([np.nanstd(c["x"], axis=0) for c in clips])
    med = np.nanmedian(sds, axis=0)
    for c, s in zip(clips, sds):
        c["sd"] = np.maximum(np.nan_to_num(s), 0.25 * med)
    return np.nanmean(sds, axis=0)


def clip_arrays(data: dict, units: dict, log=print) -> list[dict]:
    """Per clip: name, state, blink, the generator's drives and conditioning u; every clip also mirrored
    (left-right). A clip whose tracks repeat an earlier clip's (the same video under two names) is left out."""
    names = tuple(str(n) for n in data["track_names"])
    out, seen = [], {}
    for i, name in enumerate(data["names"]):
        sel = data["clip"] == i
        sig = (int(sel.sum()), tuple(np.round(np.nan_to_num(data["track"][sel][:25, 0]), 2)))
        if sig in seen:
            log(f"{name}: left out (the same tracks as {seen[sig]})")
            continue
        seen[sig] = str(name)
        x, blink = to_state(data["track"][sel].astype(np.float64), names, units)
        dr = drives(data["prosody"][sel].astype(np.float64), FPS)
        u = np.stack([conditioning(d) for d in dr])
        prosody = data["prosody"][sel].astype(np.float64)
        out.append({"name": str(name), "x": x, "blink": blink, "drives": dr, "u": u, "prosody": prosody})
        # and mirrored: a head has no preferred side, so the sideways quantities (yaw, roll, tx, gaze_x) must
        # not follow the voice on average, nor drift one way from the portrait's pose at the start of a clip
        out.append({"name": f"{name} (mirrored)", "x": x * MIRROR, "blink": blink, "drives": dr, "u": u,
                    "prosody": prosody})
    return out


def _design(clips: list[dict], sd: np.ndarray, order: int, audio: bool = True, per_clip: bool = True):
    """Regression rows: (inputs [y_{t-1}..y_{t-order}, u_t, 1], targets y_t, noise drive a_t); the state is divided
    by each clip's own s.d. (`per_clip`: every speaker's dynamics count alike, however much they move) or by
    `sd`."""
    X, Y, act = [], [], []
    for c in clips:
        y = c["x"] / (c["sd"] if per_clip else sd)
        for t in range(order, len(y)):
            win = y[t - order:t + 1]
            if not np.isfinite(win).all():
                continue
            u = c["u"][t] if audio else np.zeros(len(COND))
            X.append(np.concatenate([win[:-1][::-1].reshape(-1), u, [1.0]]))
            Y.append(win[-1])
            act.append(noise_drive(c["drives"][t]))
    return np.array(X), np.array(Y), np.array(act)


def fit_ar(clips: list[dict], order: int, ridge: float, audio: bool = True, sd: np.ndarray | None = None) -> dict:
    """Ridge fit of the AR part and the innovations' statistics, in standardised units."""
    d = len(STATE)
    if sd is None:
        sd = clip_scale(clips)
    X, Y, act = _design(clips, sd, order, audio)
    if len(X) < 10 * X.shape[1] // 4:
        raise SystemExit(f"Too little tracked data to fit a motion model: {len(X)} usable frames.")
    reg = ridge * np.eye(X.shape[1])
    reg[-1, -1] = 0.0                                            # the intercept is not shrunk
    W = np.linalg.solve(X.T @ X + reg, X.T @ Y)
    A, B, c = W[:order * d], W[order * d:order * d + len(COND)], W[-1]
    # stability: the companion matrix's spectral radius must stay under 1
    comp = np.zeros((order * d, order * d))
    comp[:d] = A.T.reshape(d, order * d) if order == 1 else np.concatenate([A[k * d:(k + 1) * d].T for k in range(order)], 1)
    comp[d:, :-d] = np.eye((order - 1) * d)
    rho = float(np.max(np.abs(np.linalg.eigvals(comp))))
    shrink = 1.0
    if rho > 0.995:
        shrink = 0.995 / rho
        A = A * np.concatenate([[shrink ** (k + 1)] * d for k in range(order)])[:, None]
    R = Y - (X[:, :order * d] @ A + X[:, order * d:order * d + len(COND)] @ B + c)
    # innovation variance, linear in the noise drive (speaking activity): least squares of r^2 on [1, a]
    G = np.stack([np.ones_like(act), act], 1)
    coef = np.linalg.lstsq(G, R ** 2, rcond=None)[0]
    v0 = np.maximum(coef[0], 1e-4)
    v1 = np.maximum(coef[0] + coef[1], 1e-4) - v0
    scale = np.sqrt(np.maximum(v0 + v1 * act[:, None], 1e-6))
    corr = np.corrcoef((R / scale).T)
    chol = np.linalg.cholesky(corr + 1e-6 * np.eye(d))
    return {"order": order, "A": A, "B": B, "c": c, "sd": sd, "noise": np.stack([v0, v1]), "chol": chol,
            "rho": rho, "shrink": shrink, "frames": len(X)}


def nll(fit: dict, clips: list[dict], audio: bool = True) -> float:
    """Mean one-step negative log-likelihood per frame (nats, standardised units) of clips under a fit."""
    X, Y, act = _design(clips, fit["sd"], fit["order"], audio)
    if not len(X):
        return float("nan")
    d, p = len(STATE), fit["order"]
    mean = X[:, :p * d] @ fit["A"] + X[:, p * d:p * d + len(COND)] @ fit["B"] + fit["c"]
    sd = np.sqrt(np.maximum(fit["noise"][0] + fit["noise"][1] * act[:, None], 1e-6))
    z = np.linalg.solve(fit["chol"], ((Y - mean) / sd).T).T
    logdet = 2 * np.log(np.diag(fit["chol"])).sum() + 2 * np.log(sd).sum(1)
    return float(np.mean(0.5 * (z ** 2).sum(1) + 0.5 * logdet + 0.5 * d * np.log(2 * np.pi)))


def fit_blinks(clips: list[dict], l2: float = 1.0) -> tuple[np.ndarray, np.ndarray, dict]:
    """Logistic hazard weights over BLINK_COND, blink lengths (frames, + 2 for closing and opening) and
    the observed rate."""
    F, yv, lengths, minutes = [], [], [], 0.0
    for c in clips:
        b = c["blink"]
        ok = np.isfinite(b)
        minutes += ok.sum() / FPS / 60
        since, prev = 2.0, 0.0
        run = 0
        for t in range(len(b)):
            if not ok[t]:
                since, prev, run = 2.0, 0.0, 0
                continue
            if b[t] > 0.5:
                if prev < 0.5 and since >= 0.0:
                    F.append(blink_features(c["drives"][t], since))
                    yv.append(1.0)
                run += 1
            else:
                if run:
                    lengths.append(run + 2)
                    since = 0.0
                    run = 0
                else:
                    F.append(blink_features(c["drives"][t], since))
                    yv.append(0.0)
                since += 1 / FPS
            prev = b[t]
    F, yv = np.array(F), np.array(yv)
    w = np.zeros(len(BLINK_COND))
    w[0] = np.log(max(yv.mean(), 1e-4) / (1 - max(yv.mean(), 1e-4)))
    for _ in range(25):                                          # Newton steps, L2 on all but the bias
        p = 1 / (1 + np.exp(-F @ w))
        reg = l2 * np.eye(len(w))
        reg[0, 0] = 0
        g = F.T @ (p - yv) + reg @ w
        H = (F * (p * (1 - p))[:, None]).T @ F + reg
        w = w - np.linalg.solve(H, g)
    rate = float(yv.sum() / max(minutes, 1e-9))
    lengths = np.array(lengths if lengths else [5], np.float64)
    return w, lengths, {"blinks_per_minute_data": round(rate, 1), "blinks": int(yv.sum())}


def train(data: dict, order: int = 3, ridge: float = 1.0, holdout: list[str] = (), command: str = "",
          log=print) -> tuple[MotionModel, dict]:
    """Fit a MotionModel on tracks (the dict `tools.motion_data.build` returns); clips whose names contain a
    holdout substring are left out and scored."""
    units = rig_units()
    clips = clip_arrays(data, units, log)
    train_c = [c for c in clips if not any(h in c["name"] for h in holdout)]
    mirrored_test = [c for c in clips if any(h in c["name"] for h in holdout) and c["name"].endswith("(mirrored)")]
    test_c = [c for c in clips if any(h in c["name"] for h in holdout) and c not in mirrored_test]
    if not train_c:
        raise SystemExit("Every clip was held out; nothing is left to train on.")
    report = {"units": {k: round(v, 5) for k, v in units.items()}}
    sd = clip_scale(train_c)
    if test_c:
        clip_scale(test_c)
        table = {}
        for p in (1, 2, 3, 4):
            for audio in (True, False):
                f = fit_ar(train_c, p, ridge, audio, sd)
                table[f"order {p}{'' if audio else ', no audio'}"] = {
                    "train": round(nll(f, train_c, audio), 4), "held_out": round(nll(f, test_c, audio), 4)}
        report["nll_per_frame"] = table
        log(json.dumps(table, indent=1))
    fit = fit_ar(train_c, order, ridge, True, sd)
    allx = np.concatenate([c["x"] for c in train_c])
    lo = np.nanpercentile(allx, 0.5, axis=0)
    hi = np.nanpercentile(allx, 99.5, axis=0)
    for k, n in enumerate(STATE):
        if n in STATE_LIMITS:
            lo[k], hi[k] = max(lo[k], -STATE_LIMITS[n]), min(hi[k], STATE_LIMITS[n])
    w, lengths, blink_info = fit_blinks(train_c)
    report.update(blink_info)
    report.update({"frames": fit["frames"], "spectral_radius": round(fit["rho"], 4), "shrink": round(fit["shrink"], 4)})
    meta = {"fps": FPS, "clips": [c["name"] for c in train_c if not c["name"].endswith("(mirrored)")],
            "held_out": [c["name"] for c in test_c], "mirrored": True,
            "command": command, "ridge": ridge, "report": report, "output_tau_s": OUTPUT_TAU_S,
            "state_sd": dict(zip(STATE, np.round(sd, 5).tolist()))}
    model = MotionModel(order=order, A=fit["A"], B=fit["B"], c=fit["c"], sd=sd, noise=fit["noise"], chol=fit["chol"],
                        lo=lo, hi=hi, blink=w, blink_frames=lengths, meta=meta)
    model.check()
    # variance calibration: the fitted process, run on the training clips' own prosody, comes out with a smaller
    # s.d. than the clips' (ridge shrinkage, the output smoothing); its scale is corrected to the target
    gain = sd / simulated_sd(model, train_c)
    report["variance_gain"] = dict(zip(STATE, np.round(gain, 3).tolist()))
    model = replace(model, sd=sd * gain)
    model.check()
    return model, report


def simulated_sd(model: MotionModel, clips: list[dict], seeds: int = 2) -> np.ndarray:
    """The s.d. per state dimension of what the generator makes from the clips' prosody (mean over clips)."""
    from vasa_core.motion import PARAMS, MotionControls
    from vasa_core.motion_model import LearnedMotionGenerator
    cols = [PARAMS.index(n) for n in STATE]
    out = []
    for c in clips:
        if c["name"].endswith("(mirrored)"):
            continue
        for seed in range(seeds):
            gen = LearnedMotionGenerator(FPS, MotionControls(seed=seed), model)
            rows = np.concatenate([gen.push(c["prosody"]), gen.finish()])
            x = rows[:, cols].astype(np.float64)
            x[:, STATE.index("scale")] -= 1.0
            out.append(x.std(0))
    return np.maximum(np.mean(out, 0), 1e-9)


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.train_motion", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", action="append", default=[], help="folder of talking videos (repeatable)")
    parser.add_argument("--tracks", help="tracks written by tools.motion_data (instead of --videos)")
    parser.add_argument("--save-tracks", help="also write the tracks of --videos here")
    parser.add_argument("--out", required=True, help="output weights (.npz)")
    parser.add_argument("--order", type=int, default=3, help="autoregressive order (frames)")
    parser.add_argument("--ridge", type=float, default=1.0)
    parser.add_argument("--holdout", action="append", default=[], help="leave out clips whose name contains this")
    parser.add_argument("--min-seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    if bool(args.videos) == bool(args.tracks):
        parser.error("give either --videos DIR or --tracks FILE")
    if not 1 <= args.order <= 8:
        parser.error("--order must be between 1 and 8")
    import os
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.tracks:
        with np.load(args.tracks, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    else:
        from tools.motion_data import build, find_videos
        data = build(find_videos(args.videos), min_seconds=args.min_seconds,
                     log=lambda s: print(s, file=sys.stderr, flush=True))
        if args.save_tracks:
            np.savez_compressed(args.save_tracks, **data)
    command = "python -m tools.train_motion " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    model, report = train(data, args.order, args.ridge, args.holdout, command,
                          log=lambda s: print(s, file=sys.stderr, flush=True))
    model.save(args.out)
    print(f"{args.out}: order {model.order}, {report['frames']} frames from {len(model.meta['clips'])} clips (and "
          f"their mirror images); "
          f"{report['blinks_per_minute_data']} blinks/min in the data")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())
