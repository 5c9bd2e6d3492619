"""Detector training data: paired real/generated clips, re-encoded alike, turned into feature vectors.

Sources (folders of the research media; nothing is copied into the repository):
  real:      real_speech/ and real_video/ clips (negatives); long clips give up to 3 segments of 12 s
  paired:    for every real clip a fake from its FIRST FRAME with its OWN audio (same person, same background,
             so the model cannot learn identity or background); a clip without audio gets a fake without audio
             (driven by a borrowed voice), so "has audio" says nothing about the label
  portrait:  every portrait in portraits/ and the two package portraits, each with voices from audio/
  other:     other_generators/ (test only, never trained on)
Fakes are rendered with `TalkingFacePipeline.frames` (the renderer's frames BEFORE the watermark and label) and
written with PyAV at the product's encoder settings (H.264 CRF 20, veryfast, yuv420p, AAC).

Self-blended pseudo-fakes (kind "blend", `make_blend`): real clips with their mouth region replaced by a
degraded, re-timed copy of itself (SBI-style; a stand-in for mouth-replacing generators); training only.

Every clip then passes the same re-encoding variants (VARIANTS), positives and negatives alike, and each
variant's first windows become feature rows. Results are cached per item in WORK/features/ (resumable);
fakes live in WORK/fakes/<renderer commit>/, so a renderer change regenerates only the fakes.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tools.evals.media import encode_mp4

from safety import detector as D

ROOT = Path(__file__).resolve().parents[2]
FAKE_SECONDS = 12.0           # longest generated clip (two analysis windows)
SEGMENT_SECONDS = 12.0        # real clips are cut into segments of this length (at most MAX_SEGMENTS)
MAX_SEGMENTS = 3
PRODUCT_CRF = 20              # what the product's VideoWriter uses

# re-encoding variants applied to every clip (name -> settings); None = the file as it is
VARIANTS: dict[str, dict | None] = {
    "clean": None,
    "crf23": {"crf": 23},
    "crf28": {"crf": 28},
    "crf35": {"crf": 35},
    "hard": {"crf": 28, "scale": 0.5, "crop": 0.8},      # CRF 28 + 50% downscale + crop to 80% of the area
    "mix": "random",                                     # random CRF 18-35, scale, crop, frame rate, levels
}
PORTRAIT_VARIANTS = ("clean", "crf28", "hard", "mix")

# clips that show the same person (split by person, never by clip)
SAME_PERSON = {
    "rizkiarm__LipNet__id2_vcd_swwp2s": "grid_man_short_hair",
    "rizkiarm__LipNet__GRID_pwij3p": "grid_man_short_hair",
    "Hangz-nju-cuhk__Talking-Face_PC-AVS__Input_00002": "vox_lily",
    "Hangz-nju-cuhk__Talking-Face_PC-AVS__Pose_Source_517600055": "vox_lily",
    "Hangz-nju-cuhk__Talking-Face_PC-AVS__Audio_Source_741400104": "vox_rdj",
    "Hangz-nju-cuhk__Talking-Face_PC-AVS__Pose_Source_741400163": "vox_rdj",
    "liveportrait__d9": "lp_man_glasses",
    "liveportrait__d12": "lp_man_glasses",
    "liveportrait__d13": "lp_man_glasses",
    "liveportrait__d19": "lp_d19",          # the portrait liveportrait__d19.jpg is the same man
    "echomimic__c": "echomimic_c",          # the portrait echomimic__c.png is likely the same woman
}


def person(stem: str) -> str:
    return SAME_PERSON.get(stem, stem)


@dataclass(frozen=True)
class Item:
    """One clip the detector learns from or is tested on.

    id: unique name; path: video file; label: 1 generated / 0 real; group: person (for the split);
    kind: real | paired | portrait | package | other; start: seconds into `path` where this item begins;
    variants: which VARIANTS to compute
    """
    id: str
    path: str
    label: int
    group: str
    kind: str
    start: float = 0.0
    variants: tuple[str, ...] = tuple(VARIANTS)


def renderer_commit() -> str:
    """Short hash of the last commit touching vasa_core/ (+ '-dirty' with uncommitted engine changes)."""
    try:
        h = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h", "--", "vasa_core"],
                           capture_output=True, text=True, timeout=20).stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "-C", str(ROOT), "diff", "--quiet", "HEAD", "--", "vasa_core"],
                               timeout=20).returncode != 0
        return h + ("-dirty" if dirty else "")
    except Exception:
        return "unknown"


# ----------------------------------------------------------------------------------------------------------
# reading and writing clips
def probe(path: str | Path) -> tuple[float, bool]:
    """(duration in seconds, has an audio track) of a clip."""
    import av
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        dur = None
        if v.duration is not None and v.time_base is not None:
            dur = float(v.duration * v.time_base)
        if not dur and c.duration:
            dur = c.duration / 1e6
        return float(dur or 0.0), bool(c.streams.audio)


def read_frames(path: str | Path, start: float, seconds: float, max_side: int = 640) -> tuple[list[np.ndarray], float]:
    """RGB frames of [start, start + seconds) (scaled to at most `max_side`), and the clip's frame rate."""
    import av
    out = []
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        vs.thread_type = "AUTO"
        rate = float(vs.average_rate or 25.0)
        t_first = None
        for i, fr in enumerate(c.decode(vs)):
            t = float(fr.time) if fr.time is not None else i / rate
            t_first = t if t_first is None else t_first
            t -= t_first
            if t < start - 1e-6:
                continue
            if t >= start + seconds:
                break
            s = min(1.0, max_side / max(fr.width, fr.height))
            out.append(fr.reformat(width=int(round(fr.width * s / 2)) * 2, height=int(round(fr.height * s / 2)) * 2,
                                   format="rgb24").to_ndarray())
    return out, rate


