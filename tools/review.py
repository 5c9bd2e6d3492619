"""Review sheets for a person to judge the output quickly (not a test).

    # every portrait in a folder, with one audio clip: a contact sheet, 2x mouth and eye close-ups, and a table
    .venv/bin/python -m tools.review --gallery DIR --audio AUDIO --out OUT_DIR [--seconds 6] [--size 512]
    # real talking videos: each one's first frame animated with its own audio, our frames under the real ones
    .venv/bin/python -m tools.review --real DIR --out OUT_DIR [--seconds 6]
    # one portrait: one row per control extreme (gaze, distance, emotions, motion scale)
    .venv/bin/python -m tools.review --image IMG --audio AUDIO --out sheet.png [--thumb 192] [--face]

The gallery table (`OUT_DIR/review.md`, also printed) has per portrait: accepted or the refusal sentence, the
face's detail ratio against the source (the framed portrait — below 1 when a large source is shrunk to the
output size —, rendered frames in memory and after H.264), the border check (share of
near-identical lines at the worst edge, output minus source: edge replication shows as +0.3 and more), and
the largest inner-lip gap and closure count the rendered mouth reached (mediapipe on the frames).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np

SETTINGS = [
    ("default", {}),
    ("gaze -15,0", {"gaze": (-15.0, 0.0)}), ("gaze +15,0", {"gaze": (15.0, 0.0)}),
    ("gaze 0,+10", {"gaze": (0.0, 10.0)}), ("gaze 0,-10", {"gaze": (0.0, -10.0)}),
    ("distance 0.7", {"distance": 0.7}), ("distance 1.4", {"distance": 1.4}),
    ("happy", {"emotion": "happy"}), ("sad", {"emotion": "sad"}), ("angry", {"emotion": "angry"}),
    ("surprised", {"emotion": "surprised"}),
    ("motion 0", {"motion_scale": 0.0}), ("motion 2", {"motion_scale": 2.0}),
]
IMAGE_TYPES = (".jpg", ".jpeg", ".png", ".webp")


# --- measurements ---------------------------------------------------------------------------------------

def edge_smear(rgb: np.ndarray, band: float = 0.15, eps: float = 0.8) -> dict[str, float]:
    """Share of near-identical consecutive lines (mean abs difference < eps grey levels) in the outer `band`
    of each side: edge replication makes long runs of identical lines; flat walls do too, in the source."""
    g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    h, w = g.shape
    k = max(2, int(band * min(h, w)))
    sides = {"bottom": g[h - k:], "top": g[:k], "left": g[:, :k].T, "right": g[:, w - k:].T}
    return {s: float((np.abs(np.diff(v, axis=0)).mean(1) < eps).mean()) for s, v in sides.items()}


def border_excess(source: np.ndarray, frame: np.ndarray) -> float:
    """Worst side's share of near-identical lines in `frame` minus the same in `source` (0 = nothing invented)."""
    s0, s1 = edge_smear(source), edge_smear(frame)
    return max(s1[k] - s0[k] for k in s1)


