"""Lip sync measured on real mouths: real talking videos with their own speech.

    python -m tools.lipsync.evaluate --real DIR [--real DIR2 ...] [--models whisper,learned,acoustic,pocketsphinx]
                                         [--no-render] [--save OUT.json] [--track-cache DIR] [--weights W.npz]

For every video in DIR that carries speech (silero-vad finds >= 1 s of it):
  1. the real mouth is tracked with mediapipe's face mesh (the tracker already in the engine): per frame the
     inner-lip gap (mean 3D distance of the inner-lip pairs 13/14, 82/87, 312/317), the mouth width (corners
     61/291) and the rounding (how much narrower than the clip's median width the mouth is), all divided by
     the inter-ocular distance (eye centres), resampled to 25 fps on the audio's clock;
  2. each mouth model predicts the mouth from the clip's audio through exactly the path that renders
     (`TalkingFacePipeline.motion`: the file decoded at 48 kHz, then `MotionStream` or, for the acoustic
     model, the pipeline's whole-clip path); pocketsphinx phones go through the same phoneme table and are
     put into the learned motion's mouth columns;
  3. "predicted": the motion deforms the face rig of the clip's first frame (`vasa_core.face`) and the same
     lip measurements are taken on the deformed mesh (no pixels: what the model asks the renderer for);
  4. "rendered": the motion is rendered at 256 px on the clip's first frame (`Renderer`) and the rendered
     video is tracked by the same tracker (what a viewer sees; the renderer can lose what the model asked).

Metrics per clip (25 fps, on frames where the face was tracked):
  r0          Pearson r of predicted/rendered inner-lip gap with the real one, no shift
  best_lag    shift in frames (+ = ours late) in -8..8 that maximises r; r_best its r
  closure     of the real mouth's closures during speech (the gap under 20% of its speech range, runs of
              <= 400 ms), the share where ours also closes (same rule on ours) within +-1 frame
  amp         amplitude ratio: (p95 - p5) of our gap / (p95 - p5) of the real gap, during speech
  r_round     Pearson r of rounding (width narrowing)
  sil_motion  mean |frame-to-frame change| of our gap (per inter-ocular distance) where silero-vad hears
              no speech for >= 0.5 s (0 = still)
  r_sync      r at the file's own audio/video offset, found without any mouth model: the lag at which the
              real lip gap best follows the speech-band energy of the file's sound (`av_offset`), minus the
              median of that lag over all clips evaluated (the mouth's usual lead on its sound); files within
              1 frame of the median, or whose peak is not clearly better (by 0.05 in r), count as in sync
              (offset 0, r_sync = r0). It tells a file's A/V offset from a late or early mouth model.
Per clip, independent of any model: tracker_agreement, r of the real gap tracked on the frames and on them
mirrored (`tracker_agreement`); sqrt of it bounds the r any mouth could score against this tracker.
Overall rows: the mean over clips (every clip counts once) and per source group (GRID studio clips,
VoxCeleb2 crops, other).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FPS = 25.0
VIDEO_EXT = {".mp4", ".mpg", ".mpeg", ".mov", ".mkv", ".avi", ".webm", ".m4v"}
INNER_PAIRS = ((13, 14), (82, 87), (312, 317))
CORNERS = (61, 291)
EYE_R, EYE_L = (33, 133), (362, 263)
MAX_LAG = 8


# ------------------------------------------------------------------------------------------------ geometry
def lip_measures(pts: np.ndarray) -> tuple[float, float]:
    """(inner-lip gap, mouth width), both / inter-ocular distance, from (478|468, 3) landmarks (any units)."""
    iod = np.linalg.norm(pts[list(EYE_R)].mean(0) - pts[list(EYE_L)].mean(0))
    gap = np.mean([np.linalg.norm(pts[a] - pts[b]) for a, b in INNER_PAIRS])
    width = np.linalg.norm(pts[CORNERS[0]] - pts[CORNERS[1]])
    return float(gap / iod), float(width / iod)


class MouthTracker:
    """mediapipe face mesh in video mode; `measure(rgb)` -> (gap, width) / IOD, (NaN, NaN) without a face."""

    def __init__(self, max_side: int = 960):
        from vasa_core.portrait import video_face_mesh
        self.mesh = video_face_mesh(refine=False, confidence=0.4)
        self.max_side = max_side

    def measure(self, rgb: np.ndarray) -> tuple[float, float]:
        import cv2
        h, w = rgb.shape[:2]
        if max(h, w) > self.max_side:
            k = self.max_side / max(h, w)
            rgb = cv2.resize(rgb, (int(round(w * k)), int(round(h * k))), interpolation=cv2.INTER_AREA)
            h, w = rgb.shape[:2]
        res = self.mesh.process(np.ascontiguousarray(rgb))
        if not res.multi_face_landmarks:
            return np.nan, np.nan
        lm = res.multi_face_landmarks[0].landmark
        pts = np.array([(p.x * w, p.y * h, p.z * w) for p in lm], np.float64)
        return lip_measures(pts)

    def close(self):
        self.mesh.close()


@dataclass(frozen=True)
class MouthTrack:
    """Per video frame at 25 fps: gap and width / IOD (NaN where no face), rounding = median width - width.
    `gap_mirrored`: the gap tracked again on the left-right mirrored frames (real videos only; see
    `tracker_agreement`)."""
    gap: np.ndarray
    width: np.ndarray
    gap_mirrored: np.ndarray | None = None

    @property
    def valid(self) -> np.ndarray:
        return np.isfinite(self.gap)

    @property
    def rounding(self) -> np.ndarray:
        w = self.width
        return np.nanmedian(w) - w if np.any(np.isfinite(w)) else w


def _to_grid(times: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Values at arbitrary frame times -> n frames at 25 fps (linear; NaN where the nearest sample is NaN
    or further than one source frame away)."""
    out = np.full(n, np.nan)
    if len(times) == 0:
        return out
    t = np.arange(n) / FPS
    ok = np.isfinite(values)
    if ok.sum() >= 2:
        out = np.interp(t, times[ok], values[ok])
    near = np.clip(np.searchsorted(times, t), 0, len(times) - 1)
    prev = np.clip(near - 1, 0, len(times) - 1)
    nearest = np.where(np.abs(times[prev] - t) < np.abs(times[near] - t), prev, near)
    step = np.median(np.diff(times)) if len(times) > 1 else 1 / FPS
    bad = ~ok[nearest] | (np.abs(times[nearest] - t) > 1.5 * step)
    out[bad] = np.nan
    return out


