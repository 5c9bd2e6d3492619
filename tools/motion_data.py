"""Motion tracks from real talking video: what the head, brows, lids, eyes and mouth of real people do, per
frame, beside the audio features of their own speech (the training data of `vasa_core.motion_model`).

    python -m tools.motion_data --videos DIR [--videos DIR2 ...] --out TRACKS.npz [--min-seconds 2]
                                [--no-filter] [--max-side 640]

For every video in the folders that has a sound track (videos without sound are skipped and listed):
  1. frames are decoded with PyAV and tracked with mediapipe's face mesh in video mode (the tracker the
     engine uses on portraits, with the iris points), downscaled to at most `--max-side` pixels;
  2. per tracked frame (`frame_measures`):
       yaw, pitch, roll   head rotation in degrees (`vasa_core.motion` conventions): a least-squares rigid fit
                          of the clip's first tracked frame to this one over landmarks that expressions barely
                          move (`tools.stats.rigid_pose`), composed with the first frame's own head axes
                          (`vasa_core.portrait.head_rotation`, `rotation_angles`)
       tx, ty             centre of those rigid landmarks, in inter-ocular distances (IOD) from the clip's median
       scale              size of the rigid landmark set relative to the clip's median (forward/back motion)
       brow, lid          brow height above the eye line and upper-to-lower lid opening (mean of both eyes),
                          per IOD, in the head's own frame (`tools.stats.face_measures`)
       gaze_x, gaze_y     eye-in-head direction in degrees from the iris centre's offset from the eye corners'
                          midpoint (half an eye width ~ 1.25 eyeball radii; + = image right / up)
       gap                inner-lip gap per IOD (`tools.lipsync.real.lip_measures`)
  3. the per-frame values are put on the audio's 25 fps clock (linear; NaN where untracked), then tracker jitter
     is filtered (`smooth_tracks`: a Savitzky-Golay filter, window 5 frames, order 2, on each tracked run of
     pose, translation, scale, brows and gaze; the lids get a 3-frame median so a blink keeps its depth);
     `blink` = 1 where the (unfiltered) lid opening is under 55% of the clip's median;
  4. the audio (decoded by `vasa_core.audio`, 16 kHz) gives per video frame: loudness (dBFS), voicing, pitch
     (Hz) exactly as the engine samples them (`vasa_core.motion.prosody_at_frames`), and the 80-band log-mel
     averaged over the frame's 40 ms.

The file (numpy .npz) holds: `names` (clips), `clip` (T,) index into names per frame, `track` (T, len(TRACK)),
`raw` (T, len(TRACK), the unfiltered values), `prosody` (T, 3), `mel` (T, 80), `track_names`, `fps`.
These tracks are cut from research media: keep them outside the repository (the weights trained on them ship).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

FPS = 25.0
VIDEO_EXT = {".mp4", ".mpg", ".mpeg", ".mov", ".mkv", ".avi", ".webm", ".m4v"}
TRACK = ("yaw", "pitch", "roll", "tx", "ty", "scale", "brow", "lid", "gaze_x", "gaze_y", "gap", "blink")
SMOOTHED = ("yaw", "pitch", "roll", "tx", "ty", "scale", "brow", "gaze_x", "gaze_y")
SG_WINDOW, SG_ORDER = 5, 2
BLINK_SHARE = 0.55         # lid opening under this share of the clip's median = a closed eye
IRIS_R, IRIS_L = 468, 473  # iris centres (refined mesh) of the subject's right / left eye
EYE_CORNERS = ((33, 133), (362, 263))
HALF_EYE_PER_RADIUS = 1.25


def frame_measures(pts: np.ndarray, ref: np.ndarray, base: np.ndarray) -> list[float]:
    """One frame's raw measures (TRACK order without blink, then the 3D inter-ocular distance in pixels; tx/ty
    in pixels, scale relative to the reference) from (478, 3) landmarks in pixels, the clip's reference landmarks and the reference's head axes."""
    from tools.stats import RIGID_IDS, face_measures, rigid_pose
    from tools.lipsync.real import lip_measures
    from vasa_core.portrait import head_rotation, rotation_angles
    rel, scale = rigid_pose(pts, ref)
    yaw, pitch, roll = rotation_angles(rel @ base)
    centre = pts[list(RIGID_IDS), :2].mean(0)
    fm = face_measures(pts)
    r = head_rotation(pts)
    local = (pts - pts[1]) @ r                                     # head frame: x to the subject's left, y down
    gx, gy = [], []
    for iris, (a, b) in zip((IRIS_R, IRIS_L), EYE_CORNERS):
        mid = (local[a] + local[b]) / 2
        half = np.linalg.norm(local[b] - local[a]) / 2
        off = (local[iris] - mid) / half * HALF_EYE_PER_RADIUS
        gx.append(np.degrees(np.arcsin(np.clip(off[0], -1, 1))))
        gy.append(-np.degrees(np.arcsin(np.clip(off[1], -1, 1))))
    gap, _ = lip_measures(pts)
    iod = float(np.linalg.norm(pts[list(EYE_CORNERS[0])].mean(0) - pts[list(EYE_CORNERS[1])].mean(0)))
    return [yaw, pitch, roll, centre[0], centre[1], scale, fm["brow"], fm["lid"], float(np.mean(gx)),
            float(np.mean(gy)), gap, iod]


def track_frames(path: str | Path, max_side: int = 640) -> tuple[np.ndarray, np.ndarray]:
    """(times (n,), raw measures (n, len(TRACK)): `frame_measures`) of every decoded frame; NaN rows where no
    face."""
    import av
    import cv2
    from vasa_core.portrait import video_face_mesh
    mesh = video_face_mesh(refine=True, confidence=0.4)
    times, rows, ref, base = [], [], None, None
    try:
        with av.open(str(path)) as c:
            for frame in c.decode(c.streams.video[0]):
                if frame.time is None:
                    continue
                rgb = frame.to_ndarray(format="rgb24")
                h, w = rgb.shape[:2]
                k = min(1.0, max_side / max(h, w))
                if k < 1:
                    rgb = cv2.resize(rgb, (int(round(w * k)), int(round(h * k))), interpolation=cv2.INTER_AREA)
                    h, w = rgb.shape[:2]
                res = mesh.process(np.ascontiguousarray(rgb))
                times.append(float(frame.time))
                if not res.multi_face_landmarks:
                    rows.append([np.nan] * len(TRACK))
                    continue
                pts = np.array([(p.x * w, p.y * h, p.z * w) for p in res.multi_face_landmarks[0].landmark])
                if ref is None:
                    from vasa_core.portrait import head_rotation
                    ref, base = pts, head_rotation(pts)
                rows.append(frame_measures(pts, ref, base))
    finally:
        mesh.close()
    return np.asarray(times, np.float64), np.asarray(rows, np.float64).reshape(-1, len(TRACK))


def _runs(ok: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of every run of True."""
    edges = np.diff(np.concatenate([[0], ok.astype(int), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def smooth_tracks(track: np.ndarray, window: int = SG_WINDOW, order: int = SG_ORDER) -> np.ndarray:
    """Tracker jitter filtered out of (T, len(TRACK)) tracks on the 25 fps grid: Savitzky-Golay on each tracked
    run of the SMOOTHED columns (runs shorter than the window are left as they are), a 3-frame median on the
    lids (keeps a blink's depth); blink and gap untouched."""
    from scipy.signal import medfilt, savgol_filter
    out = track.copy()
    ok = np.isfinite(track[:, :TRACK.index("gap")]).all(1)
    for a, b in _runs(ok):
        if b - a >= window:
            for name in SMOOTHED:
                k = TRACK.index(name)
                out[a:b, k] = savgol_filter(track[a:b, k], window, order)
        if b - a >= 3:
            k = TRACK.index("lid")
            out[a:b, k] = medfilt(track[a:b, k], 3)
    return out


def clip_tracks(path: str | Path, max_side: int = 640, filtered: bool = True) -> dict | None:
    """Tracks and audio features of one video on the audio's 25 fps clock, or None (no sound, or a face in
    under half the frames)."""
    from tools.lipsync.real import _to_grid
    from vasa_core.audio import SAMPLE_RATE, extract_features, load_audio
    from vasa_core.errors import InputError
    from vasa_core.motion import prosody_at_frames
    try:
        audio = load_audio(path, sample_rate=SAMPLE_RATE)
    except InputError:
        return None
    if audio.duration < 0.5 or np.abs(audio.samples).max() < 1e-4:
        return None
    n = int(round(audio.duration * FPS))
    times, rows = track_frames(path, max_side)
    if len(times) < 2 or np.isfinite(rows[:, 0]).mean() < 0.5:
        return None
    times = times - times[0]
    g = np.stack([_to_grid(times, rows[:, k], n) for k in range(rows.shape[1])], 1)
    # translation and scale relative to the clip's median, in inter-ocular distances
    iod = g[:, -1]
    g = g[:, :-1]
    sc = g[:, TRACK.index("scale")]
    med_scale = np.nanmedian(sc)
    unit = np.nanmedian(iod)                                    # the clip's median IOD in pixels
    for k in (TRACK.index("tx"), TRACK.index("ty")):
        g[:, k] = (g[:, k] - np.nanmedian(g[:, k])) / unit
    g[:, TRACK.index("scale")] = sc / med_scale
    lid = g[:, TRACK.index("lid")]
    blink = np.where(np.isfinite(lid), (lid < BLINK_SHARE * np.nanmedian(lid)).astype(float), np.nan)
    raw = np.concatenate([g, blink[:, None]], 1)
    track = smooth_tracks(raw) if filtered else raw.copy()
    feats = extract_features(audio)
    prosody = prosody_at_frames(feats, FPS, n)
    mel = _mel_at_frames(feats.mel, n)
    return {"track": track, "raw": raw, "prosody": prosody.astype(np.float32), "mel": mel}


def _mel_at_frames(mel: np.ndarray, n: int) -> np.ndarray:
    """(n, bands) log-mel averaged over each 40 ms video frame (the 4 10-ms frames centred on it)."""
    idx = np.clip(np.arange(n)[:, None] * 4 + np.arange(-2, 2)[None, :], 0, len(mel) - 1)
    return mel[idx].mean(1).astype(np.float32)


def find_videos(folders: list[str | Path]) -> list[Path]:
    """Video files in the folders (not recursive), sorted by name."""
    out = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise SystemExit(f"--videos {folder}: no such folder.")
        out += sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXT)
    return out


def build(videos: list[Path], max_side: int = 640, filtered: bool = True, min_seconds: float = 2.0,
          log=print) -> dict:
    """Tracks of every usable video, concatenated (see the module docstring for the keys)."""
    names, parts = [], []
    for path in videos:
        t0 = time.perf_counter()
        try:
            clip = clip_tracks(path, max_side, filtered)
        except Exception as exc:                                 # a broken file must not stop a long run
            log(f"{path.name}: skipped ({type(exc).__name__}: {exc})")
            continue
        if clip is None or len(clip["track"]) < min_seconds * FPS:
            log(f"{path.name}: skipped (no sound, shorter than {min_seconds:g} s, or no face in half the frames)")
            continue
        names.append(path.name)
        parts.append(clip)
        ok = np.isfinite(clip["track"][:, 0]).mean()
        log(f"{path.name}: {len(clip['track'])} frames, face in {ok:.0%}, {time.perf_counter() - t0:.1f} s")
    if not parts:
        raise SystemExit("No usable talking video with sound and a tracked face was found.")
    clip = np.concatenate([np.full(len(p["track"]), i, np.int32) for i, p in enumerate(parts)])
    return {"names": np.array(names), "clip": clip, "fps": np.float32(FPS), "track_names": np.array(TRACK),
            **{k: np.concatenate([p[k] for p in parts]).astype(np.float32) for k in ("track", "raw", "prosody", "mel")}}


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.motion_data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", action="append", required=True, help="folder of talking videos (repeatable)")
    parser.add_argument("--out", required=True, help="output .npz")
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--max-side", type=int, default=640, help="frames are tracked at most this many pixels wide")
    parser.add_argument("--no-filter", action="store_true", help="keep the tracker's jitter (no smoothing)")
    args = parser.parse_args(argv)
    data = build(find_videos(args.videos), args.max_side, not args.no_filter, args.min_seconds,
                 log=lambda s: print(s, file=sys.stderr, flush=True))
    np.savez_compressed(args.out, **data)
    print(f"{args.out}: {len(data['names'])} clips, {len(data['clip'])} frames ({len(data['clip']) / FPS:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())
