"""Command line: python -m vasa_core {generate, stream, render, sheet, bench} ...

  generate --image IMG --audio AUDIO --out OUT.mp4 [--size 512] [--fps 25] [--seed N] [--motion-out M.json]
           [--motion-model default|hand-tuned|W.npz]
           [--gaze X,Y] [--distance D] [--emotion NAME[:W]] [--motion-scale S] [--lipsync default|learned|acoustic]
  stream   --image IMG --audio AUDIO --out OUT.mp4 [--realtime] [--chunk-ms 40] [controls as for generate]
           (feeds the audio in chunks, at wall-clock speed with --realtime, as a live source would)
  render   --image IMG --audio AUDIO --motion MOTION.json --out OUT.mp4 [--size 512] [--fps 25]
  sheet    VIDEO OUT.png [--cols 4] [--rows 3]
  bench    [--json] [--seconds 10] [--long-seconds S] [--cold-runs 3]
  batch    JOBS.jsonl --out DIR [--ray auto|ADDRESS|local]   (many jobs, each through the safety gate)
"""
from __future__ import annotations

import argparse
import sys
import time

from .errors import InputError


def _pair(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("expected two numbers like 5,-3") from None
    return x, y


def _emotion(text: str) -> tuple[str, float]:
    name, _, weight = text.partition(":")
    try:
        return name, float(weight) if weight else 1.0
    except ValueError:
        raise argparse.ArgumentTypeError("expected NAME or NAME:WEIGHT, e.g. happy:0.6") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vasa_core", description="One portrait + one audio clip -> "
                                     "a talking-head video.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("batch", help="JOBS.jsonl --out DIR [--ray ADDRESS]: many jobs (see serving/batch.py)")
    for name in ("generate", "stream", "render"):
        p = sub.add_parser(name)
        p.add_argument("--image", required=True, help="portrait: JPEG, PNG or WebP")
        p.add_argument("--audio", required=True, help="speech or singing: wav, mp3, m4a/aac, ogg or flac")
        p.add_argument("--out", required=True, help="output MP4")
        p.add_argument("--size", type=int, default=512, help="output side in pixels (256-1024)")
        p.add_argument("--fps", type=float, default=25.0)
        p.add_argument("--device", default="auto", help="auto | cpu | cuda")
        p.add_argument("--label", action="store_true", help='put a visible "AI-generated" label in a corner')
        if name == "stream":
            p.add_argument("--realtime", action="store_true",
                           help="feed the audio at wall-clock speed, like a microphone")
            p.add_argument("--chunk-ms", type=float, default=40.0, help="audio chunk length in milliseconds")
        if name in ("generate", "stream"):
            p.add_argument("--seed", type=int, default=0,
                           help="picks one of many motions for this audio (motion also follows the audio itself)")
            p.add_argument("--gaze", type=_pair, default=(0.0, 0.0), help="main gaze direction X,Y in degrees")
            p.add_argument("--distance", type=float, default=1.0, help="head distance, 0.5-2 (1 = as framed; motion.CONTROL_RANGES)")
            p.add_argument("--emotion", type=_emotion, default=("neutral", 1.0),
                           help="neutral, happy, sad, angry, surprised, optionally :WEIGHT (0-1)")
            p.add_argument("--motion-scale", type=float, default=1.0, help="head motion 0 (still) .. 2")
            p.add_argument("--motion-model", default="default",
                           help="default (learned from real talking video) | hand-tuned | weights from "
                                "python -m tools.train_motion")
        if name == "generate":
            p.add_argument("--motion-out", help="also write the generated motion as JSON")
            p.add_argument("--lipsync", default="default", help="default (Whisper features; live streams use learned) | learned | acoustic")
        if name == "render":
            p.add_argument("--motion", required=True, help="motion JSON (see vasa_core.motion)")
    s = sub.add_parser("sheet", help="contact sheet of a video")
    s.add_argument("video")
    s.add_argument("out")
    s.add_argument("--cols", type=int, default=4)
    s.add_argument("--rows", type=int, default=3)
    b = sub.add_parser("bench", help="time every stage and the whole pipeline")
    b.add_argument("--json", action="store_true")
    b.add_argument("--seconds", type=float, default=10.0)
    b.add_argument("--long-seconds", type=float, default=0.0,
                   help="also measure peak memory on a clip this long (e.g. 600)")
    b.add_argument("--cold-runs", type=int, default=3,
                   help="fresh `generate` processes to time (median), and as many missing-file refusals; 0: none")
    return parser


def _stream(pipe, audio, args) -> int:
    """Simulate a live source: feed the file in chunks, write the frames as they come out, report timing."""
    from .stream import paced_chunks, timing
    emotion, weight = args.emotion
    chunk_s = args.chunk_ms / 1000.0
    if not 0.005 <= chunk_s <= 1.0:
        raise InputError("--chunk-ms must be between 5 and 1000.")
    chunks = paced_chunks(audio.samples, audio.sample_rate, chunk_s, realtime=args.realtime)
    stream = pipe.stream(args.image, chunks, audio.sample_rate, label=args.label, seed=args.seed, gaze=args.gaze,
                         distance=args.distance, emotion=emotion, emotion_weight=weight,
                         motion_scale=args.motion_scale, motion_model=args.motion_model)
    out = pipe.write_stream(stream, audio, args.out)
    t = timing(stream, chunk_s)
    mode = "in real time" if args.realtime else "as fast as possible"
    lag = (f"; frames came out {t['lag_median_ms']} ms (median; p95 {t['lag_p95_ms']} ms) after their audio "
           f"was spoken" if args.realtime else "")
    print(f"streamed {args.out}: {t['frames']} frames from {audio.duration:.2f} s of audio fed {mode} in "
          f"{args.chunk_ms:g} ms chunks; first frame {t['first_frame_ms']} ms after the first chunk; "
          f"{t['fps']} fps{lag}; watermark {out.payload}, C2PA manifest signed, audit record {out.request_id}")
    return 0


def check_inputs(image: str, audio: str) -> None:
    """Refuse a missing or undecodable portrait or audio file from its header (milliseconds), before any model
    loads. Raises InputError (ImageError / AudioError) with the validator's sentence."""
    from vasa_core.validate import ValidationError, check_audio_header, check_image_header

    from .errors import AudioError, ImageError
    try:
        check_image_header(image)
    except ValidationError as exc:
        raise ImageError(str(exc)) from None
    try:
        check_audio_header(audio)
    except ValidationError as exc:
        raise AudioError(str(exc)) from None


def cli(argv: list[str] | None = None) -> int:
    """`python -m vasa_core ...` / `vasa ...`; returns the exit status (2: bad input, with its sentence)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["batch"]:                       # bulk jobs, each through the safety gate (serving.batch)
        from serving.batch import cli as batch_cli
        return batch_cli(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        if args.command == "sheet":
            from .video import contact_sheet
            print(contact_sheet(args.video, args.out, cols=args.cols, rows=args.rows))
            return 0
        if args.command == "bench":
            from tools.bench import run_bench
            return run_bench(seconds=args.seconds, as_json=args.json, long_seconds=args.long_seconds,
                             cold_runs=args.cold_runs)
        t0 = time.perf_counter()
        check_inputs(args.image, args.audio)        # within a second: before torch, mediapipe or the portrait
        from .motion import MotionSequence
        from safety.publish import build_pipeline
        # `stream` is live (its mouth is the learned model, pipeline.live_mouth) and `render` reads its motion from
        # a file: neither runs the default Whisper mouth, so neither loads it
        lipsync = getattr(args, "lipsync", "learned" if args.command in ("stream", "render") else "default")
        pipe = build_pipeline(size=args.size, fps=args.fps, device=args.device, lipsync=lipsync)
        if args.command == "stream":
            return _stream(pipe, pipe.load_audio(args.audio), args)
        if args.command == "generate":             # the audio file is read a second at a time, never whole
            emotion, weight = args.emotion
            out = pipe.write(args.image, args.audio, args.out, label=args.label, seed=args.seed, gaze=args.gaze,
                             distance=args.distance, emotion=emotion, emotion_weight=weight,
                             motion_scale=args.motion_scale, motion_model=args.motion_model)
            if args.motion_out:
                out.motion.save(args.motion_out)
        else:
            from .audio import scan_audio
            duration = scan_audio(args.audio).duration
            motion = MotionSequence.load(args.motion, num_frames=int(round(duration * args.fps)), fps=args.fps)
            out = pipe.write(args.image, args.audio, args.out, motion=motion, label=args.label)
        seconds = len(out.motion) / args.fps
        dt = time.perf_counter() - t0
        print(f"wrote {args.out}: {len(out.motion)} frames, {seconds:.2f} s of video in {dt:.1f} s "
              f"({seconds / dt:.2f}x real time, mouth model: {pipe.mouth.name}); watermark {out.payload}, "
              f"C2PA manifest signed, audit record {out.request_id}")
        return 0
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


main = cli   # the name older callers use


if __name__ == "__main__":
    sys.exit(cli())
