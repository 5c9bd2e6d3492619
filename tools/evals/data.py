"""The detector's data: real clips, other generators' clips and our own unmarked fakes, every one re-encoded by
the same variants, turned into cached signals (`safety.detector_features.ClipSignals`).

Sources (research media; nothing is copied into the repository, the cache lives outside it):
  real   real_speech/ and real_video/: the first ANALYSIS_SECONDS, plus a second segment of long clips
  other  other_generators/<generator>/: one folder per generator (the folder name is the label used by the
         leave-one-generator-out evaluation)
  ours   our renderer's frames BEFORE the watermark and label (`TalkingFacePipeline.frames`), from each real
         clip's first frame with its own audio (a borrowed voice when it has none), written at the product's
         encoder settings; watermark stripped by construction

Variants (VARIANTS): every clip gets "clean" (the file as it is) and "hard" (CRF 28 + 50% downscale + crop to
80% of the area) and one more chosen by a hash of its id from the other six, so each class sees every
re-encoding equally often and compression never tells the classes apart.

    .venv/bin/python -m tools.evals.data --media ../shared/media --work /tmp/detector   # build the cache only
"""
from __future__ import annotations

import argparse
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

ROOT = Path(__file__).resolve().parents[2]
VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mpg", ".mpeg"}
SEGMENT_SECONDS = 8.0          # = safety.detector_features.ANALYSIS_SECONDS
PRODUCT_CRF = 16               # what the product's VideoWriter uses (vasa_core.video)
DEFAULT_WORK = Path("/tmp/detector")

VARIANTS: dict[str, dict | None] = {
    "clean": None,
    "crf23": {"crf": 23},
    "crf28": {"crf": 28},
    "crf35": {"crf": 35},
    "down": {"crf": 23, "scale": 0.5},
    "crop": {"crf": 23, "crop": 0.6},
    "fps": {"crf": 23, "fps": "alt"},                 # 15 or 30 fps (15 when the clip runs at >= 24)
    "hard": {"crf": 28, "scale": 0.5, "crop": 0.8},   # the "CRF 28 + downscale + crop"
}
EXTRA = ("crf23", "crf28", "crf35", "down", "crop", "fps")
MAX_OWN = 40                   # our fakes (chosen by a hash of the source clip: any 40 people)

# clips that show the same person (the evaluation splits real clips by person, never by clip)
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
}


def person(stem: str) -> str:
    return SAME_PERSON.get(stem, stem)


@dataclass(frozen=True)
class Item:
    """One clip: id (unique), path, label (1 generated / 0 real), group (person for real and our fakes,
    generator for other generators), kind (real | other | ours), generator ("" for real), start (s),
    variants (names in VARIANTS)."""
    id: str
    path: str
    label: int
    group: str
    kind: str
    generator: str
    start: float = 0.0
    variants: tuple[str, ...] = ("clean", "hard")


def _h(s: str) -> int:
    return int(hashlib.sha256(s.encode()).hexdigest()[:8], 16)


def variants_for(item_id: str) -> tuple[str, ...]:
    return ("clean", "hard", EXTRA[_h(item_id) % len(EXTRA)])


def renderer_version() -> str:
    """The code's renderer version (vasa_core.render.RENDERER_VERSION)."""
    from vasa_core import render
    return str(getattr(render, "RENDERER_VERSION", "unknown"))


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
# reading, transforming and writing clips
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


def read_frames(path, start: float, seconds: float, max_side: int = 640) -> tuple[list[np.ndarray], float]:
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


def read_audio(path, start: float, seconds: float, rate: int = 48_000) -> np.ndarray | None:
    """Mono float32 samples of [start, start + seconds) at `rate`, or None without an audio track."""
    import av
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return None
        res = av.AudioResampler(format="flt", layout="mono", rate=rate)
        parts = []
        try:
            for fr in c.decode(audio=0):
                for o in res.resample(fr):
                    parts.append(o.to_ndarray().reshape(-1))
                if sum(len(p) for p in parts) >= (start + seconds) * rate:
                    break
        except Exception:
            pass
    if not parts:
        return None
    x = np.concatenate(parts)[int(start * rate): int((start + seconds) * rate)]
    return x.astype(np.float32) if len(x) > rate // 2 else None