def track_video(path: str | Path, n: int) -> tuple[MouthTrack, np.ndarray | None]:
    """Track the real mouth of a video on the audio's clock: (MouthTrack of n frames, first frame RGB).
    Every frame is tracked twice, as it is and mirrored (a second tracker, so neither sees the other's
    history), for `tracker_agreement`."""
    import av
    tracker, mirrored = MouthTracker(), MouthTracker()
    times, gaps, widths, gaps_m, first = [], [], [], [], None
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        a0 = 0.0
        if c.streams.audio and c.streams.audio[0].start_time is not None:
            a0 = float(c.streams.audio[0].start_time * c.streams.audio[0].time_base)
        for frame in c.decode(vs):
            if frame.time is None:
                continue
            rgb = frame.to_ndarray(format="rgb24")
            if first is None:
                first = rgb
            times.append(float(frame.time) - a0)
            gap, width = tracker.measure(rgb)
            gaps.append(gap)
            widths.append(width)
            gaps_m.append(mirrored.measure(rgb[:, ::-1])[0])
    tracker.close()
    mirrored.close()
    times = np.asarray(times)
    order = np.argsort(times)
    times, gaps, widths, gaps_m = (times[order], np.asarray(gaps)[order], np.asarray(widths)[order],
                                   np.asarray(gaps_m)[order])
    return MouthTrack(_to_grid(times, gaps, n), _to_grid(times, widths, n), _to_grid(times, gaps_m, n)), first


def track_frames(frames) -> MouthTrack:
    """Track an iterable of rendered RGB frames (already at 25 fps)."""
    tracker = MouthTracker()
    gaps, widths = [], []
    for f in frames:
        gap, width = tracker.measure(f)
        gaps.append(gap)
        widths.append(width)
    tracker.close()
    return MouthTrack(np.asarray(gaps), np.asarray(widths))