def read_audio(path: str | Path, start: float, seconds: float, rate: int = 48_000) -> np.ndarray | None:
    """Mono float32 samples of [start, start + seconds) at `rate`, or None without an audio track."""
    import av
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return None
        res = av.AudioResampler(format="flt", layout="mono", rate=rate)
        parts = []
        for fr in c.decode(audio=0):
            for o in res.resample(fr):
                parts.append(o.to_ndarray().reshape(-1))
            if sum(len(p) for p in parts) >= (start + seconds) * rate:
                break
    if not parts:
        return None
    x = np.concatenate(parts)[int(start * rate): int((start + seconds) * rate)]
    return x.astype(np.float32) if len(x) > rate // 2 else None


encode = encode_mp4   # the evaluation code's one MP4 writer (tools.evals.media)


def transform(frames: list[np.ndarray], fps: float, spec: dict, rng: np.random.Generator) -> tuple[list[np.ndarray], float, int]:
    """Apply a variant (crop area fraction, scale, frame rate, brightness/contrast) -> (frames, fps, crf)."""
    import cv2
    if spec.get("crop"):
        h, w = frames[0].shape[:2]
        side = math.sqrt(spec["crop"])
        ch, cw = int(h * side), int(w * side)
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        frames = [f[y0:y0 + ch, x0:x0 + cw] for f in frames]
    if spec.get("scale", 1.0) != 1.0:
        h, w = frames[0].shape[:2]
        size = (max(32, int(w * spec["scale"])), max(32, int(h * spec["scale"])))
        frames = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]
    if spec.get("fps") and abs(spec["fps"] - fps) > 0.5:
        n = int(round(len(frames) * spec["fps"] / fps))
        frames = [frames[min(len(frames) - 1, int(math.floor(i * fps / spec["fps"] + 0.5)))] for i in range(n)]
        fps = spec["fps"]
    if spec.get("gain"):
        g, b = spec["gain"]
        frames = [np.clip(f.astype(np.float32) * g + b, 0, 255).astype(np.uint8) for f in frames]
    return frames, fps, int(spec.get("crf", 23))


