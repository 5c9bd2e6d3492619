"""Motion statistics, comparable with the reference table of real talking-head video in DESIGN.md.

    python -m tools.stats AUDIO_OR_VIDEO [...] [--seeds 3] [--json] [--min-seconds 0]

For every file: the motion the engine generates from its audio (each seed), and, when the file is a video
with a face, what mediapipe's face mesh measures on the real person in it, side by side:
  delta_p      mean frame-to-frame head rotation at 25 fps (degrees/frame; angle of the relative rotation)
  pose std     yaw / pitch / roll standard deviation (degrees)
  scale std    head size (forward/back motion), % of the mean; tx / ty std, % of the frame
  blinks/min
  brow std     brow height above the eye centres, per inter-ocular distance (IOD), std x 100
  lid std      upper-to-lower lid opening / IOD outside blinks, std x 100
  gap range    inner-lip gap / IOD, p95 - p5
Ours is measured on the same landmarks: the face rig of a reference portrait (matplotlib's Grace Hopper)
deformed by the generated motion, so brows, lids and mouth are in the same units as the real video's.
cheek_raise and lid_tension are also listed as parameter std (the renderer draws them).
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


def real_video_stats(path: str | Path) -> dict | None:
    """What mediapipe measures on the person in a real video, resampled to 25 fps (None without a face)."""
    import av
    import mediapipe as mp
    import cv2
    from .lipsync.real import _to_grid
    from vasa_core.portrait import head_rotation, rotation_angles
    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=False,
                                           min_detection_confidence=0.4, min_tracking_confidence=0.4)
    rows, times, ref, base = [], [], None, None
    with av.open(str(path)) as c:
        if not c.streams.video:
            return None
        for frame in c.decode(c.streams.video[0]):
            if frame.time is None:
                continue
            rgb = frame.to_ndarray(format="rgb24")
            h, w = rgb.shape[:2]
            k = min(1.0, 960 / max(h, w))
            if k < 1:
                rgb = cv2.resize(rgb, (int(w * k), int(h * k)), interpolation=cv2.INTER_AREA)
                h, w = rgb.shape[:2]
            res = mesh.process(np.ascontiguousarray(rgb))
            times.append(float(frame.time))
            if not res.multi_face_landmarks:
                rows.append([np.nan] * 9)
                continue
            pts = np.array([(p.x * w, p.y * h, p.z * w) for p in res.multi_face_landmarks[0].landmark])
            if ref is None:                       # the first tracked frame is the reference pose
                ref, base = pts, head_rotation(pts)
            rel, iod = rigid_pose(pts, ref)
            yaw, pitch, roll = rotation_angles(rel @ base)
            fm = face_measures(pts)
            cx, cy = pts[1, 0] / w, pts[1, 1] / h
            rows.append([yaw, pitch, roll, iod, cx, cy, fm["brow"], fm["lid"], fm["gap"]])
    mesh.close()
    if not rows:
        return None
    times = np.asarray(times) - times[0]
    rows = np.asarray(rows, np.float64)
    if np.isfinite(rows[:, 0]).mean() < 0.5:
        return None
    n = int(round((times[-1] + np.median(np.diff(times))) * FPS)) if len(times) > 1 else 1
    g = np.stack([_to_grid(times, rows[:, k], n) for k in range(rows.shape[1])], 1)
    ok = np.isfinite(g).all(1)
    yaw, pitch, roll, iod, cx, cy, brow, lid, gap = g.T
    dp = _delta_p(*(np.nan_to_num(v) for v in (yaw, pitch, roll)))
    # Delta-P only over consecutive tracked frames
    mats = [rotation_matrix(*r) if o else None for r, o in zip(g[:, :3], ok)]
    ang = [np.degrees(np.arccos(np.clip((np.trace(a.T @ b) - 1) / 2, -1, 1)))
           for a, b in zip(mats, mats[1:]) if a is not None and b is not None]
    dp = float(np.mean(ang)) if ang else dp
    seconds = n / FPS
    out = {"seconds": round(seconds, 1), "tracked": round(float(ok.mean()), 2),
           "delta_p_deg_per_frame": round(dp, 3),
           "pose_std_yaw_pitch_roll": [round(float(np.nanstd(v)), 2) for v in (yaw, pitch, roll)],
           "scale_std_pct": round(float(100 * np.nanstd(iod) / np.nanmean(iod)), 2),
           "tx_ty_std_pct": [round(float(100 * np.nanstd(v)), 2) for v in (cx, cy)]}
    out.update(_face_summary(brow, lid, gap, _blinks(lid, seconds)))
    return out


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
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--min-seconds", type=float, default=0.0, help="skip clips shorter than this")
    args = parser.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    from vasa_core.errors import InputError
    from safety.publish import build_pipeline
    pipe = build_pipeline(size=256, device="cpu")
    rows, lines = [], [HEADER]
    for path in args.audio:
        try:
            audio = pipe.load_audio(path)
        except InputError as exc:
            print(f"{Path(path).name}: skipped ({exc})")
            continue
        if audio.duration < args.min_seconds:
            continue
        name = Path(path).name
        for seed in range(args.seeds):
            try:
                m = pipe.motion(audio, seed=seed)
            except InputError as exc:
                print(f"{name}: skipped ({exc})")
                break
            st = {"clip": name, "who": "ours", "seed": seed, **motion_stats(m), **generated_face_stats(m)}
            rows.append(st)
            lines.append(_row(f"{name[:40]} ours seed {seed}", st))
        if Path(path).suffix.lower() in {".mp4", ".mpg", ".mov", ".mkv", ".avi", ".webm"}:
            real = real_video_stats(path)
            if real is not None:
                rows.append({"clip": name, "who": "real", **real})
                lines.append(_row(f"{name[:40]} **real**", real))
    ours = [r for r in rows if r["who"] == "ours"]
    real = [r for r in rows if r["who"] == "real"]
    for label, group in (("mean, ours", ours), ("mean, real", real)):
        if group:
            mean = {k: (np.mean([g[k] for g in group], 0).tolist() if isinstance(group[0][k], list)
                        else float(np.mean([g[k] if g[k] is not None else np.nan for g in group])))
                    for k in ("delta_p_deg_per_frame", "pose_std_yaw_pitch_roll", "scale_std_pct", "tx_ty_std_pct",
                              "blinks_per_minute", "brow_std_x100", "lid_std_x100", "gap_p95_p5")}
            lines.append(_row(f"**{label}** ({len(group)})", mean))
    print(json.dumps(rows, indent=1) if args.json else "\n".join(lines))
    return 0


main = cli   # the former name


if __name__ == "__main__":
    raise SystemExit(cli())