def rig_track(rig, motion) -> MouthTrack:
    """The lip measurements on the face rig deformed by every frame of a MotionSequence (no rendering)."""
    from vasa_core.face import deform
    gaps, widths = [], []
    for i in range(len(motion)):
        g, w = lip_measures(deform(rig, motion.frame(i)))
        gaps.append(g)
        widths.append(w)
    return MouthTrack(np.asarray(gaps), np.asarray(widths))


# ------------------------------------------------------------------------------------------------ metrics
def _corr(a, b) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 10 or np.std(a[ok]) < 1e-9 or np.std(b[ok]) < 1e-9:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def tracker_agreement(track: MouthTrack) -> float:
    """Pearson r of the real lip gap tracked on the frames as they are and mirrored left-right.

    The two measurements share the true mouth and any error the tracker makes the same way in both, so
    agreement = (true + shared-error variance) / measured variance, an upper bound on the tracker's
    reliability; no mouth model can correlate with the measured gap better than about sqrt(agreement)
    (its "ceiling"). A low agreement means the tracker, not the model, limits r on that clip."""
    return float("nan") if track.gap_mirrored is None else _corr(track.gap, track.gap_mirrored)


def lagged_corr(real: np.ndarray, ours: np.ndarray, max_lag: int = MAX_LAG) -> dict[int, float]:
    """r(k) = corr(ours[t + k], real[t]) for k in -max_lag..max_lag (+ k: ours is late)."""
    out = {}
    n = len(real)
    for k in range(-max_lag, max_lag + 1):
        if k >= 0:
            out[k] = _corr(real[:n - k], ours[k:])
        else:
            out[k] = _corr(real[-k:], ours[:n + k])
    return out


def best_lag(lags: dict[int, float]) -> int | None:
    """The lag with the highest finite r in a `lagged_corr` result (None where no r is finite)."""
    finite = {k: v for k, v in lags.items() if v is not None and np.isfinite(v)}
    return max(finite, key=finite.get) if finite else None


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    m = np.r_[0, mask.astype(int), 0]
    d = np.diff(m)
    return list(zip(np.where(d == 1)[0], np.where(d == -1)[0]))


def _closed(x: np.ndarray, speech: np.ndarray) -> np.ndarray:
    """Frames where the gap is under 20% of its range during speech (p5..p95)."""
    v = x[speech & np.isfinite(x)]
    if len(v) < 10:
        return np.zeros(len(x), bool)
    lo, hi = np.percentile(v, [5, 95])
    return np.nan_to_num(x, nan=np.inf) < lo + 0.2 * (hi - lo)


def closure_agreement(real: np.ndarray, ours: np.ndarray, speech: np.ndarray) -> tuple[int, int]:
    """(closures of the real mouth during speech that ours also makes within +-1 frame, their number)."""
    rc, oc = _closed(real, speech), _closed(ours, speech)
    hit = tot = 0
    for a, b in _runs(rc):
        if b - a > 10 or not speech[a:b].all():
            continue
        tot += 1
        hit += int(oc[max(0, a - 1):b + 1].any())
    return hit, tot


def clip_metrics(real: MouthTrack, ours: MouthTrack, speech: np.ndarray, silence: np.ndarray) -> dict:
    n = min(len(real.gap), len(ours.gap))
    rg, og = real.gap[:n], ours.gap[:n]
    speech, silence = speech[:n], silence[:n]
    lags = lagged_corr(rg, og)
    best = best_lag(lags) or 0
    hit, tot = closure_agreement(rg, og, speech)
    sp = speech & np.isfinite(rg) & np.isfinite(og)
    amp = float("nan")
    if sp.sum() >= 10:
        pr = np.diff(np.percentile(rg[sp], [5, 95]))[0]
        po = np.diff(np.percentile(og[sp], [5, 95]))[0]
        amp = float(po / pr) if pr > 1e-6 else float("nan")
    sil = silence & np.r_[silence[1:], False] & np.isfinite(og) & np.isfinite(np.r_[og[1:], np.nan])
    sil_motion = float(np.abs(np.diff(og))[sil[:-1]].mean()) if sil[:-1].sum() >= 5 else float("nan")
    return {"frames": int(n), "tracked": float(np.mean(np.isfinite(rg) & np.isfinite(og))),
            "r0": lags[0], "best_lag": int(best), "r_best": lags[best] if np.isfinite(lags[best]) else float("nan"),
            "closure_hit": hit, "closure_n": tot, "closure": hit / tot if tot else float("nan"),
            "amp": amp, "r_round": _corr(real.rounding[:n], ours.rounding[:n]), "sil_motion": sil_motion,
            "lags": {int(k): (round(v, 4) if np.isfinite(v) else None) for k, v in lags.items()}}