def random_spec(rng: np.random.Generator) -> dict:
    spec = {"crf": int(rng.integers(18, 36))}
    if rng.random() < 0.5:
        spec["scale"] = float(rng.choice([0.4, 0.5, 0.6, 0.75, 0.9]))
    if rng.random() < 0.5:
        spec["crop"] = float(rng.uniform(0.6, 0.95))
    if rng.random() < 0.4:
        spec["fps"] = float(rng.choice([15.0, 20.0, 24.0, 30.0]))
    if rng.random() < 0.3:
        spec["gain"] = (float(rng.uniform(0.85, 1.15)), float(rng.uniform(-12, 12)))
    return spec


def variant_bytes(item: Item, variant: str, seconds: float = SEGMENT_SECONDS) -> bytes:
    """The item's clip re-encoded by one variant (both classes get exactly this treatment)."""
    rng = np.random.default_rng(int(hashlib.sha256(f"{item.id}|{variant}".encode()).hexdigest()[:8], 16))
    spec = VARIANTS[variant]
    spec = random_spec(rng) if spec == "random" else dict(spec)
    frames, fps = read_frames(item.path, item.start, seconds)
    audio = read_audio(item.path, item.start, seconds, 16_000)
    frames, fps, crf = transform(frames, fps, spec, rng)
    return encode(frames, fps, audio, 16_000, crf)


def item_features(item: Item, variant: str) -> np.ndarray:
    """Feature rows (n_windows, F) of one item under one variant."""
    if VARIANTS[variant] is None and item.start == 0:
        return D.clip_features(item.path)
    return D.clip_features(variant_bytes(item, variant))


# ----------------------------------------------------------------------------------------------------------
# listing sources and making the fakes
def real_items(media: Path) -> list[Item]:
    items = []
    for sub in ("real_speech", "real_video"):
        for p in sorted((media / sub).iterdir()):
            if p.suffix.lower() not in D.VIDEO_SUFFIXES:
                continue
            dur, _ = probe(p)
            for k in range(MAX_SEGMENTS):
                start = k * SEGMENT_SECONDS
                if k and dur - start < 5.0:
                    break
                variants = tuple(VARIANTS) if k == 0 else ("crf23", "mix")
                items.append(Item(id=f"real:{p.stem}:{k}", path=str(p), label=0, group=person(p.stem), kind="real",
                                  start=start, variants=variants))
    return items


def other_items(media: Path) -> list[Item]:
    return [Item(id=f"other:{p.stem}", path=str(p), label=1, group=f"other:{p.stem}", kind="other",
                 variants=("clean", "hard"))
            for p in sorted((media / "other_generators").iterdir()) if p.suffix.lower() in D.VIDEO_SUFFIXES]


@dataclass(frozen=True)
class FakeSpec:
    """How to make one fake: portrait source (a video's first frame, an image file, or 'package:NAME'),
    audio source (file + start) or None for a silent-track fake driven by `drive_audio`, controls, size."""
    id: str
    group: str
    kind: str
    image: str
    audio: str
    audio_start: float
    seconds: float
    keep_audio: bool
    size: int
    controls: dict


