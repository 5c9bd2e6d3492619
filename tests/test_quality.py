"""What a viewer sees on ordinary uploads, measured on the rendered pixels (issue: believable output).

Border: no invented lines at the edges of tight crops. Detail: the face keeps the source's sharpness
(variance of the Laplacian of the face region at one scale; `tools.review.face_detail`).
"""
from __future__ import annotations

import numpy as np
import pytest

from vasa_core.portrait import load_image
from tools.review import border_excess, edge_smear, encode_roundtrip, face_detail


@pytest.fixture(scope="module")
def pipe512():
    from safety.publish import build_pipeline
    return build_pipeline(size=512, device="cpu")


@pytest.fixture(scope="module")
def speech_motion(pipe512, default_audio):
    return pipe512.motion(pipe512.load_audio(default_audio), seed=0)


def _frames(pipe, image, motion, picks=(0, 10, 25, 40, 60, 80)):
    _, renderer = pipe.prepare(image)
    return [renderer.render(motion.values[i]) for i in picks if i < len(motion)]


def _tight(hopper_path):
    im = load_image(hopper_path)
    h, w = im.shape[:2]
    y, x, s = int(h * 0.06), int(w * 0.19), int(w * 0.62)
    return np.ascontiguousarray(im[y:y + s, x:x + s])


def test_edge_smear_detects_replication(astronaut):
    """The border measure itself: replicated edge rows (what the old framing made) score high, a photo low."""
    padded = np.pad(astronaut, ((60, 0), (60, 0), (0, 0)), mode="edge")
    assert border_excess(astronaut, padded) > 0.3
    assert max(edge_smear(astronaut).values()) < 0.2


def test_no_invented_border_on_tight_crops(pipe512, speech_motion, hopper_path, astronaut):
    import cv2
    for src in (_tight(hopper_path), np.ascontiguousarray(astronaut[20:300, 60:460])):
        portrait, _ = pipe512.prepare(src)
        x0, y0, x1, y1 = portrait.crop_box
        reference = cv2.resize(src[y0:y1, x0:x1], (512, 512), interpolation=cv2.INTER_AREA)
        for frame in _frames(pipe512, src, speech_motion):
            assert border_excess(reference, frame) < 0.1


@pytest.mark.parametrize("which", ["hopper", "astronaut"])
def test_face_keeps_the_source_detail(pipe512, speech_motion, hopper_path, astronaut, which):
    src = load_image(hopper_path) if which == "hopper" else astronaut
    frames = _frames(pipe512, src, speech_motion, picks=range(40))      # a second and a half of speech
    ratio = np.median([face_detail(f) for f in frames[::6]]) / face_detail(src)
    encoded = encode_roundtrip(frames)
    ratio_h264 = np.median([face_detail(f) for f in encoded[::6]]) / face_detail(src)
    print(which, "detail ratio", round(ratio, 3), "after H.264", round(ratio_h264, 3))
    # measured here: Hopper 0.88-0.94 rendered, 0.80 after H.264; the astronaut (open mouth: rendered from its
    # closed-mouth version, so her lower face is resampled twice) 0.78-0.83, 0.76 after H.264. With bilinear
    # sampling, before this change: Hopper 0.58. The target is 0.9: met by Hopper in memory only.
    # 2026-12-07: the unmoved eye is now the portrait's own eye (Hopper 0.93 rendered, still 0.80 after H.264)
    assert ratio >= (0.85 if which == "hopper" else 0.75)
    assert ratio_h264 >= (0.77 if which == "hopper" else 0.72)   # CRF 16 + tune film (vasa_core.video)
    assert ratio_h264 >= ratio - 0.16


def test_no_double_contour_around_the_head(hopper_renderer, hopper_portrait):
    """Hair, hat and glasses move with the head without ghosting. In the band around the face (1-2x the face
    outline, where the moving rings meet hair and background), after a head turn, tilt and lean:
    - every textured 20-px patch is still a single shifted copy of the portrait (best normalised correlation
      within +-10 px; measured 0.93-0.96 median; a 50% double contour 5 px apart scores 0.88), and
    - the edges are neither doubled nor smeared away (Canny edge share within 20% of the portrait's)."""
    import cv2
    from vasa_core.portrait import FACE_OVAL
    oval = hopper_portrait.landmarks[FACE_OVAL, :2]
    c = oval.mean(0)
    band = np.zeros(hopper_portrait.image.shape[:2], np.uint8)
    cv2.fillPoly(band, [np.round(c + 2.0 * (oval - c)).astype(np.int32)], 1)
    cv2.fillPoly(band, [np.round(c + 1.0 * (oval - c)).astype(np.int32)], 0)
    src = cv2.cvtColor(hopper_portrait.image, cv2.COLOR_RGB2GRAY)

    def single_copy(img, k=20, r=10):
        g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        scores = []
        for y in range(r, g.shape[0] - k - r, k):
            for x in range(r, g.shape[1] - k - r, k):
                patch = g[y:y + k, x:x + k]
                if band[y:y + k, x:x + k].mean() < 0.99 or patch.std() < 8:
                    continue
                window = src[y - r:y + k + r, x - r:x + k + r]
                scores.append(cv2.matchTemplate(window, patch, cv2.TM_CCOEFF_NORMED).max())
        return float(np.median(scores))

    def edges(img):
        return (cv2.Canny(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), 60, 140) > 0)[band > 0].mean()
    e0 = edges(hopper_portrait.image)
    for f in ({"yaw": 12.0, "pitch": 5.0}, {"yaw": -10.0, "roll": 6.0}, {"scale": 1.08, "pitch": -6.0}):
        frame = hopper_renderer.render(f)
        assert single_copy(frame) > 0.91, f
        assert 0.8 < edges(frame) / e0 < 1.2, f
