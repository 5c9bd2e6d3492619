"""Contact sheets of every control's extremes, for looking at (not a test).

    .venv/bin/python -m vasa_core.review --image IMG --audio AUDIO --out sheet.png [--thumb 192]

One row per setting (default, gaze left/right/up/down, distance 0.7/1.4, each emotion, motion scale 0/2),
six frames across the clip per row; the same seed everywhere, so rows differ only by their control.
"""
from __future__ import annotations

import argparse

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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--image", required=True)
    parser.add_argument("--audio", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--thumb", type=int, default=192, help="side of each frame in the sheet (pixels)")
    parser.add_argument("--cols", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--face", action="store_true", help="crop each frame to the face (to see gaze and lips)")
    args = parser.parse_args()
    from .pipeline import TalkingFacePipeline
    pipe = TalkingFacePipeline(size=512 if args.face else 256)
    audio = pipe.load_audio(args.audio)
    portrait, _ = pipe.prepare(args.image)
    if args.face:                 # a square around the face's landmarks, from the brows to below the chin
        lm = portrait.landmarks[:, :2]
        (x0, y0), (x1, y1) = lm.min(0), lm.max(0)
        half = 0.6 * max(x1 - x0, y1 - y0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        box = [int(max(0, v)) for v in (cy - half, cy + half, cx - half, cx + half)]
    else:
        box = [0, pipe.size, 0, pipe.size]
    rows = []
    for name, controls in SETTINGS:
        motion = pipe.motion(audio, seed=args.seed, **controls)
        picks = set(np.linspace(0, len(motion) - 1, args.cols + 2).astype(int)[1:-1].tolist())
        frames = [cv2.resize(f[box[0]:box[1], box[2]:box[3]], (args.thumb, args.thumb), interpolation=cv2.INTER_AREA)
                  for i, f in enumerate(pipe.frames(args.image, motion)) if i in picks]
        row = np.concatenate(frames, 1)
        cv2.putText(row, name, (6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 0), 2, cv2.LINE_AA)
        rows.append(row)
    cv2.imwrite(args.out, cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR))
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
