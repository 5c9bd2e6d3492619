"""`python -m safety measure --real FOLDER`: likeness error rates on folders of photos/videos of several people.
The test builds its folders from package portraits (clips it makes, never research media)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from tests.app_server import ROOT


def _clip(path, rgb, n=6, gain=1.0):
    from tools.evals import watermark as wm   # encode_mp4: test clips
    frames = [np.clip(rgb.astype(np.float32) * gain + 3 * i, 0, 255).astype(np.uint8) for i in range(n)]
    wm.encode_mp4(frames, path, audio=False)


def test_measure_on_folders_of_several_people(tmp_path, astronaut, hopper_path):
    from PIL import Image
    from tools.evals.likeness import measure_folders
    from vasa_core.validate import validate_image
    hopper = validate_image(hopper_path).rgb
    media = tmp_path / "media"
    media.mkdir()
    _clip(media / "astro_a.mp4", astronaut[:, :510])
    _clip(media / "astro_b.mp4", astronaut[16:, 8:500], gain=0.8)          # the same person, another "clip"
    _clip(media / "hopper.mp4", hopper[: hopper.shape[0] // 2 * 2, : hopper.shape[1] // 2 * 2])
    photos = media / "hopper_photos"
    photos.mkdir()
    Image.fromarray(hopper).save(photos / "1.jpg", quality=70)
    Image.fromarray(hopper[:, ::-1]).save(photos / "2.png")
    res = measure_folders([media], same=[["astro_a.mp4", "astro_b.mp4"], ["hopper.mp4", "hopper_photos"]],
                          frames_per_clip=2)
    assert res["sources"] == 4 and res["people"] == 2 and res["faces"] == 8
    assert res["same_clip_pairs"] == 4 and res["across_clip_pairs"] == 4 + 4 and res["impostor_pairs"] == 16
    at = {r["threshold"]: r for r in res["rates"]}
    assert at[0.52]["fmr"] == 0.0 and at[0.60]["fnmr_same_clip"] == 0.0 and at[0.60]["fnmr_across_clips"] == 0.0
    assert res["distances"]["impostor"]["min"] > res["distances"]["across_clips"]["max"]
    # without the identity groups, the two astronaut clips count as different people: their pairs become
    # false matches, which is what the grouping is for
    res2 = measure_folders([media / "hopper_photos", media], frames_per_clip=1)
    assert res2["people"] == res2["sources"] and res2["across_clip_pairs"] == 0
    assert {r["threshold"]: r for r in res2["rates"]}[0.52]["fmr"] > 0


def test_measure_cli_reports_real_next_to_augmented(tmp_path, astronaut):
    media = tmp_path / "m"
    media.mkdir()
    _clip(media / "a.mp4", astronaut[:, :510], n=3)
    out = subprocess.run([sys.executable, "-m", "safety", "measure", "--real", str(media), "--frames", "2",
                          "--real-only", "--json", str(tmp_path / "r.json")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "FNMR augmented" in out.stdout and "FNMR real, same clip" in out.stdout and "| 0.52 | - | - |" in out.stdout
    assert json.loads((tmp_path / "r.json").read_text())["real"]["same_clip_pairs"] == 1
