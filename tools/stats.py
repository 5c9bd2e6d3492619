"""Motion statistics of generated and real talking heads, side by side (DESIGN.md's reference table, issue 27).

    python -m tools.stats AUDIO_OR_VIDEO [...] [--generators default,hand-tuned,W.npz] [--seeds 1]
                          [--compare-seconds 6] [--json] [--min-seconds 0]

For every file: the motion each generator makes from its audio (`--generators`: 'default' = the learned
generator with the shipped weights, 'hand-tuned', or a weights file from `tools.train_motion`), and, when the
file is a video with a face, what mediapipe's face mesh measures on the real person in it (the tracks of
`tools.motion_data`, jitter-filtered as for training):
  delta_p      mean frame-to-frame head rotation at 25 fps (degrees/frame; angle of the relative rotation)
  pose std     yaw / pitch / roll standard deviation (degrees); yaw / pitch range (max - min, degrees)
  scale std    head size (forward/back motion), % of the mean; tx / ty std, % of the frame (generated only)
  blinks/min   and the share of blink onsets within 0.3 s of a pause beside the share of time that is
  brow std     brow height above the eye centres, per inter-ocular distance (IOD), std x 100
  lid std      upper-to-lower lid opening / IOD outside blinks, std x 100
  gap range    inner-lip gap / IOD, p95 - p5
  speed_env_r  Pearson r of head speed (0.2 s smoothing) with the speech envelope (RMS, 0.2 s)
and, over all files per generator: |r| of the head curves (yaw, pitch, roll) of every pair of different clips
over their first `--compare-seconds` (the real people's own curves give the baseline of unrelated heads).
Generated brows, lids and mouth are measured on the same landmarks: the face rig of a reference portrait
(matplotlib's Grace Hopper) deformed by the motion, so they are in the same units as the real video's.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from vasa_core.motion import MotionSequence
from vasa_core.portrait import rotation_matrix

FPS = 25.0
BROW_IDS = (105, 66, 107, 334, 296, 336)
EYE_UP = (159, 386)
EYE_LO = (145, 374)


RIGID_IDS = (33, 133, 362, 263, 1, 4, 5, 6, 168, 197, 195, 10, 151, 9, 8, 234, 454, 93, 323, 127, 356, 21, 251,
             54, 284, 103, 332, 67, 297, 109, 338)   # landmarks that expressions barely move (eyes, nose, brow line)


def rigid_pose(pts: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, float]:
    """Rotation and scale of the head in `pts` relative to `ref` (both (468+, 3)), a least-squares similarity
    fit (Kabsch) over RIGID_IDS: far less jitter than axes from a few landmarks."""
    a = ref[list(RIGID_IDS)] - ref[list(RIGID_IDS)].mean(0)
    b = pts[list(RIGID_IDS)] - pts[list(RIGID_IDS)].mean(0)
    u, sv, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(u @ vt))
    r = u @ np.diag([1, 1, d]) @ vt
    scale = float(np.sqrt((b ** 2).sum() / (a ** 2).sum()))
    return r, scale


def _delta_p(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> float:
    mats = [rotation_matrix(*r) for r in np.stack([yaw, pitch, roll], 1)]
    angles = [np.degrees(np.arccos(np.clip((np.trace(a.T @ b) - 1) / 2, -1, 1))) for a, b in zip(mats, mats[1:])]
    return float(np.mean(angles)) if angles else float("nan")


def motion_stats(m: MotionSequence) -> dict:
    """Delta-P (mean frame-to-frame head rotation, degrees/frame, as the angle of the relative rotation and
    as the per-axis mean), pose std per axis (degrees), head scale / translation std (%), blinks per minute,
    mouth opening range, upper-face parameter std."""
    rot = np.stack([m["yaw"], m["pitch"], m["roll"]], 1).astype(np.float64)
    closed = (m["blink_l"] > 0.5).astype(int)
    minutes = len(m) / m.fps / 60
    scale = m["scale"].astype(np.float64)
    return {"delta_p_deg_per_frame": round(_delta_p(*rot.T), 3),
            "delta_p_per_axis_mean": round(float(np.abs(np.diff(rot, axis=0)).mean()), 3),
            "pose_std_yaw_pitch_roll": [round(float(v), 2) for v in rot.std(0)],
            "scale_std_pct": round(float(100 * scale.std() / scale.mean()), 2),
            "tx_ty_std_pct": [round(float(100 * m[k].std()), 2) for k in ("tx", "ty")],
            "blinks_per_minute": round(float((np.diff(closed) == 1).sum() / minutes), 1),
            "jaw_open_p5_p95": [round(float(v), 3) for v in np.percentile(m["jaw_open"], [5, 95])],
            "param_std": {k: round(float(m[k].std()), 3) for k in ("brow_raise", "cheek_raise", "lid_tension",
                                                                     "smile")}}


def face_measures(pts: np.ndarray) -> dict:
    """Brow height, lid opening and inner-lip gap per IOD from (>=468, 3) landmarks in a head-aligned or
    camera frame (the head's vertical axis is estimated from the landmarks themselves)."""
    from .lipsync.real import lip_measures
    from vasa_core.portrait import head_rotation
    r = head_rotation(pts)
    local = (pts - pts[1]) @ r                     # head frame: y down the face
    eye_r = local[[33, 133]].mean(0)
    eye_l = local[[362, 263]].mean(0)
    iod = np.linalg.norm(eye_l - eye_r)
    eye_y = (eye_r[1] + eye_l[1]) / 2
    brow = (eye_y - local[list(BROW_IDS), 1].mean()) / iod
    lid = np.mean([local[lo, 1] - local[up, 1] for up, lo in zip(EYE_UP, EYE_LO)]) / iod
    gap, _ = lip_measures(pts)
    return {"brow": float(brow), "lid": float(lid), "gap": gap}


def _face_summary(brow, lid, gap, blinks_per_minute) -> dict:
    ok = np.isfinite(lid)
    open_lid = lid[ok]
    thr = 0.55 * np.median(open_lid) if len(open_lid) else 0
    not_blink = ok & (np.nan_to_num(lid) > thr)
    return {"blinks_per_minute": round(float(blinks_per_minute), 1),
            "brow_std_x100": round(float(100 * np.nanstd(brow)), 2),
            "lid_std_x100": round(float(100 * np.std(lid[not_blink])), 2) if not_blink.sum() > 5 else None,
            "gap_p95_p5": round(float(np.diff(np.nanpercentile(gap, [5, 95]))[0]), 3)}


def _blinks(lid: np.ndarray, seconds: float) -> float:
    ok = np.isfinite(lid)
    if ok.sum() < 10:
        return float("nan")
    closed = np.nan_to_num(lid, nan=np.inf) < 0.55 * np.median(lid[ok])
    return float((np.diff(closed.astype(int)) == 1).sum() / (seconds / 60))


_REFERENCE_RIG = None


def _reference_rig():
    """The face rig of matplotlib's Grace Hopper portrait (public domain), built once."""
    global _REFERENCE_RIG
    if _REFERENCE_RIG is None:
        import matplotlib
        from vasa_core.face import build_rig
        from vasa_core.portrait import analyze_portrait
        img = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
        _REFERENCE_RIG = build_rig(analyze_portrait(img, 256))
    return _REFERENCE_RIG


def generated_face_stats(m: MotionSequence) -> dict:
    """Brows, lids, mouth of generated motion measured on the reference rig, in the real video's units."""
    from vasa_core.face import deform
    rig = _reference_rig()
    vals = np.array([list(face_measures(deform(rig, m.frame(i))).values()) for i in range(len(m))])
    brow, lid, gap = vals.T
    closed = (m["blink_l"] > 0.5).astype(int)
    return _face_summary(brow, np.where(m["blink_l"] > 0.3, np.nan, lid), gap,
                         (np.diff(closed) == 1).sum() / (len(m) / m.fps / 60))


# --- head motion against the voice, and between clips (issue 27) ------------------------------------------

def _smooth(x: np.ndarray, k: int = 5) -> np.ndarray:
    return np.convolve(np.nan_to_num(x), np.ones(k) / k, mode="same")


def head_speed(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """Angle of the head's rotation from each frame to the next (degrees/frame, (T,); the last repeats)."""
    mats = [rotation_matrix(*r) for r in np.stack([yaw, pitch, roll], 1)]
    ang = [np.degrees(np.arccos(np.clip((np.trace(a.T @ b) - 1) / 2, -1, 1))) for a, b in zip(mats, mats[1:])]
    return np.array(ang + ang[-1:], np.float64) if ang else np.zeros(len(yaw))


def speech_envelope(loudness_db: np.ndarray) -> np.ndarray:
    """Linear RMS envelope of per-frame loudness (dBFS), smoothed over 5 frames (0.2 s)."""
    return _smooth(10 ** (np.asarray(loudness_db, np.float64) / 20))


def head_voice_stats(yaw, pitch, roll, loudness_db, pause=None) -> dict:
    """Pitch and yaw range (max - min, degrees), and the Pearson r of head speed (smoothed 0.2 s) with the
    speech envelope, over frames where the head is known."""
    yaw, pitch, roll = (np.asarray(v, np.float64) for v in (yaw, pitch, roll))
    ok = np.isfinite(yaw) & np.isfinite(pitch) & np.isfinite(roll)
    speed = _smooth(np.where(ok, head_speed(*(np.nan_to_num(v) for v in (yaw, pitch, roll))), 0.0))
    env = speech_envelope(loudness_db)
    good = ok & np.isfinite(env)
    r = float(np.corrcoef(speed[good], env[good])[0, 1]) if good.sum() > 10 and speed[good].std() > 0 else float("nan")
    return {"yaw_range": round(float(np.nanmax(yaw) - np.nanmin(yaw)), 1),
            "pitch_range": round(float(np.nanmax(pitch) - np.nanmin(pitch)), 1),
            "speed_env_r": round(r, 3)}


def blink_phrase_share(blink: np.ndarray, loudness_db: np.ndarray, fps: float = FPS) -> tuple[float, float]:
    """(share of blink onsets within 0.3 s of a pause, share of frames within 0.3 s of a pause): a pause is a
    frame 25 dB under the clip's loud (p95) level; blinks that favour pauses have the first above the second."""
    loud = np.asarray(loudness_db, np.float64)
    quiet = loud < np.nanpercentile(loud, 95) - 25
    near = np.convolve(quiet.astype(float), np.ones(int(0.6 * fps) + 1), mode="same") > 0
    b = np.nan_to_num(np.asarray(blink, np.float64)) > 0.5
    onsets = np.flatnonzero(np.diff(b.astype(int)) == 1) + 1
    share = float(near[onsets].mean()) if len(onsets) else float("nan")
    return share, float(near.mean())


def curve_correlations(curves: list[np.ndarray], frames: int) -> list[float]:
    """|Pearson r| of every pair of head curves (each (T, 3): yaw, pitch, roll) over their first `frames`
    frames, per axis (pairs x 3 values)."""
    out = []
    for i in range(len(curves)):
        for j in range(i + 1, len(curves)):
            n = min(frames, len(curves[i]), len(curves[j]))
            for k in range(3):
                a, b = curves[i][:n, k], curves[j][:n, k]
                if n > 10 and a.std() > 0 and b.std() > 0:
                    out.append(abs(float(np.corrcoef(a, b)[0, 1])))
    return out


def _real_clip_stats(tracks: dict) -> dict:
    """The statistics of a real video's own tracks (`tools.motion_data.clip_tracks`)."""
    from tools.motion_data import TRACK
    t = tracks["track"]
    col = {n: t[:, i] for i, n in enumerate(TRACK)}
    ok = np.isfinite(col["yaw"])
    seconds = len(t) / FPS
    rot = np.stack([col["yaw"], col["pitch"], col["roll"]], 1)
    share, base = blink_phrase_share(col["blink"], tracks["prosody"][:, 0])
    out = {"seconds": round(seconds, 1), "tracked": round(float(ok.mean()), 2),
           "delta_p_deg_per_frame": round(_delta_p(*rot[ok].T), 3),
           "pose_std_yaw_pitch_roll": [round(float(np.nanstd(v)), 2) for v in rot.T],
           "scale_std_pct": round(float(100 * np.nanstd(col["scale"])), 2),
           "tx_ty_std_pct": [0.0, 0.0],
           "blink_pause_share": [round(share, 2), round(base, 2)]}
    out.update(_face_summary(col["brow"], col["lid"], col["gap"],
                             float(np.nansum(np.diff(np.nan_to_num(col["blink"])) == 1) / (seconds / 60))))
    out.update(head_voice_stats(col["yaw"], col["pitch"], col["roll"], tracks["prosody"][:, 0]))
    return out


def _generated_clip_stats(m: MotionSequence, loudness_db: np.ndarray) -> dict:
    n = min(len(m), len(loudness_db))
    share, base = blink_phrase_share(m["blink_l"][:n], loudness_db[:n])
    return {**motion_stats(m), **generated_face_stats(m), "blink_pause_share": [round(share, 2), round(base, 2)],
            **head_voice_stats(m["yaw"][:n], m["pitch"][:n], m["roll"][:n], loudness_db[:n])}


SUMMARY_KEYS = ("yaw_range", "pitch_range", "brow_std_x100", "lid_std_x100", "blinks_per_minute", "speed_env_r",
                "delta_p_deg_per_frame")


def _summary_row(label: str, group: list[dict], curve_r: list[float] | None) -> str:
    def mean(k):
        v = [g[k] for g in group if g.get(k) is not None and np.isfinite(g[k])]
        return float(np.mean(v)) if v else float("nan")
    r = "—" if not curve_r else f"{np.median(curve_r):.2f} ({np.percentile(curve_r, 90):.2f})"
    share = np.nanmean([g["blink_pause_share"][0] for g in group]), np.nanmean([g["blink_pause_share"][1] for g in group])
    return (f"| {label} | {len(group)} | {r} | {mean('yaw_range'):.1f} | {mean('pitch_range'):.1f} | "
            f"{mean('brow_std_x100'):.2f} | {mean('lid_std_x100'):.2f} | {mean('blinks_per_minute'):.0f} | "
            f"{share[0]:.2f} / {share[1]:.2f} | {mean('speed_env_r'):.2f} | {mean('delta_p_deg_per_frame'):.2f} |")


COMPARE_HEADER = ("| motion | clips | head curves \\|r\\| between clips, median (p90) | yaw range (deg) | pitch range (deg) | "
                  "brow std (x100 IOD) | lid std (x100 IOD) | blinks/min | blinks near pauses / time near pauses | "
                  "head speed vs speech envelope r | Delta-P (deg/frame) |\n" + "|" + "---|" * 11)


def _row(label, st) -> str:
    y, p, r = st["pose_std_yaw_pitch_roll"]
    tx, ty = st["tx_ty_std_pct"]
    lid = st.get("lid_std_x100")
    return (f"| {label} | {st['delta_p_deg_per_frame']:.2f} | {y:.1f} / {p:.1f} / {r:.1f} | {st['scale_std_pct']:.2f} | "
            f"{tx:.2f} / {ty:.2f} | {st['blinks_per_minute']:.0f} | {st['brow_std_x100']:.2f} | "
            f"{'—' if lid is None else f'{lid:.2f}'} | {st['gap_p95_p5']:.2f} |")


HEADER = ("| clip | Delta-P (deg/frame) | pose std yaw / pitch / roll (deg) | scale std (%) | tx / ty std (%) | "
          "blinks/min | brow std (x100 IOD) | lid std (x100 IOD) | lip gap range (IOD) |\n" + "|" + "---|" * 9)


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.stats", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("audio", nargs="+", help="audio files, or videos (their speech track; the real person "
                                                 "in them is measured too)")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--generators", default="default,hand-tuned",
                        help="comma-separated motion models: default, hand-tuned, or weights files")
    parser.add_argument("--compare-seconds", type=float, default=6.0,
                        help="head curves of different clips are correlated over their first this many seconds")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--min-seconds", type=float, default=0.0, help="skip clips shorter than this")
    args = parser.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    from safety.publish import build_pipeline
    from tools.motion_data import VIDEO_EXT, clip_tracks
    from vasa_core.audio import extract_features, resample
    from vasa_core.errors import InputError
    from vasa_core.motion import prosody_at_frames
    generators = [g.strip() for g in args.generators.split(",") if g.strip()]
    pipe = build_pipeline(size=256, device="cpu")
    rows, lines = [], [HEADER]
    curves: dict[str, list[np.ndarray]] = {g: [] for g in generators + ["real"]}
    for path in args.audio:
        try:
            audio = pipe.load_audio(path)
        except InputError as exc:
            print(f"{Path(path).name}: skipped ({exc})")
            continue
        if audio.duration < args.min_seconds:
            continue
        name = Path(path).name
        real = clip_tracks(path) if Path(path).suffix.lower() in VIDEO_EXT else None
        if real is not None:
            loud = real["prosody"][:, 0]
        else:
            feats = extract_features(resample(audio))
            loud = prosody_at_frames(feats, FPS, feats.num_video_frames(FPS))[:, 0]
        try:
            for g in generators:
                for seed in range(args.seeds):
                    m = pipe.motion(audio, seed=seed, motion_model=g)
                    st = {"clip": name, "who": g, "seed": seed, **_generated_clip_stats(m, loud)}
                    rows.append(st)
                    lines.append(_row(f"{name[:40]} {g[-20:]} seed {seed}", st))
                    if seed == 0:
                        curves[g].append(np.stack([m["yaw"], m["pitch"], m["roll"]], 1).astype(np.float64))
        except InputError as exc:
            print(f"{name}: skipped ({exc})")
            continue
        if real is not None:
            st = {"clip": name, "who": "real", **_real_clip_stats(real)}
            rows.append(st)
            lines.append(_row(f"{name[:40]} **real**", st))
            t = real["track"][:, :3].astype(np.float64)
            if np.isfinite(t[:int(args.compare_seconds * FPS)]).all():
                curves["real"].append(t)
    frames = int(args.compare_seconds * FPS)
    lines += ["", COMPARE_HEADER]
    for who in generators + ["real"]:
        group = [r for r in rows if r["who"] == who]
        if group:
            lines.append(_summary_row(who if who != "real" else "**real (tracked)**", group,
                                      curve_correlations(curves[who], frames)))
    print(json.dumps(rows, indent=1) if args.json else "\n".join(lines))
    return 0


main = cli   # the former name


if __name__ == "__main__":
    raise SystemExit(cli())