def encode(frames, fps, audio, audio_rate, crf, target=None):
    from tools.evals.media import encode_mp4
    return encode_mp4(frames, fps, audio, audio_rate, crf, target)


def transform(frames: list[np.ndarray], fps: float, spec: dict, rng: np.random.Generator) -> tuple[list[np.ndarray], float, int]:
    """Apply a variant (crop area fraction, scale, frame rate) -> (frames, fps, crf)."""
    import cv2
    if spec.get("crop"):
        h, w = frames[0].shape[:2]
        side = math.sqrt(spec["crop"])
        ch, cw = int(h * side), int(w * side)
        # keep the crop around the centre (a face at the edge of a crop is a different test: tracking loss)
        y0 = int(rng.integers((h - ch) // 4, (h - ch) * 3 // 4 + 1))
        x0 = int(rng.integers((w - cw) // 4, (w - cw) * 3 // 4 + 1))
        frames = [f[y0:y0 + ch, x0:x0 + cw] for f in frames]
    if spec.get("scale", 1.0) != 1.0:
        h, w = frames[0].shape[:2]
        size = (max(32, int(w * spec["scale"])), max(32, int(h * spec["scale"])))
        frames = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]
    if spec.get("fps"):
        new = 15.0 if fps >= 24 else 30.0
        n = int(round(len(frames) * new / fps))
        frames = [frames[min(len(frames) - 1, int(math.floor(i * fps / new + 0.5)))] for i in range(n)]
        fps = new
    return frames, fps, int(spec.get("crf", 23))


def variant_bytes(item: Item, variant: str, frames=None, fps=None, audio=None) -> bytes:
    """The item's clip re-encoded by one variant (both classes get exactly this treatment)."""
    rng = np.random.default_rng(_h(f"{item.id}|{variant}"))
    spec = VARIANTS[variant] or {"crf": 18}            # "clean" of a later segment: a near-lossless cut
    if frames is None:
        frames, fps = read_frames(item.path, item.start, SEGMENT_SECONDS)
        audio = read_audio(item.path, item.start, SEGMENT_SECONDS, 16_000)
    frames, fps, crf = transform(frames, fps, spec, rng)
    return encode(frames, fps, audio, 16_000, crf)


# ----------------------------------------------------------------------------------------------------------
# listing sources
def real_items(media: Path) -> list[Item]:
    items = []
    for sub in ("real_speech", "real_video"):
        for p in sorted((media / sub).iterdir()):
            if p.suffix.lower() not in VIDEO_SUFFIXES:
                continue
            dur, _ = probe(p)
            for k in range(2):
                start = k * SEGMENT_SECONDS
                if k and dur - start < 6.0:
                    break
                iid = f"real:{p.stem}:{k}"
                items.append(Item(id=iid, path=str(p), label=0, group=person(p.stem), kind="real", generator="",
                                  start=start, variants=variants_for(iid)))
    return items


def other_items(media: Path) -> list[Item]:
    items = []
    root = media / "other_generators"
    for g in sorted(d for d in root.iterdir() if d.is_dir()):
        for p in sorted(g.iterdir()):
            if p.suffix.lower() in VIDEO_SUFFIXES:
                iid = f"other:{g.name}:{p.stem}"
                items.append(Item(id=iid, path=str(p), label=1, group=f"gen:{g.name}", kind="other",
                                  generator=g.name, variants=variants_for(iid)))
    return items


@dataclass(frozen=True)
class FakeSpec:
    """One of our fakes: a real clip's first frame, driven by its own audio (or a borrowed voice)."""
    id: str
    group: str
    image: str
    audio: str
    keep_audio: bool
    size: int
    controls: dict


def fake_specs(media: Path, seed: int = 0) -> list[FakeSpec]:
    rng = np.random.default_rng(seed)
    voices = sorted(str(p) for p in (media / "audio").iterdir()
                    if p.suffix.lower() in (".wav", ".mp3", ".m4a", ".ogg", ".flac"))
    specs = []
    for sub in ("real_speech", "real_video"):
        for p in sorted((media / sub).iterdir()):
            if p.suffix.lower() not in VIDEO_SUFFIXES:
                continue
            _, has_audio = probe(p)
            ctrl = {"seed": int(rng.integers(0, 10_000)), "motion_scale": float(rng.uniform(0.6, 1.4))}
            if rng.random() < 0.4:
                ctrl["emotion"] = str(rng.choice(["happy", "sad", "angry", "surprised"]))
                ctrl["emotion_weight"] = float(rng.uniform(0.3, 0.8))
            specs.append(FakeSpec(id=f"ours:{p.stem}", group=person(p.stem), image=str(p),
                                  audio=str(p) if has_audio else voices[int(rng.integers(len(voices)))],
                                  keep_audio=has_audio, size=int(rng.choice([512, 512, 384, 256])), controls=ctrl))
    return sorted(specs, key=lambda s: _h(s.id))[:MAX_OWN]


_PIPES: dict = {}


def make_fake(spec: FakeSpec, out: Path) -> bool:
    """Render one unmarked fake to `out` (MP4). False when the portrait is refused (no usable face)."""
    import soundfile as sf

    from safety.publish import build_pipeline
    from vasa_core import InputError
    pipe = _PIPES.get(spec.size)
    if pipe is None:
        pipe = _PIPES[spec.size] = build_pipeline(size=spec.size, device="cpu")
    samples = read_audio(spec.audio, 0.0, SEGMENT_SECONDS, 48_000)
    if samples is None or float(np.max(np.abs(samples))) < 1e-3:
        return False
    wav = io.BytesIO()
    sf.write(wav, samples, 48_000, format="WAV")
    try:
        frames, _ = read_frames(spec.image, 0.0, 0.05, max_side=1400)
        audio = pipe.load_audio(wav.getvalue())
        frames = list(pipe.frames(frames[0], pipe.motion(audio, **spec.controls)))   # no watermark, no label
    except (InputError, ValueError) as e:
        print(f"  skip {spec.id}: {e}", file=sys.stderr)
        return False
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.mp4")
    encode(frames, pipe.fps, samples if spec.keep_audio else None, 48_000, PRODUCT_CRF, tmp)
    tmp.rename(out)
    return True


# ----------------------------------------------------------------------------------------------------------
# the signal cache
def signal_path(work: Path, item: Item, variant: str) -> Path:
    key = hashlib.sha1(f"{item.id}|{item.path}|{item.start}|{variant}".encode()).hexdigest()[:16]
    return Path(work) / "signals" / f"{key}.npz"


def item_signals(item: Item, work: Path) -> dict[str, str]:
    """Extract (or find cached) signals of every variant of one item -> {variant: path or 'error: ...'}."""
    from safety.detector_features import extract_signals
    out, frames, fps, audio = {}, None, None, None
    for v in item.variants:
        p = signal_path(work, item, v)
        if p.exists():
            out[v] = str(p)
            continue
        try:
            if v == "clean" and item.start == 0:
                sig = extract_signals(item.path)
            else:
                if frames is None:
                    frames, fps = read_frames(item.path, item.start, SEGMENT_SECONDS)
                    audio = read_audio(item.path, item.start, SEGMENT_SECONDS, 16_000)
                sig = extract_signals(variant_bytes(item, v, frames, fps, audio))
            p.parent.mkdir(parents=True, exist_ok=True)
            sig.save(p)
            out[v] = str(p)
        except Exception as e:
            out[v] = f"error: {type(e).__name__}: {e}"
    return out


def _init_worker():
    try:
        os.nice(max(0, 10 - os.nice(0)))        # nice 10 (not 10 more when the parent is already niced)
    except Exception:
        pass
    os.environ["OMP_NUM_THREADS"] = "1"
    import cv2
    cv2.setNumThreads(1)


def _signal_job(args):
    item, work = args
    return item, item_signals(item, work)


def _fake_job(args):
    spec, out = args
    if out.exists():
        return spec.id, True
    try:
        return spec.id, make_fake(spec, out)
    except Exception as e:
        print(f"  fake {spec.id} failed: {type(e).__name__}: {e}", file=sys.stderr)
        return spec.id, False


def list_items(media: Path, work: Path, make_fakes: bool = True, workers: int = 1,
               version: str | None = None) -> list[Item]:
    """Every item (real, other, ours); our fakes are rendered into WORK/fakes/<renderer version>/ first
    (`version`: use the fakes already made by another renderer version instead; nothing is rendered then)."""
    items = real_items(media) + other_items(media)
    if version is not None:
        make_fakes = False
    version = version or renderer_version()
    fake_dir = Path(work) / "fakes" / version
    specs = fake_specs(media)
    jobs = [(s, fake_dir / (s.id.replace(":", "__") + ".mp4")) for s in specs]
    if make_fakes:
        from multiprocessing import get_context
        todo = [j for j in jobs if not j[1].exists()]
        if todo:
            with get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
                for i, _ in enumerate(pool.imap_unordered(_fake_job, todo)):
                    print(f"\rfakes {i + 1}/{len(todo)}", end="", file=sys.stderr, flush=True)
            print(file=sys.stderr)
    for s, out in jobs:
        if out.exists():
            iid = f"ours:{version}:{s.id.split(':', 1)[1]}"
            items.append(Item(id=iid, path=str(out), label=1, group=s.group, kind="ours", generator="ours",
                              variants=variants_for(iid)))
    return items


def build(media: Path, work: Path, workers: int = 2, make_fakes: bool = True, only: str | None = None) -> list[dict]:
    """Signals of every item (cached under WORK/signals). Returns [{"item": asdict(Item), "signals": {...}}]
    and writes WORK/index.json."""
    from multiprocessing import get_context
    work = Path(work)
    items = list_items(media, work, make_fakes, workers)
    if only:
        items = [it for it in items if it.kind == only]
    t0 = time.time()
    recs = []
    with get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
        for i, (item, sigs) in enumerate(pool.imap_unordered(_signal_job, [(it, work) for it in items])):
            recs.append({"item": asdict(item), "signals": sigs})
            el = time.time() - t0
            print(f"\rsignals {i + 1}/{len(items)} ({el:.0f} s, ~{el / (i + 1) * (len(items) - i - 1):.0f} s left)",
                  end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    recs.sort(key=lambda r: r["item"]["id"])
    index = work / "index.json"
    old = json.loads(index.read_text())["records"] if index.exists() else []
    merged = {r["item"]["id"]: r for r in old}
    merged.update({r["item"]["id"]: r for r in recs})
    index.write_text(json.dumps({"renderer_version": renderer_version(),
                                 "records": sorted(merged.values(), key=lambda r: r["item"]["id"])}))
    return recs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.evals.data", description=__doc__.split("\n")[0])
    ap.add_argument("--media", default=str(ROOT.parent / "shared" / "media"))
    ap.add_argument("--work", default=str(DEFAULT_WORK))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-fakes", action="store_true", help="do not render our fakes (use those already made)")
    ap.add_argument("--only", choices=("real", "other", "ours"), help="only this kind of item")
    args = ap.parse_args(argv)
    recs = build(Path(args.media), Path(args.work), args.workers, not args.no_fakes, args.only)
    bad = sum(1 for r in recs for v in r["signals"].values() if v.startswith("error"))
    print(f"{len(recs)} items, {bad} variant(s) failed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
