"""Motion statistics, comparable with the reference table of real talking-head video in DESIGN.md.

    python -m vasa_core.stats AUDIO [AUDIO ...] [--seeds 3]
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from .motion import MotionSequence
from .portrait import rotation_matrix


def motion_stats(m: MotionSequence) -> dict:
    """Delta-P (mean frame-to-frame head rotation, degrees/frame, as the angle of the relative rotation and
    as the per-axis mean), pose std per axis (degrees), blinks per minute, mouth opening range."""
    rot = np.stack([m["yaw"], m["pitch"], m["roll"]], 1).astype(np.float64)
    mats = [rotation_matrix(*r) for r in rot]
    angles = [np.degrees(np.arccos(np.clip((np.trace(a.T @ b) - 1) / 2, -1, 1))) for a, b in zip(mats, mats[1:])]
    closed = (m["blink_l"] > 0.5).astype(int)
    minutes = len(m) / m.fps / 60
    return {"delta_p_deg_per_frame": round(float(np.mean(angles)), 3),
            "delta_p_per_axis_mean": round(float(np.abs(np.diff(rot, axis=0)).mean()), 3),
            "pose_std_yaw_pitch_roll": [round(float(v), 2) for v in rot.std(0)],
            "blinks_per_minute": round(float((np.diff(closed) == 1).sum() / minutes), 1),
            "jaw_open_p5_p95": [round(float(v), 3) for v in np.percentile(m["jaw_open"], [5, 95])]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vasa_core.stats")
    parser.add_argument("audio", nargs="+")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    from .pipeline import TalkingFacePipeline
    pipe = TalkingFacePipeline(size=256, device="cpu")
    rows = []
    for path in args.audio:
        audio = pipe.load_audio(path)
        for seed in range(args.seeds):
            rows.append({"audio": path, "seed": seed, **motion_stats(pipe.motion(audio, seed=seed))})
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