def fake_specs(media: Path, seed: int = 0) -> list[FakeSpec]:
    """All fakes to make (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    voices = sorted(str(p) for p in (media / "audio").iterdir() if p.suffix.lower() in (".wav", ".mp3", ".m4a", ".ogg", ".flac"))
    specs = []

    def controls():
        c = {"seed": int(rng.integers(0, 10_000)), "motion_scale": float(rng.uniform(0.6, 1.4)),
             "distance": float(rng.uniform(0.85, 1.15)),
             "gaze": (float(rng.uniform(-6, 6)), float(rng.uniform(-4, 4)))}
        if rng.random() < 0.5:
            c["emotion"] = str(rng.choice(["happy", "sad", "angry", "surprised"]))
            c["emotion_weight"] = float(rng.uniform(0.3, 0.8))
        return c

    def size():
        return int(rng.choice([512, 512, 512, 384, 256]))

    for sub in ("real_speech", "real_video"):
        for p in sorted((media / sub).iterdir()):
            if p.suffix.lower() not in D.VIDEO_SUFFIXES:
                continue
            dur, has_audio = probe(p)
            secs = min(FAKE_SECONDS, max(3.0, dur))
            if has_audio:
                audio, start = str(p), 0.0
            else:
                audio, start = voices[int(rng.integers(len(voices)))], 0.0
            specs.append(FakeSpec(id=f"paired:{p.stem}", group=person(p.stem), kind="paired", image=str(p),
                                  audio=audio, audio_start=start, seconds=secs, keep_audio=has_audio, size=size(),
                                  controls=controls()))
    portraits = sorted(p for p in (media / "portraits").iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))
    for p in portraits:
        for k in range(2):
            v = voices[int(rng.integers(len(voices)))]
            specs.append(FakeSpec(id=f"portrait:{p.stem}:{k}", group=person(p.stem), kind="portrait", image=str(p),
                                  audio=v, audio_start=float(rng.uniform(0, 3)), seconds=float(rng.uniform(6, 10)),
                                  keep_audio=bool(rng.random() < 0.85), size=size(), controls=controls()))
    for name in ("astronaut", "grace_hopper"):
        for k in range(3):
            v = voices[int(rng.integers(len(voices)))]
            specs.append(FakeSpec(id=f"package:{name}:{k}", group=f"package:{name}", kind="package",
                                  image=f"package:{name}", audio=v, audio_start=float(rng.uniform(0, 3)),
                                  seconds=float(rng.uniform(6, 10)), keep_audio=True, size=size(),
                                  controls=controls()))
    return specs


def package_image(name: str) -> np.ndarray:
    if name == "astronaut":
        import skimage.data
        return skimage.data.astronaut()
    import matplotlib
    import matplotlib.image
    return np.asarray(matplotlib.image.imread(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))


def spec_image(spec: FakeSpec) -> np.ndarray | str:
    if spec.image.startswith("package:"):
        return package_image(spec.image.split(":", 1)[1])
    if Path(spec.image).suffix.lower() in D.VIDEO_SUFFIXES:
        frames, _ = read_frames(spec.image, 0.0, 0.05, max_side=1400)
        return frames[0]
    return spec.image


_PIPES: dict = {}


def make_fake(spec: FakeSpec, out: Path) -> bool:
    """Render one unmarked fake to `out` (MP4). Returns False when the portrait is refused (no usable face)."""
    import soundfile as sf

    from vasa_core import InputError

    from safety.publish import build_pipeline
    pipe = _PIPES.get(spec.size)
    if pipe is None:
        pipe = _PIPES[spec.size] = build_pipeline(size=spec.size, device="cpu")
    samples = read_audio(spec.audio, spec.audio_start, spec.seconds, 48_000)
    if samples is None or float(np.max(np.abs(samples))) < 1e-3:
        return False
    wav = io.BytesIO()
    sf.write(wav, samples, 48_000, format="WAV")
    try:
        image = spec_image(spec)
        audio = pipe.load_audio(wav.getvalue())
        motion = pipe.motion(audio, **spec.controls)
        frames = list(pipe.frames(image, motion))      # the renderer's frames: no watermark, no label
    except (InputError, ValueError) as e:
        print(f"  skip {spec.id}: {e}", file=sys.stderr)
        return False
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.mp4")
    encode(frames, pipe.fps, samples if spec.keep_audio else None, 48_000, PRODUCT_CRF, tmp)
    tmp.rename(out)
    return True


# ----------------------------------------------------------------------------------------------------------
# self-blended pseudo-fakes (SBI-style): a real clip whose mouth region is replaced by a degraded, re-timed
# copy of itself, blended in with a soft mask. It stands in for the mouth-replacing generators (Wav2Lip,
# video-retalking, MuseTalk) that we cannot run here: low-resolution mouth texture, a seam, lip motion that
# follows a different timing than the speech. Only used to train; the real other generators stay unseen.
def make_blend(path: str | Path, out: Path, seed: int) -> bool:
    """Write a self-blended pseudo-fake of (the first SEGMENT_SECONDS of) a real clip to `out`."""
    import cv2
    import mediapipe as mp
    rng = np.random.default_rng(seed)
    frames, fps = read_frames(path, 0.0, SEGMENT_SECONDS)
    if len(frames) < 10:
        return False
    audio = read_audio(path, 0.0, SEGMENT_SECONDS, 48_000)
    n = len(frames)
    if audio is not None:            # a mouth drive from loudness, shifted by up to +-200 ms
        hop = 48_000 / fps
        e = np.array([np.sqrt(np.mean(audio[int(k * hop):int((k + 1) * hop)] ** 2) + 1e-8) for k in range(n)])
        e = np.log(e + 1e-4)
        e = np.roll(e, int(rng.integers(-5, 6)))
    else:
        e = np.convolve(rng.normal(size=n + 8), np.ones(5) / 5, mode="same")[:n]
    e = (e - e.min()) / (np.ptp(e) + 1e-9)
    down = float(rng.uniform(2.0, 4.0))
    amp = float(rng.uniform(0.1, 0.35))
    gain = 1 + rng.uniform(-0.04, 0.04, 3)
    sharpen = rng.random() < 0.3
    out_frames = []
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=False) as mesh:
        for k, fr in enumerate(frames):
            res = mesh.process(fr)
            if not res.multi_face_landmarks:
                out_frames.append(fr)
                continue
            h, w = fr.shape[:2]
            lm = np.array([(p.x * w, p.y * h) for p in res.multi_face_landmarks[0].landmark])
            mw = abs(lm[291, 0] - lm[61, 0])
            x0, x1 = int(max(0, min(lm[61, 0], lm[291, 0]) - 0.4 * mw)), int(min(w, max(lm[61, 0], lm[291, 0]) + 0.4 * mw))
            y0, y1 = int(max(0, lm[2, 1])), int(min(h, lm[152, 1] + 0.1 * mw))
            if x1 - x0 < 12 or y1 - y0 < 12:
                out_frames.append(fr)
                continue
            patch = fr[y0:y1, x0:x1].astype(np.float32)
            ph, pw = patch.shape[:2]
            cy = (lm[13, 1] + lm[14, 1]) / 2 - y0
            sc = 1 + amp * (e[k] - 0.5)
            m = np.float32([[1, 0, 0], [0, sc, cy * (1 - sc)]])
            patch = cv2.warpAffine(patch, m, (pw, ph), borderMode=cv2.BORDER_REFLECT)
            small = cv2.resize(patch, (max(4, int(pw / down)), max(4, int(ph / down))), interpolation=cv2.INTER_AREA)
            patch = cv2.resize(small, (pw, ph), interpolation=cv2.INTER_LINEAR)
            if sharpen:
                patch = cv2.addWeighted(patch, 1.6, cv2.GaussianBlur(patch, (0, 0), 1.5), -0.6, 0)
            patch = patch * gain[None, None, :]
            mask = np.zeros((ph, pw), np.float32)
            cv2.ellipse(mask, (pw // 2, int(ph * 0.55)), (int(pw * 0.42), int(ph * 0.42)), 0, 0, 360, 1.0, -1)
            mask = cv2.GaussianBlur(mask, (0, 0), 0.1 * min(pw, ph))[..., None]
            g = fr.copy()
            g[y0:y1, x0:x1] = np.clip(mask * patch + (1 - mask) * fr[y0:y1, x0:x1], 0, 255).astype(np.uint8)
            out_frames.append(g)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.mp4")
    encode(out_frames, fps, audio, 48_000, PRODUCT_CRF, tmp)
    tmp.rename(out)
    return True


def _blend_job(args):
    path, out, seed = args
    if out.exists():
        return str(path), True
    try:
        return str(path), make_blend(path, out, seed)
    except Exception as e:
        print(f"  blend {Path(path).stem} failed: {type(e).__name__}: {e}", file=sys.stderr)
        return str(path), False


# ----------------------------------------------------------------------------------------------------------
# the whole data set
def _init_worker():
    try:
        os.nice(10)
    except Exception:
        pass
    os.environ["OMP_NUM_THREADS"] = "1"
    import cv2
    cv2.setNumThreads(1)
    import torch
    torch.set_num_threads(1)


def _fake_job(args):
    spec, out = args
    if out.exists():
        return spec.id, True
    try:
        return spec.id, make_fake(spec, out)
    except Exception as e:
        print(f"  fake {spec.id} failed: {type(e).__name__}: {e}", file=sys.stderr)
        return spec.id, False


def _feature_job(args):
    item, cache = args
    path = cache / (hashlib.sha1(f"{item.id}|{item.path}|{item.start}".encode()).hexdigest()[:16] + ".json")
    if path.exists():
        rec = json.loads(path.read_text())
        if set(item.variants) <= set(rec["rows"]):
            return rec
    rec = {"item": asdict(item), "rows": {}, "errors": {}}
    for v in item.variants:
        try:
            X = item_features(item, v)
            rec["rows"][v] = [[None if not np.isfinite(x) else float(x) for x in row] for row in X]
        except Exception as e:
            rec["errors"][v] = f"{type(e).__name__}: {e}"
    path.write_text(json.dumps(rec))
    return rec


def build(media: Path, work: Path, workers: int = 2, limit: int | None = None, seed: int = 0,
          with_blends: bool = True) -> dict:
    """Make the fakes and the features of every item (cached in `work`). Returns {"commit", "records"}."""
    from multiprocessing import get_context
    media, work = Path(media), Path(work)
    commit = renderer_commit()
    fake_dir = work / "fakes" / commit
    specs = fake_specs(media, seed)
    reals = real_items(media)
    others = other_items(media)
    if limit:
        specs, reals, others = specs[:limit], reals[:limit], others[: max(1, limit // 4)]
    t0 = time.time()
    ctx = get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker) as pool:
        made = {}
        jobs = [(s, fake_dir / (s.id.replace(":", "__") + ".mp4")) for s in specs]
        for i, (sid, ok) in enumerate(pool.imap_unordered(_fake_job, jobs)):
            made[sid] = ok
            print(f"\rfakes {i + 1}/{len(jobs)} ({time.time() - t0:.0f} s)", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        fakes = []
        for s, out in jobs:
            if made.get(s.id):
                variants = tuple(VARIANTS) if s.kind == "paired" else PORTRAIT_VARIANTS
                fakes.append(Item(id=f"fake:{commit}:{s.id}", path=str(out), label=1, group=s.group, kind=s.kind,
                                  variants=variants))
        blends = []
        if with_blends:
            first = [it for it in reals if it.start == 0]
            bjobs = [(it.path, work / "fakes" / "blend" / (Path(it.path).stem + ".mp4"), seed + i)
                     for i, it in enumerate(first)]
            for i, (path, ok) in enumerate(pool.imap_unordered(_blend_job, bjobs)):
                print(f"\rblends {i + 1}/{len(bjobs)} ({time.time() - t0:.0f} s)", end="", file=sys.stderr, flush=True)
            print(file=sys.stderr)
            for it, (_, out, _) in zip(first, bjobs):
                if out.exists():
                    blends.append(Item(id=f"blend:{Path(it.path).stem}", path=str(out), label=1, group=it.group,
                                       kind="blend", variants=PORTRAIT_VARIANTS))
        real_cache, fake_cache = work / "features" / "real", work / "features" / commit
        blend_cache = work / "features" / "blend"
        for d in (real_cache, fake_cache, blend_cache):
            d.mkdir(parents=True, exist_ok=True)
        jobs2 = ([(it, real_cache) for it in reals + others] + [(it, blend_cache) for it in blends]
                 + [(it, fake_cache) for it in fakes])
        records = []
        for i, rec in enumerate(pool.imap_unordered(_feature_job, jobs2)):
            records.append(rec)
            print(f"\rfeatures {i + 1}/{len(jobs2)} ({time.time() - t0:.0f} s)", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
    return {"commit": commit, "records": records, "n_fake_specs": len(specs), "n_fakes": len(fakes),
            "n_blends": len(blends)}