def speech_masks(samples16: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(speech, silence) masks per 25 fps frame from silero-vad; silence = no speech within 0.25 s."""
    import torch
    from silero_vad import get_speech_timestamps, load_silero_vad
    model = load_silero_vad()
    ts = get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(samples16)), model, sampling_rate=16000,
                               return_seconds=True)
    t = np.arange(n) / FPS
    speech = np.zeros(n, bool)
    near = np.zeros(n, bool)
    for seg in ts:
        speech |= (t >= seg["start"]) & (t < seg["end"])
        near |= (t >= seg["start"] - 0.25) & (t < seg["end"] + 0.25)
    return speech, ~near


def energy_lags(real_gap: np.ndarray, samples16: np.ndarray) -> dict[int, float]:
    """r(k) of the real lip gap with the speech-band energy of the sound (k frames later), k in -8..8: how far
    the file's mouth leads its sound, measured with no mouth model (see `av_offset`)."""
    from vasa_core.audio import speech_band_energy
    t, e = speech_band_energy(samples16, 16000)
    n = len(real_gap)
    energy = np.interp(np.arange(n) / FPS, t, e) if len(t) else np.full(n, np.nan)
    return lagged_corr(real_gap, energy)


def av_offset(lags: dict[int, float], reference: int, margin: float = 0.05) -> int:
    """A file's audio/video offset in frames (+ = its sound comes late): the best energy lag minus the usual
    one (`reference`), where that is 2 frames or more and its r beats the usual lag's by `margin`; else 0."""
    best = best_lag(lags)
    if best is None or lags.get(reference) is None or not np.isfinite(lags[reference]):
        return 0
    return best - reference if abs(best - reference) >= 2 and lags[best] - lags[reference] >= margin else 0


def add_file_offsets(records: list[dict]) -> int:
    """Set each record's "file_offset" and every score's "r_sync" (`av_offset` against the median best energy
    lag of these records). Returns that median (frames)."""
    bests = [best_lag(r["energy_lags"]) for r in records]
    bests = [b for b in bests if b is not None]
    reference = int(np.median(bests)) if bests else 0
    for rec in records:
        rec["file_offset"] = off = av_offset(rec["energy_lags"], reference)
        for entry in rec["models"].values():
            for m in entry.values():
                v = m["lags"].get(off)
                m["r_sync"] = float("nan") if v is None else float(v)
    return reference


# ------------------------------------------------------------------------------------------------ running
def group_of(name: str) -> str:
    if "GRID" in name or "vcd" in name:
        return "GRID (studio)"
    if "PC-AVS" in name:
        return "VoxCeleb2 (in the wild)"
    return "other real"


def speaker_of(name: str) -> str:
    """A person key for leave-speaker-out splits (file names carry no speaker ids: best effort)."""
    stem = Path(name).stem
    same = {"rizkiarm__LipNet__id2_vcd_swwp2s": "grid_pwij3p",   # the same GRID speaker (README)
            "Hangz-nju-cuhk__Talking-Face_PC-AVS__Pose_Source_517600055": "vox_00002",
            "Hangz-nju-cuhk__Talking-Face_PC-AVS__Pose_Source_741400163": "vox_741400104",
            # the same 15-s clip under two names (every score of the two is identical)
            "SkyworkAI__SkyReels-A1__assets_driving_video_6": "liveportrait__d10"}
    if stem in same:
        return same[stem]
    if "GRID_" in stem:
        return "grid_" + stem.split("GRID_")[1]
    if "PC-AVS" in stem:
        return "vox_" + stem.split("_")[-1]
    return stem


def list_videos(dirs: list[str]) -> list[Path]:
    files = []
    for d in dirs:
        files += sorted(p for p in Path(d).iterdir() if p.suffix.lower() in VIDEO_EXT)
    return files


def models_for(names: list[str], weights: str | None = None) -> dict:
    """Pipelines (256 px) and the pocketsphinx mouth, by name (learned, whisper, acoustic, pocketsphinx);
    `weights` replaces the learned or the Whisper model's (whichever is named)."""
    from safety.publish import build_pipeline
    out = {}
    for name in names:
        if name == "learned":
            pipe = build_pipeline(size=256, device="cpu", lipsync="learned")
            if weights:
                from vasa_core.lipsync.model import LearnedMouth
                pipe.mouth = LearnedMouth.load(weights)
            out[name] = pipe
        elif name == "whisper":
            pipe = build_pipeline(size=256, device="cpu", lipsync="whisper")
            if weights:
                from vasa_core.lipsync.whisper_mouth import WhisperMouth
                pipe.mouth = WhisperMouth.load(weights)
            out[name] = pipe
        elif name == "acoustic":
            out[name] = build_pipeline(size=256, device="cpu", lipsync="acoustic")
        elif name == "pocketsphinx":
            from .evaluate import SphinxMouth
            out[name] = SphinxMouth()
        else:
            raise SystemExit(f"unknown model {name}")
    return out


def cached_track(path: Path, n: int, cache: str | None) -> tuple[MouthTrack, np.ndarray | None]:
    """`track_video`, remembered in `cache` (a folder outside the repository) keyed by file name and size."""
    if not cache:
        return track_video(path, n)
    f = Path(cache) / f"{path.stem}_{path.stat().st_size}_{n}.npz"
    if f.exists():
        z = np.load(f)
        if "gap_mirrored" in z:             # caches written before the mirrored track are tracked again
            return MouthTrack(z["gap"], z["width"], z["gap_mirrored"]), z["first"]
    track, first = track_video(path, n)
    if first is not None:
        f.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(f, gap=track.gap, width=track.width, gap_mirrored=track.gap_mirrored, first=first)
    return track, first


def evaluate_clip(path: Path, models: dict, render: bool = True, log=print, cache: str | None = None) -> dict | None:
    """All metrics for one video (None when it has no speech or no trackable face)."""
    from vasa_core.audio import Audio, load_audio, resample_samples
    from vasa_core.errors import InputError
    from vasa_core.face import build_rig
    from vasa_core.motion import MotionControls, MotionSequence, with_mouth
    from vasa_core.pipeline import OUTPUT_SAMPLE_RATE
    from vasa_core.portrait import analyze_portrait
    from vasa_core.render import Renderer
    try:
        audio = load_audio(path, sample_rate=OUTPUT_SAMPLE_RATE)
    except InputError as exc:
        log(f"{path.name}: no usable audio ({exc})")
        return None
    n = max(1, int(round(audio.duration * FPS)))
    x16 = resample_samples(audio.samples, OUTPUT_SAMPLE_RATE, 16000)
    speech, silence = speech_masks(x16, n)
    if speech.sum() < FPS:
        log(f"{path.name}: less than 1 s of speech, skipped")
        return None
    real, first = cached_track(path, n, cache)
    if real.valid.mean() < 0.5 or first is None:
        log(f"{path.name}: face tracked in only {real.valid.mean():.0%} of frames, skipped")
        return None
    rec = {"clip": path.name, "group": group_of(path.name), "speaker": speaker_of(path.name),
           "seconds": round(audio.duration, 2), "speech_s": round(speech.sum() / FPS, 2),
           "tracker_agreement": tracker_agreement(real),
           "energy_lags": {k: (round(v, 4) if np.isfinite(v) else None)
                           for k, v in energy_lags(real.gap, x16).items()},
           "real_gap_range": float(np.diff(np.nanpercentile(real.gap[speech], [5, 95]))[0]),
           "models": {}, "series": {"real_gap": _series(real.gap), "speech": speech.astype(int).tolist(),
                                    "silence": silence.astype(int).tolist()}}
    portrait = rig = renderer = None
    try:
        portrait = analyze_portrait(first, 256)
        rig = build_rig(portrait)
        renderer = Renderer(portrait, "cpu") if render else None
    except InputError as exc:
        log(f"{path.name}: first frame refused as a portrait ({exc}); predicted/rendered scores skipped")
        rec["portrait_error"] = str(exc)
    learned_motion = None
    for name, model in models.items():
        if name == "pocketsphinx":
            if learned_motion is None:
                continue
            mouth = model.predict(audio.samples, audio.sample_rate, FPS, len(learned_motion))
            rows = with_mouth(learned_motion.values, mouth, MotionControls())
            motion = MotionSequence(rows.astype(np.float32), FPS)
        else:
            motion = model.motion(Audio(audio.samples, audio.sample_rate))
            if name == "learned":
                learned_motion = motion
        entry = {}
        if rig is not None:
            ours = rig_track(rig, motion)
            entry["predicted"] = clip_metrics(real, ours, speech, silence)
            rec["series"][f"{name}/predicted"] = _series(ours.gap)
        if renderer is not None:
            try:
                ours = track_frames(renderer.render(motion.values[i]) for i in range(len(motion)))
            except Exception as exc:      # a renderer failure must not cost the other clips' numbers
                log(f"{path.name}: rendering failed for {name} ({type(exc).__name__}: {exc})")
            else:
                entry["rendered"] = clip_metrics(real, ours, speech, silence)
                rec["series"][f"{name}/rendered"] = _series(ours.gap)
        rec["models"][name] = entry
    return rec


def _series(x: np.ndarray) -> list:
    return [None if not np.isfinite(v) else round(float(v), 4) for v in x]


def summarise(records: list[dict]) -> dict:
    """Mean over clips (each clip counts once) per model x (predicted|rendered) x group ('all' included)."""
    out = {}
    keys = ("r0", "r_sync", "best_lag", "r_best", "closure", "amp", "r_round", "sil_motion")
    for rec in records:
        for name, entry in rec["models"].items():
            for kind, m in entry.items():
                for g in ("all", rec["group"]):
                    out.setdefault(name, {}).setdefault(kind, {}).setdefault(g, []).append(m)
    res = {}
    for name, kinds in out.items():
        for kind, groups in kinds.items():
            for g, ms in groups.items():
                row = {"clips": len(ms)}
                for k in keys:
                    v = np.array([m[k] for m in ms], float)
                    row[k] = float(np.nanmean(v)) if np.any(np.isfinite(v)) else float("nan")
                hit, tot = sum(m["closure_hit"] for m in ms), sum(m["closure_n"] for m in ms)
                row["closure_pooled"] = hit / tot if tot else float("nan")
                row["lag_sd"] = float(np.nanstd([m["best_lag"] for m in ms]))
                res.setdefault(name, {}).setdefault(kind, {})[g] = row
    return res


def tracker_summary(records: list[dict]) -> dict:
    """Per source group ('all' included): clips, mean tracker agreement and mean ceiling (sqrt of each clip's
    agreement, see `tracker_agreement`)."""
    groups = {}
    for rec in records:
        a = rec.get("tracker_agreement", float("nan"))
        if a is not None and np.isfinite(a):
            for g in ("all", rec["group"]):
                groups.setdefault(g, []).append(a)
    return {g: {"clips": len(v), "agreement": float(np.mean(v)),
                "ceiling": float(np.mean(np.sqrt(np.clip(v, 0, 1))))} for g, v in groups.items()}


def fmt(v, nd=2):
    return "—" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{nd}f}"