def face_detail(rgb: np.ndarray, landmarks: np.ndarray | None = None) -> float | None:
    """Variance of the Laplacian of the face region (landmark box, resized to 256 x 256): sharpness at one
    scale, comparable between a source photo and a frame of any size. None when no face mesh is found."""
    from vasa_core.portrait import fit_mesh
    lm = fit_mesh(rgb) if landmarks is None else landmarks
    if lm is None:
        return None
    x0, y0 = np.maximum(lm[:, :2].min(0).astype(int), 0)
    x1, y1 = lm[:, :2].max(0).astype(int)
    crop = cv2.cvtColor(rgb[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)
    if crop.size == 0:
        return None
    return float(cv2.Laplacian(cv2.resize(crop, (256, 256), interpolation=cv2.INTER_AREA), cv2.CV_64F).var())


def lip_gap(rgb: np.ndarray) -> float | None:
    """Inner-lip gap / inter-ocular distance measured by mediapipe on a frame (None: no face)."""
    from vasa_core.portrait import fit_mesh
    lm = fit_mesh(rgb)
    if lm is None:
        return None
    iod = np.linalg.norm(lm[33:34, :2].mean(0) - lm[263, :2]) or 1.0
    return float(np.linalg.norm(lm[13, :2] - lm[14, :2]) / iod)


def encode_roundtrip(frames: list[np.ndarray], fps: float = 25.0) -> list[np.ndarray]:
    """The frames after the product's H.264 settings (VideoWriter's CRF and preset), decoded again."""
    import av
    from vasa_core.video import VideoWriter
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        with VideoWriter(path, fps=fps, size=frames[0].shape[0]) as w:
            for f in frames:
                w.write(f)
        with av.open(str(path)) as c:
            return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


# --- sheets ---------------------------------------------------------------------------------------------

def closeups(frame: np.ndarray, lm: np.ndarray, scale: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """(mouth, eyes) crops of a frame, enlarged `scale` times (cubic)."""
    def crop(centre, half_w, half_h):
        x0, x1 = int(centre[0] - half_w), int(centre[0] + half_w)
        y0, y1 = int(centre[1] - half_h), int(centre[1] + half_h)
        pad = max(0, -x0, -y0, x1 - frame.shape[1], y1 - frame.shape[0])
        img = np.pad(frame, ((pad, pad), (pad, pad), (0, 0))) if pad else frame
        c = img[y0 + pad:y1 + pad, x0 + pad:x1 + pad]
        return cv2.resize(c, (int(c.shape[1] * scale), int(c.shape[0] * scale)), interpolation=cv2.INTER_CUBIC)
    mw = np.linalg.norm(lm[61, :2] - lm[291, :2])
    mouth = crop(lm[[61, 291, 13, 14], :2].mean(0), 0.8 * mw, 0.55 * mw)
    ew = np.linalg.norm(lm[33, :2] - lm[263, :2])
    eyes = crop((lm[33, :2] + lm[263, :2]) / 2 + [0, -0.1 * ew], 0.85 * ew, 0.3 * ew)
    return mouth, eyes


def _grid(images: list[np.ndarray], cols: int) -> np.ndarray:
    h = max(i.shape[0] for i in images)
    w = max(i.shape[1] for i in images)
    images = [np.pad(i, ((0, h - i.shape[0]), (0, w - i.shape[1]), (0, 0))) for i in images]
    images += [np.zeros_like(images[0])] * (-len(images) % cols)
    return np.concatenate([np.concatenate(images[r:r + cols], 1) for r in range(0, len(images), cols)], 0)


def _save(path: Path, rgb: np.ndarray) -> None:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def review_portrait(pipe, image_path: Path, audio, out_dir: Path, frames_n: int = 8) -> dict:
    """Render one portrait with `audio`; write its sheets; return its table row."""
    from vasa_core.errors import InputError
    from vasa_core.portrait import load_image
    row: dict = {"portrait": image_path.name}
    try:
        source = load_image(image_path)
        portrait, renderer = pipe.prepare(source)
    except InputError as e:
        row["status"] = f"refused: {e}"
        return row
    motion = pipe.motion(audio, seed=0)
    frames = [renderer.render(r) for r in motion.values]
    picks = np.linspace(0, len(frames) - 1, frames_n + 2).astype(int)[1:-1]
    # the most open and the most closed mouth frames, by the motion, join the evenly spaced ones
    jaw = motion["jaw_open"]
    extra = [int(np.argmax(jaw)), int(np.argmin(jaw + 2 * (motion["lip_press"] < 0.5)))]
    shown = [frames[i] for i in picks]
    stem = image_path.stem
    _save(out_dir / f"{stem}_sheet.png", _grid([cv2.resize(portrait.image, shown[0].shape[:2][::-1])] + shown, 5))
    ups = []
    for i in list(picks[::2]) + extra:
        lm = renderer.landmarks(motion.frame(i))
        ups.append(closeups(frames[i], lm))
    _save(out_dir / f"{stem}_mouth.png", _grid([m for m, _ in ups], 3))
    _save(out_dir / f"{stem}_eyes.png", _grid([e for _, e in ups], 2))
    # measurements: detail against the source, border, rendered mouth range
    d_src = face_detail(source)
    sample = [frames[i] for i in picks[:4]]
    d_mem = [face_detail(f) for f in sample]
    d_enc = [face_detail(f) for f in encode_roundtrip(frames[:int(picks[3]) + 1])[-4:]] if len(frames) > 4 else []
    ratio = lambda ds: float(np.median([d for d in ds if d])) / d_src if d_src and any(ds) else float("nan")  # noqa: E731
    gaps = [g for g in (lip_gap(f) for f in frames[::2]) if g is not None]
    row.update(status="ok", framing=f"{portrait.crop_box}", yaw=round(portrait.yaw, 1),
               open_source=bool(renderer.opened_source),
               detail_framed=round(ratio([face_detail(portrait.image)]), 2),
               detail_rendered=round(ratio(d_mem), 2), detail_h264=round(ratio(d_enc), 2),
               border=round(max(border_excess(portrait.image, f) for f in sample), 2),
               gap_max=round(max(gaps), 3) if gaps else None,
               gap_min=round(min(gaps), 3) if gaps else None)
    return row


def review_gallery(gallery: Path, audio_path: Path, out_dir: Path, seconds: float = 6.0, size: int = 512) -> list[dict]:
    """Review every image in `gallery` with `audio_path` (its first `seconds`); write sheets and review.md."""
    from vasa_core.audio import Audio
    from safety.publish import build_pipeline
    out_dir.mkdir(parents=True, exist_ok=True)
    pipe = build_pipeline(size=size)
    audio = pipe.load_audio(str(audio_path))
    audio = Audio(audio.samples[: int(seconds * audio.sample_rate)], audio.sample_rate)
    rows = []
    for path in sorted(p for p in gallery.iterdir() if p.suffix.lower() in IMAGE_TYPES):
        rows.append(review_portrait(pipe, path, audio, out_dir))
        print(rows[-1], flush=True)
    keys = ["portrait", "status", "yaw", "open_source", "detail_framed", "detail_rendered", "detail_h264", "border",
            "gap_min", "gap_max"]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows]
    (out_dir / "review.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return rows


VIDEO_TYPES = (".mp4", ".mov", ".mpg", ".mkv", ".webm", ".avi")


def review_real(video: Path, out_dir: Path, pipe, seconds: float = 6.0, cols: int = 6) -> dict | None:
    """Animate a real talking video's first frame with its own soundtrack and write a sheet: the real frames
    (top row), ours at the same moments (middle row), and 2x mouth close-ups of both (bottom rows).
    Returns a row with the mouth-opening range on both (inner-lip gap / inter-ocular distance, mediapipe),
    or None when the video has no soundtrack."""
    import av
    from vasa_core.audio import Audio
    from vasa_core.errors import InputError
    with av.open(str(video)) as c:
        if not c.streams.audio:
            return None
        fps = float(c.streams.video[0].average_rate or 25)
        real = []
        for f in c.decode(video=0):
            real.append(f.to_ndarray(format="rgb24"))
            if len(real) >= int(seconds * fps):
                break
    try:
        audio = pipe.load_audio(str(video))
        audio = Audio(audio.samples[: int(seconds * audio.sample_rate)], audio.sample_rate)
        portrait, renderer = pipe.prepare(real[0])
        motion = pipe.motion(audio, seed=0)
    except InputError as e:
        return {"video": video.name, "status": f"refused: {e}"}
    x0, y0, x1, y1 = portrait.crop_box
    n = min(len(motion), int(len(real) * pipe.fps / fps))
    picks = np.linspace(0, n - 1, cols + 2).astype(int)[1:-1]
    tiles, gaps_real, gaps_ours = [], [], []
    for i in picks:
        ours = renderer.render(motion.values[i])
        theirs = cv2.resize(real[min(int(i * fps / pipe.fps), len(real) - 1)][y0:y1, x0:x1], ours.shape[:2][::-1],
                            interpolation=cv2.INTER_AREA)
        tiles.append((theirs, ours))
        gaps_real.append(lip_gap(theirs))
        gaps_ours.append(lip_gap(ours))
    thumb = 256
    row = lambda imgs: np.concatenate([cv2.resize(i, (thumb, thumb), interpolation=cv2.INTER_AREA) for i in imgs], 1)  # noqa: E731
    from vasa_core.portrait import fit_mesh
    own = lambda img: fit_mesh(img) if fit_mesh(img) is not None else portrait.landmarks  # noqa: E731
    mouths = [closeups(t, own(t))[0] for t, _ in tiles], [closeups(o, own(o))[0] for _, o in tiles]
    mrow = lambda ms: np.concatenate([cv2.resize(m, (thumb, int(0.7 * thumb)), interpolation=cv2.INTER_AREA)  # noqa: E731
                                      for m in ms], 1)
    _save(out_dir / f"{video.stem}_real_vs_ours.png",
          np.concatenate([row([t for t, _ in tiles]), row([o for _, o in tiles]), mrow(mouths[0]), mrow(mouths[1])], 0))
    ok = lambda g: [x for x in g if x is not None]  # noqa: E731
    return {"video": video.name, "status": "ok",
            "real_gap": f"{min(ok(gaps_real), default=0):.2f}-{max(ok(gaps_real), default=0):.2f}",
            "our_gap": f"{min(ok(gaps_ours), default=0):.2f}-{max(ok(gaps_ours), default=0):.2f}"}


def review_real_folder(folder: Path, out_dir: Path, seconds: float = 6.0, size: int = 512) -> list[dict]:
    from safety.publish import build_pipeline
    out_dir.mkdir(parents=True, exist_ok=True)
    pipe = build_pipeline(size=size)
    rows = [r for r in (review_real(v, out_dir, pipe, seconds) for v in sorted(folder.iterdir())
                        if v.suffix.lower() in VIDEO_TYPES) if r is not None]
    for r in rows:
        print(r)
    return rows


def control_sheet(image: str, audio_path: str, out: str, thumb: int = 192, cols: int = 6, seed: int = 0,
                  face: bool = False) -> None:
    """One row per control extreme, `cols` frames across the clip each; the same seed everywhere."""
    from safety.publish import build_pipeline
    pipe = build_pipeline(size=512 if face else 256)
    audio = pipe.load_audio(audio_path)
    portrait, _ = pipe.prepare(image)
    if face:                 # a square around the face's landmarks, from the brows to below the chin
        lm = portrait.landmarks[:, :2]
        (x0, y0), (x1, y1) = lm.min(0), lm.max(0)
        half = 0.6 * max(x1 - x0, y1 - y0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        box = [int(max(0, v)) for v in (cy - half, cy + half, cx - half, cx + half)]
    else:
        box = [0, pipe.size, 0, pipe.size]
    rows = []
    for name, controls in SETTINGS:
        motion = pipe.motion(audio, seed=seed, **controls)
        picks = set(np.linspace(0, len(motion) - 1, cols + 2).astype(int)[1:-1].tolist())
        frames = [cv2.resize(f[box[0]:box[1], box[2]:box[3]], (thumb, thumb), interpolation=cv2.INTER_AREA)
                  for i, f in enumerate(pipe.frames(image, motion)) if i in picks]
        row = np.concatenate(frames, 1)
        cv2.putText(row, name, (6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 0), 2, cv2.LINE_AA)
        rows.append(row)
    _save(Path(out), np.concatenate(rows, 0))
    print(out)


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", help="one portrait: control sheet")
    src.add_argument("--gallery", type=Path, help="a folder of portraits: sheets, close-ups and a table")
    src.add_argument("--real", type=Path, help="a folder of real talking videos: ours beside theirs")
    parser.add_argument("--audio", help="speech to animate with (--image, --gallery)")
    parser.add_argument("--out", required=True, help="sheet PNG (--image) or output folder (--gallery)")
    parser.add_argument("--seconds", type=float, default=6.0, help="gallery: seconds of audio to render")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--thumb", type=int, default=192, help="side of each frame in the sheet (pixels)")
    parser.add_argument("--cols", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--face", action="store_true", help="crop each frame to the face (to see gaze and lips)")
    args = parser.parse_args(argv)
    if args.real:
        review_real_folder(args.real, Path(args.out), args.seconds, args.size)
    elif not args.audio:
        parser.error("--audio is needed with --image and --gallery")
    elif args.gallery:
        review_gallery(args.gallery, Path(args.audio), Path(args.out), args.seconds, args.size)
    else:
        control_sheet(args.image, args.audio, args.out, args.thumb, args.cols, args.seed, args.face)
    return 0


main = cli   # the former name

if __name__ == "__main__":
    raise SystemExit(cli())
