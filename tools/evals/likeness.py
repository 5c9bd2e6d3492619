"""Likeness screening's laboratory: the false-match / false-non-match measurement behind
docs/safety-gate.md (augmented package portraits, and folders of real photos and videos), kept apart from
the library (`safety.likeness`) that the gate runs.

    python -m safety measure [--json OUT] [--verbose] [--facenet-weights W]
    python -m safety measure --real FOLDER [--real FOLDER ...] [--same A,B] [--frames N] [--real-only]
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np

from safety.errors import LikenessError
from safety.likeness import (MIN_SCREEN_FACE, Embedder, FaceDetector, _embedder_from_args, _load_rgb, analyze_faces,
                             default_detector, default_embedder)

__all__ = ["measure", "measure_folders", "real_identities", "cli"]



def _augmentations(rgb: np.ndarray, box: tuple[int, int, int, int], seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """Same-person variants of a photo: crop, flip, JPEG, resize, grayscale, lighting, blur, noise, rotation."""
    import cv2

    rng = np.random.default_rng(seed)
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = box
    fw, fh = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2

    def jpeg(img, q):
        ok, enc = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
        return cv2.cvtColor(cv2.imdecode(enc, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)

    def resize(img, s):
        return cv2.resize(img, (max(8, int(img.shape[1] * s)), max(8, int(img.shape[0] * s))),
                          interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)

    def crop(img, k):
        half = k * max(fw, fh) / 2
        jx, jy = rng.uniform(-0.25, 0.25, 2) * max(fw, fh)
        a0, b0 = int(max(0, cx + jx - half)), int(max(0, cy + jy - half))
        a1, b1 = int(min(w, cx + jx + half)), int(min(h, cy + jy + half))
        return np.ascontiguousarray(img[b0:b1, a0:a1])

    def gamma(img, g):
        return (255.0 * (img / 255.0) ** g).clip(0, 255).astype(np.uint8)

    def contrast(img, a, b):
        return (img.astype(np.float32) * a + b).clip(0, 255).astype(np.uint8)

    def gray(img):
        return np.repeat(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)

    def rotate(img, deg):
        m = cv2.getRotationMatrix2D((cx, cy), deg, 1.0)
        return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)

    def blur(img, s):
        return cv2.GaussianBlur(img, (0, 0), s)

    def noise(img, s):
        return (img.astype(np.float32) + rng.normal(0, s, img.shape)).clip(0, 255).astype(np.uint8)

    def side_light(img):
        ramp = np.linspace(0.45, 1.25, img.shape[1], dtype=np.float32)[None, :, None]
        return (img.astype(np.float32) * ramp).clip(0, 255).astype(np.uint8)

    def cast(img):
        return (img.astype(np.float32) * np.array([1.15, 1.0, 0.8], np.float32)).clip(0, 255).astype(np.uint8)

    return [
        ("crop 1.6x", crop(rgb, 1.6)), ("crop 2.2x", crop(rgb, 2.2)), ("crop 3x", crop(rgb, 3.0)),
        ("flip", np.ascontiguousarray(rgb[:, ::-1])),
        ("jpeg q15", jpeg(rgb, 15)), ("jpeg q30", jpeg(rgb, 30)), ("jpeg q60", jpeg(rgb, 60)),
        ("resize 0.5", resize(rgb, 0.5)), ("resize 0.33", resize(rgb, 0.33)), ("resize 0.25", resize(rgb, 0.25)),
        ("resize 1.6", resize(rgb, 1.6)),
        ("grayscale", gray(rgb)),
        ("gamma 0.5 (bright)", gamma(rgb, 0.5)), ("gamma 1.8 (dark)", gamma(rgb, 1.8)),
        ("low contrast", contrast(rgb, 0.55, 60)), ("high contrast", contrast(rgb, 1.4, -40)),
        ("side light", side_light(rgb)), ("colour cast", cast(rgb)),
        ("rotate +10", rotate(rgb, 10)), ("rotate -10", rotate(rgb, -10)),
        ("blur 1.5", blur(rgb, 1.5)), ("noise 12", noise(rgb, 12)),
        ("flip+gray+jpeg40", jpeg(gray(np.ascontiguousarray(rgb[:, ::-1])), 40)),
        ("crop+resize0.5+jpeg50", jpeg(resize(crop(rgb, 2.0), 0.5), 50)),
        ("dark+noise+blur", blur(noise(gamma(rgb, 1.6), 8), 1.0)),
        ("rotate+cast+jpeg30", jpeg(cast(rotate(rgb, -7)), 30)),
        ("side light+gray+resize0.4", resize(gray(side_light(rgb)), 0.4)),
        ("bright+flip+crop", np.ascontiguousarray(gamma(crop(rgb, 1.8), 0.6)[:, ::-1])),
    ]


def real_identities() -> list[tuple[str, np.ndarray]]:
    """The real, distinct people available offline (public-domain portraits shipped inside packages)."""
    import matplotlib
    from skimage import data

    from vasa_core.validate import validate_image

    hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return [("astronaut (skimage)", np.asarray(data.astronaut())),
            ("grace_hopper (matplotlib)", validate_image(hopper).rgb)]


def measure(embedder: Embedder | None = None, detector: FaceDetector | None = None,
            thresholds: Sequence[float] | None = None, log=None) -> dict:
    """Measure genuine (same-person) and impostor (different-person) distances and the error rates.

    Same-person pairs: each real identity's original photo against its augmented copies, and the
    copies against each other. Different-person pairs: every photo of one identity against every photo of
    another. Returns distances, detection misses, and FMR / FNMR per threshold.
    """
    embedder = embedder or default_embedder()
    detector = detector or default_detector()
    ids = real_identities()
    per_id: list[list[tuple[str, np.ndarray]]] = []
    misses: list[str] = []
    too_small: list[str] = []
    for pid, (label, rgb) in enumerate(ids):
        faces = analyze_faces(rgb, embedder, detector)
        if not faces:
            raise LikenessError(f"No face in identity photo {label}")
        main = max(faces, key=lambda f: f.face.area)
        vecs = [("original", main.embedding)]
        for aug_name, img in _augmentations(rgb, main.face.box, seed=pid):
            found = analyze_faces(img, embedder, detector)
            if not found:
                misses.append(f"{label}: {aug_name}")
                continue
            best = max(found, key=lambda f: f.face.area)
            x0, y0, x1, y1 = best.face.box
            if min(x1 - x0, y1 - y0) < MIN_SCREEN_FACE:
                too_small.append(f"{label}: {aug_name} ({x1 - x0} px)")
                continue
            vecs.append((aug_name, best.embedding))
            if log:
                log(f"{label}: {aug_name}: {len(found)} face(s)")
        per_id.append(vecs)
    genuine_enrolled, genuine_all, impostor = [], [], []
    for vecs in per_id:
        for i in range(len(vecs)):
            for j in range(i + 1, len(vecs)):
                d = embedder.distance(vecs[i][1], vecs[j][1])
                genuine_all.append(d)
                if i == 0:
                    genuine_enrolled.append(d)
    for a in range(len(per_id)):
        for b in range(a + 1, len(per_id)):
            for _, va in per_id[a]:
                for _, vb in per_id[b]:
                    impostor.append(embedder.distance(va, vb))
    g, ge, im = np.array(genuine_all), np.array(genuine_enrolled), np.array(impostor)
    grid = list(thresholds or [0.40, 0.45, 0.50, 0.52, 0.55, 0.58, 0.60, 0.62, 0.65, 0.70])
    rows = [{"threshold": t, "fnmr_enrolled": float((ge > t).mean()), "fnmr_all_pairs": float((g > t).mean()),
             "fmr": float((im <= t).mean())} for t in grid]
    return {
        "embedder": embedder.name, "identities": [label for label, _ in ids],
        "augmentations_per_identity": len(_augmentations(ids[0][1], (0, 0, 8, 8))),
        "detection_misses": misses, "too_small_to_screen": too_small, "min_screen_face": MIN_SCREEN_FACE,
        "genuine_pairs": len(g), "genuine_enrolled_pairs": len(ge), "impostor_pairs": len(im),
        "genuine": {"min": float(g.min()), "median": float(np.median(g)), "p95": float(np.percentile(g, 95)),
                    "max": float(g.max())},
        "genuine_enrolled": {"median": float(np.median(ge)), "max": float(ge.max())},
        "impostor": {"min": float(im.min()), "median": float(np.median(im)), "max": float(im.max())},
        "rates": rows,
        "chosen": asdict(embedder.thresholds),
    }


_VIDEO_EXT = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".m4v")
_IMAGE_EXT = (".jpg", ".jpeg", ".png", ".webp")


def _clip_faces(path: Path, n: int, embedder: Embedder, detector: FaceDetector) -> list[np.ndarray]:
    """Embeddings of the largest face in `n` frames spread evenly over a video (faces too small are skipped)."""
    import av

    with av.open(str(path)) as c:
        total = c.streams.video[0].frames or 0
    if total <= 0:
        with av.open(str(path)) as c:
            total = sum(1 for _ in c.decode(video=0))
    wanted = set(np.linspace(0, max(0, total - 1), n).round().astype(int).tolist())
    out = []
    with av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i in wanted:
                rgb = frame.to_ndarray(format="rgb24")
                found = analyze_faces(rgb, embedder, detector)
                if found:
                    best = max(found, key=lambda f: f.face.area)
                    x0, y0, x1, y1 = best.face.box
                    if min(x1 - x0, y1 - y0) >= MIN_SCREEN_FACE:
                        out.append(best.embedding)
            if i >= max(wanted):
                break
    return out


def measure_folders(folders: Sequence[str | Path], same: Sequence[Sequence[str]] = (), frames_per_clip: int = 4,
                    embedder: Embedder | None = None, detector: FaceDetector | None = None,
                    thresholds: Sequence[float] | None = None, log=None) -> dict:
    """False-match / false-non-match rates on real media of several people.

    Every video file in `folders` is one person, and so is every sub-folder of photos; `same` lists groups
    of file or sub-folder names that show one person (check identities by looking). `frames_per_clip` frames
    are taken evenly from each video. Same-person pairs: two faces of one person, split into "same clip"
    (different frames of one video, or photos in one sub-folder) and "across clips" (different videos of one
    person: the harder, more honest case); different-person pairs: faces of two different people.
    """
    embedder = embedder or default_embedder()
    detector = detector or default_detector()
    alias = {name: group[0] for group in same for name in group}
    sources: list[tuple[str, list[np.ndarray]]] = []          # (source name, embeddings)
    for folder in folders:
        for path in sorted(Path(folder).iterdir()):
            if path.is_file() and path.suffix.lower() in _VIDEO_EXT:
                vecs = _clip_faces(path, frames_per_clip, embedder, detector)
            elif path.is_dir():
                vecs = []
                for img in sorted(path.iterdir()):
                    if img.suffix.lower() in _IMAGE_EXT:
                        found = analyze_faces(_load_rgb(str(img)), embedder, detector)
                        if found:
                            vecs.append(max(found, key=lambda f: f.face.area).embedding)
            else:
                continue
            if log:
                log(f"{path.name}: {len(vecs)} face(s)")
            if vecs:
                sources.append((path.name, vecs))
    person = [alias.get(name, name) for name, _ in sources]
    same_clip, across, impostor = [], [], []
    for a in range(len(sources)):
        va = sources[a][1]
        for i in range(len(va)):
            for j in range(i + 1, len(va)):
                same_clip.append(embedder.distance(va[i], va[j]))
        for b in range(a + 1, len(sources)):
            d = [embedder.distance(x, y) for x in va for y in sources[b][1]]
            (across if person[a] == person[b] else impostor).extend(d)
    grid = list(thresholds or [0.40, 0.45, 0.50, 0.52, 0.55, 0.58, 0.60, 0.62, 0.65, 0.70])
    sc, ac, im = np.array(same_clip), np.array(across), np.array(impostor)

    def rate(x, f):
        return None if len(x) == 0 else float(f(x))
    rows = [{"threshold": t, "fnmr_same_clip": rate(sc, lambda x: (x > t).mean()),
             "fnmr_across_clips": rate(ac, lambda x: (x > t).mean()), "fmr": rate(im, lambda x: (x <= t).mean())}
            for t in grid]
    stats = {k: (None if len(v) == 0 else {"min": float(v.min()), "median": float(np.median(v)),
                                           "max": float(v.max())})
             for k, v in (("same_clip", sc), ("across_clips", ac), ("impostor", im))}
    return {"embedder": embedder.name, "sources": len(sources), "people": len(set(person)),
            "faces": sum(len(v) for _, v in sources), "frames_per_clip": frames_per_clip,
            "same_clip_pairs": len(sc), "across_clip_pairs": len(ac), "impostor_pairs": len(im),
            "distances": stats, "rates": rows}


def _markdown_real(real: dict, augmented: dict | None) -> str:
    aug = {r["threshold"]: r for r in (augmented or {}).get("rates", [])}

    def f(x):
        return "-" if x is None else f"{x:.3f}"
    lines = [f"Real media: {real['people']} people, {real['sources']} clips/folders, {real['faces']} faces "
             f"({real['frames_per_clip']} frames a clip); {real['same_clip_pairs']} same-person pairs within a clip, "
             f"{real['across_clip_pairs']} across clips, {real['impostor_pairs']} different-person pairs.", "",
             "| threshold | FNMR augmented | FMR augmented | FNMR real, same clip | FNMR real, across clips | "
             "FMR real |", "|---|---|---|---|---|---|"]
    for r in real["rates"]:
        a = aug.get(r["threshold"], {})
        lines.append(f"| {r['threshold']:.2f} | {f(a.get('fnmr_enrolled'))} | {f(a.get('fmr'))} | "
                     f"{f(r['fnmr_same_clip'])} | {f(r['fnmr_across_clips'])} | {f(r['fmr'])} |")
    d = real["distances"]
    for key, label in (("same_clip", "same person, same clip"), ("across_clips", "same person, across clips"),
                       ("impostor", "different people")):
        if d[key]:
            lines.append(f"\n{label}: distance min {d[key]['min']:.3f}, median {d[key]['median']:.3f}, "
                         f"max {d[key]['max']:.3f}.")
    return "\n".join(lines)


def _markdown(result: dict) -> str:
    lines = [f"Embedder `{result['embedder']}`; identities: {', '.join(result['identities'])}; "
             f"{result['genuine_pairs']} same-person pairs ({result['genuine_enrolled_pairs']} against the enrolled "
             f"original), {result['impostor_pairs']} different-person pairs; detection misses: "
             f"{len(result['detection_misses'])} ({'; '.join(result['detection_misses']) or 'none'}); faces narrower than "
             f"{result['min_screen_face']} px left out (the gate refuses to animate them): "
             f"{'; '.join(result['too_small_to_screen']) or 'none'}.", "",
             "| threshold | FNMR vs enrolled photo | FNMR all same-person pairs | FMR (different people) |",
             "|---|---|---|---|"]
    for r in result["rates"]:
        lines.append(f"| {r['threshold']:.2f} | {r['fnmr_enrolled']:.3f} | {r['fnmr_all_pairs']:.3f} | {r['fmr']:.3f} |")
    g, im = result["genuine"], result["impostor"]
    lines += ["", f"Same-person distances: min {g['min']:.3f}, median {g['median']:.3f}, p95 {g['p95']:.3f}, "
              f"max {g['max']:.3f}. Different-person distances: min {im['min']:.3f}, median {im['median']:.3f}, "
              f"max {im['max']:.3f}."]
    return "\n".join(lines)




def _cli_measure(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m safety measure",
                                description="Measure false-match / false-non-match rates of the embedder.")
    p.add_argument("--json", dest="json_out", help="also write the full result to this JSON file")
    p.add_argument("--facenet-weights", help="measure facenet InceptionResnetV1 with this state-dict file")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--real", action="append", default=[], metavar="FOLDER",
                   help="also measure on real media: each video, and each sub-folder of photos, is one person")
    p.add_argument("--same", action="append", default=[], metavar="A,B",
                   help="these files/sub-folders of --real show the same person (repeatable)")
    p.add_argument("--frames", type=int, default=4, help="frames taken from each video (default 4)")
    p.add_argument("--real-only", action="store_true", help="with --real: skip the augmented measurement")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    log = (lambda m: print(m, file=sys.stderr)) if args.verbose else None
    embedder = _embedder_from_args(args)
    result = {} if (args.real and args.real_only) else measure(embedder, log=log)
    if args.real:
        result["real"] = measure_folders(args.real, [g.split(",") for g in args.same], args.frames, embedder,
                                         log=log)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2))
    if "rates" in result:
        print(_markdown(result))
    if args.real:
        print()
        print(_markdown_real(result["real"], result))
    return 0


def cli(argv: list[str]) -> int:
    """Entry point for `python -m safety measure ...` (argv[0] is the command name)."""
    from safety.errors import LikenessError, ValidationError
    try:
        return _cli_measure(argv[1:])
    except (LikenessError, ValidationError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(cli(["measure", *sys.argv[1:]]))