def tables(records: list[dict], summary: dict) -> str:
    lines = ["Tracker agreement (the real lip gap tracked on the frames and on them mirrored; ceiling = mean "
             "sqrt(agreement), about the best r any mouth could score against this tracker):", "",
             "| clips set | clips | agreement | ceiling |", "|---|---|---|---|"]
    lines += [f"| {g} | {t['clips']} | {fmt(t['agreement'])} | {fmt(t['ceiling'])} |"
              for g, t in tracker_summary(records).items()]
    lines += ["", "Overall (mean over clips):", "",
             "| model | scored on | clips set | clips | r lag 0 | r at the file's A/V offset | best lag (frames) | r best | "
             "closure agreement | amplitude ratio | rounding r | motion in silence |", "|" + "---|" * 12]
    for name, kinds in summary.items():
        for kind, groups in kinds.items():
            for g, m in groups.items():
                lines.append(f"| {name} | {kind} | {g} | {m['clips']} | {fmt(m['r0'])} | {fmt(m['r_sync'])} | "
                             f"{fmt(m['best_lag'], 1)} (sd {fmt(m['lag_sd'], 1)}) | {fmt(m['r_best'])} | "
                             f"{fmt(m['closure_pooled'])} | "
                             f"{fmt(m['amp'])} | {fmt(m['r_round'])} | {fmt(m['sil_motion'], 3)} |")
    names = list(summary)
    lines += ["", "Per clip: r at lag 0 / best lag, predicted | rendered; the file's A/V offset (frames, + = its "
              "sound late; no mouth model); the tracker's agreement with itself on the mirrored frames:", "",
              "| clip | s | A/V offset | tracker | " + " | ".join(names) + " |", "|" + "---|" * (4 + len(names))]
    for rec in records:
        cells = []
        for name in names:
            e = rec["models"].get(name, {})
            parts = []
            for kind in ("predicted", "rendered"):
                m = e.get(kind)
                parts.append(f"{fmt(m['r0'])} / {m['best_lag']:+d}" if m else "—")
            cells.append(" \\| ".join(parts))
        lines.append(f"| {rec['clip'].replace('Hangz-nju-cuhk__Talking-Face_', '').replace('rizkiarm__LipNet__', '')} "
                     f"| {rec['seconds']:.0f} | {rec.get('file_offset', 0):+d} | "
                     f"{fmt(rec.get('tracker_agreement'))} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(dirs: list[str], model_names: list[str], render: bool = True, out_json: str | None = None,
        log=print, cache: str | None = None, weights: str | None = None,
        heldout: str | None = None) -> tuple[list[dict], dict]:
    """Evaluate every clip; `heldout`: a JSON file {clip name: Whisper readout} (`whisper_train --folds-out`)
    whose readout replaces the Whisper mouth's for that clip (clips it does not name are skipped), so no clip is
    scored by a readout fitted on its own speaker."""
    models = models_for(model_names, weights)
    by_clip = json.loads(Path(heldout).read_text()) if heldout else None
    records = []
    for path in list_videos(dirs):
        if by_clip is not None:
            if path.name not in by_clip:
                continue
            if "whisper" in models:
                from vasa_core.lipsync.whisper_mouth import WhisperMouth
                models["whisper"].mouth = WhisperMouth.load(by_clip[path.name])
        rec = evaluate_clip(path, models, render, log, cache)
        if rec is not None:
            records.append(rec)
            m = rec["models"].get(model_names[0], {}).get("predicted")
            log(f"{path.name}: {rec['seconds']:.1f} s" + (f", {model_names[0]} r0 {fmt(m['r0'])} lag {m['best_lag']:+d}"
                                                          if m else ""))
    add_file_offsets(records)
    summary = summarise(records)
    if out_json:
        Path(out_json).parent.mkdir(parents=True, exist_ok=True)
        Path(out_json).write_text(json.dumps({"records": records, "summary": summary,
                                              "tracker": tracker_summary(records)}, indent=1))
    return records, summary


def leave_speaker_out_gain(records: list[dict], model: str = "learned", kind: str = "rendered") -> dict:
    """The jaw gain that makes our opening range match the real one, fitted leaving each speaker out: for
    every speaker the median real/ours range ratio over the OTHER speakers' clips, applied to that speaker's
    clips (the amplitude ratio then scales with the gain, to first order). Returns the gain fitted on all
    clips, and the held-out amplitude ratios before and after."""
    amps = [(r["speaker"], r["models"][model][kind]["amp"]) for r in records
            if kind in r["models"].get(model, {}) and np.isfinite(r["models"][model][kind]["amp"])]
    if not amps:
        return {}
    before, after = [], []
    for spk, amp in amps:
        others = [1.0 / a for s, a in amps if s != spk and a > 0]
        g = float(np.median(others)) if others else 1.0
        before.append(amp)
        after.append(amp * g)
    gain = float(np.median([1.0 / a for _, a in amps if a > 0]))
    return {"gain_all": gain, "speakers": len({s for s, _ in amps}), "clips": len(amps),
            "amp_before_median": float(np.median(before)), "amp_heldout_after_median": float(np.median(after)),
            "amp_heldout_after_iqr": [float(v) for v in np.percentile(after, [25, 75])]}
