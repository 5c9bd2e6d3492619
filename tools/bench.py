"""Benchmark: time every stage and the whole pipeline, at 512x512 and 256x256, on a fixed clip.

    python -m vasa_core bench [--json] [--seconds 10] [--long-seconds 600] [--cold-runs 3]

Streaming (512x512, 40 ms audio chunks): `stream_first_frame_ms` is the median over 5 real-time runs of
the time from the first audio chunk's arrival to the first frame out; `stream_lag_ms` the median delay
between a moment of audio being spoken and its frame coming out; `stream_fps` the frame rate when the
audio is fed as fast as possible (frames are rendered and watermarked, not encoded).

The clip is the shipped default speech, looped to `--seconds`; the portrait is scikit-image's astronaut.
Per-frame stage times are medians over the clip's frames; end to end is wall time of `pipeline.write`
(analysis excluded: it is cached per portrait) including H.264 + AAC encoding. Peak memory is the
process's maximum resident set size. Cold start (`cold_generate_s`, `cold_refusal_s`): wall time of fresh
`python -m vasa_core generate` processes on the same clip and portrait as files (median of `--cold-runs`), and
of one given a missing audio file. Everything runs in a throw-away data directory (audit log, keys).
"""
from __future__ import annotations

import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from vasa_core import ASSETS



def _clip(seconds: float):
    from vasa_core.audio import Audio
    from vasa_core.pipeline import OUTPUT_SAMPLE_RATE
    from vasa_core.audio import load_audio
    base = load_audio(ASSETS / "default_speech.ogg", sample_rate=OUTPUT_SAMPLE_RATE)
    n = int(seconds * OUTPUT_SAMPLE_RATE)
    reps = int(np.ceil(n / len(base.samples)))
    return Audio(np.tile(base.samples, reps)[:n].copy(), OUTPUT_SAMPLE_RATE)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_size(size: int, audio, portrait_src) -> dict:
    from safety.publish import build_pipeline
    pipe = build_pipeline(size=size, device="auto")
    t = time.perf_counter()
    portrait, renderer = pipe.prepare(portrait_src)
    analysis_ms = (time.perf_counter() - t) * 1000
    pipe.motion(type(audio)(audio.samples[: audio.sample_rate], audio.sample_rate))   # warm up (first network call)
    t = time.perf_counter()
    motion = pipe.motion(audio)
    motion_ms = (time.perf_counter() - t) * 1000 / len(motion)
    render_ms = []
    for row in motion.values:
        t = time.perf_counter()
        renderer.render(row)
        render_ms.append((time.perf_counter() - t) * 1000)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        pipe.write(portrait_src, audio, Path(tmp) / "bench.mp4")
        wall = time.perf_counter() - t
    n = len(motion)
    return {"size": size, "frames": n, "analysis_ms": round(analysis_ms, 1),
            "motion_ms_per_frame": round(motion_ms, 3), "render_ms_median": round(statistics.median(render_ms), 2),
            "render_ms_p90": round(float(np.percentile(render_ms, 90)), 2),
            "e2e_fps": round(n / wall, 1), "rtf": round(wall / audio.duration, 3), "device": renderer.device}


def bench_stream(audio, portrait_src, runs: int = 5) -> dict:
    from safety.publish import build_pipeline
    from vasa_core.stream import paced_chunks, timing
    pipe = build_pipeline(size=512, device="auto")
    pipe.prepare(portrait_src)
    first, lag = [], []
    short = audio.samples[: int(3.0 * audio.sample_rate)]
    for _ in range(runs):
        stream = pipe.stream(portrait_src, paced_chunks(short, audio.sample_rate, 0.04, realtime=True),
                             audio.sample_rate)
        for _ in stream:
            pass
        t = timing(stream, 0.04)
        first.append(t["first_frame_ms"])
        lag.append(t["lag_median_ms"])
    stream = pipe.stream(portrait_src, paced_chunks(audio.samples, audio.sample_rate, 0.04, realtime=False),
                         audio.sample_rate)
    for _ in stream:
        pass
    fast = timing(stream, 0.04)
    return {"stream_first_frame_ms": statistics.median(first), "stream_lag_ms": statistics.median(lag),
            "stream_fps": fast["fps"], "stream_first_frame_ms_runs": first}


def bench_cold(audio, portrait_src, runs: int = 3) -> dict:
    """Wall time of fresh `python -m vasa_core generate` processes on the clip (written as a WAV file, the
    portrait as a PNG), median of `runs`; and of one refusing a missing audio file. Each process starts cold
    (interpreter, imports, models), as a user's command does."""
    import os
    import subprocess
    import sys

    import soundfile as sf
    from PIL import Image
    with tempfile.TemporaryDirectory() as tmp:
        image, wav, out = Path(tmp) / "portrait.png", Path(tmp) / "speech.wav", Path(tmp) / "cold.mp4"
        Image.fromarray(portrait_src).save(image)
        sf.write(wav, audio.samples, audio.sample_rate, subtype="PCM_16")

        def wall(audio_path: Path) -> tuple[float, int]:
            t = time.perf_counter()
            rc = subprocess.run([sys.executable, "-m", "vasa_core", "generate", "--image", str(image), "--audio",
                                 str(audio_path), "--out", str(out)], capture_output=True, env=os.environ.copy(),
                                cwd=Path(__file__).resolve().parent.parent).returncode
            return time.perf_counter() - t, rc
        walls = []
        for _ in range(runs):
            dt, rc = wall(wav)
            if rc != 0:
                raise RuntimeError("the cold generate subprocess failed")
            walls.append(round(dt, 2))
        refusals = []
        for _ in range(runs):
            dt, rc = wall(Path(tmp) / "missing.wav")
            if rc != 2:
                raise RuntimeError("the missing-audio subprocess did not refuse with status 2")
            refusals.append(round(dt, 2))
    return {"cold_generate_s": statistics.median(walls), "cold_generate_s_runs": walls,
            "cold_refusal_s": statistics.median(refusals), "cold_refusal_s_runs": refusals}


def run_bench(seconds: float = 10.0, as_json: bool = False, long_seconds: float = 0.0, cold_runs: int = 3) -> int:
    """Run every measurement in a throw-away data directory (its own audit log, watermark key and signing
    certificate), so the bench never writes into the user's audit log."""
    import os
    saved = os.environ.get("VASA_DATA_DIR")
    with tempfile.TemporaryDirectory(prefix="vasa-bench-") as data:
        os.environ["VASA_DATA_DIR"] = data
        try:
            return _run_bench(seconds, as_json, long_seconds, cold_runs)
        finally:
            if saved is None:
                os.environ.pop("VASA_DATA_DIR", None)
            else:
                os.environ["VASA_DATA_DIR"] = saved


def _run_bench(seconds: float, as_json: bool, long_seconds: float, cold_runs: int) -> int:
    import skimage.data
    portrait_src = skimage.data.astronaut()
    audio = _clip(seconds)
    cold = bench_cold(audio, portrait_src, cold_runs) if cold_runs else {}
    res = {f"s{size}": bench_size(size, audio, portrait_src) for size in (512, 256)}
    out = {"clip_seconds": seconds, "e2e_fps_512": res["s512"]["e2e_fps"], "e2e_fps_256": res["s256"]["e2e_fps"],
           "rtf_512": res["s512"]["rtf"], **bench_stream(audio, portrait_src),
           "peak_rss_mb": round(_peak_rss_mb(), 1), **cold, "stages": res}
    if long_seconds:
        from safety.publish import build_pipeline
        import soundfile as sf
        before = _peak_rss_mb()
        with tempfile.TemporaryDirectory() as tmp:
            # the long clip is a file on disk, written piece by piece, as a user would pass it
            path = Path(tmp) / "long.wav"
            with sf.SoundFile(path, "w", samplerate=audio.sample_rate, channels=1, subtype="PCM_16") as f:
                for _ in range(int(np.ceil(long_seconds / seconds))):
                    f.write(audio.samples[: int(min(seconds, long_seconds) * audio.sample_rate)])
            build_pipeline(size=512).write(portrait_src, path, Path(tmp) / "long.mp4")
        out[f"peak_rss_mb_{int(long_seconds)}s"] = round(_peak_rss_mb(), 1)
        out["peak_rss_mb_before_long"] = round(before, 1)
    if as_json:
        print(json.dumps(out, indent=2))
    else:
        for key in ("s512", "s256"):
            r = res[key]
            print(f"{r['size']}x{r['size']} ({r['device']}): analysis {r['analysis_ms']} ms once; motion "
                  f"{r['motion_ms_per_frame']} ms/frame; render median {r['render_ms_median']} ms "
                  f"(p90 {r['render_ms_p90']}); end to end {r['e2e_fps']} fps = {1 / r['rtf']:.2f}x real time")
        print(f"streaming 512x512, 40 ms chunks: first frame {out['stream_first_frame_ms']} ms after the first "
              f"chunk (median of 5 real-time runs), frames {out['stream_lag_ms']} ms behind the voice; "
              f"{out['stream_fps']} fps when fed as fast as possible")
        if cold:
            print(f"cold process: generate of the {seconds:g} s clip {cold['cold_generate_s']} s wall "
                  f"(median of {cold_runs}: {cold['cold_generate_s_runs']}); a missing audio file refused in "
                  f"{cold['cold_refusal_s']} s")
        print(f"peak RSS {out['peak_rss_mb']} MB")
        for k, v in out.items():
            if k.startswith("peak_rss_mb_"):
                print(f"{k}: {v}")
    return 0
