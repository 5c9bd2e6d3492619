"""Portrait analysis: framing, landmarks, pose, and a specific error for every unusable image."""
from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from vasa_core.errors import (FaceCutOffError, FaceTooSmallError, ImageError, NoFaceError, ProfileFaceError)
from vasa_core.portrait import Face, analyze_portrait, check_face, check_yaw, load_image


def test_analysis_of_real_portraits(hopper_portrait, astronaut_portrait):
    for p in (hopper_portrait, astronaut_portrait):
        assert p.image.shape == (512, 512, 3) and p.image.dtype == np.uint8
        assert p.landmarks.shape == (478, 3) and np.all(np.isfinite(p.landmarks))
        assert (p.landmarks[:, :2] > 0).all() and (p.landmarks[:, :2] < 512).all()
        assert abs(p.yaw) < 15 and abs(p.roll) < 10
        assert 80 < p.face_width < 300                       # framed: the face is 18-60% of the width
        assert np.allclose(p.rotation @ p.rotation.T, np.eye(3), atol=1e-6)
        assert p.person_mask.shape == (512, 512)
        assert p.person_mask[256, 256] > 0.5 and p.person_mask[5, 5] < 0.5 or p.person_mask[5, 505] < 0.5
    assert hopper_portrait.mouth_open < 0.02 < astronaut_portrait.mouth_open    # closed vs smiling with teeth


def test_sizes_and_large_images(astronaut):
    big = cv2.resize(astronaut, (5000, 5000), interpolation=cv2.INTER_LINEAR)   # above 4096: downscaled first
    assert load_image(big).shape == (4096, 4096, 3)
    p = analyze_portrait(astronaut, 256)
    assert p.image.shape == (256, 256, 3)
    with pytest.raises(ValueError):
        analyze_portrait(astronaut, 2048)


def test_no_face():
    rng = np.random.default_rng(0)
    noise = cv2.GaussianBlur(rng.integers(0, 255, (400, 400, 3)).astype(np.uint8), (0, 0), 3)
    with pytest.raises(NoFaceError, match="No face"):
        analyze_portrait(noise)


def test_tiny_face(astronaut):
    small = cv2.resize(astronaut, (384, 384), interpolation=cv2.INTER_AREA)    # face ~65 px wide
    with pytest.raises(FaceTooSmallError, match="px wide"):
        analyze_portrait(small)


@pytest.mark.parametrize("crop", [(slice(None), slice(215, None)), (slice(100, None), slice(None)),
                                  (slice(None, 140), slice(None))])
def test_face_cut_off(astronaut, crop):
    with pytest.raises(FaceCutOffError, match="cut off"):
        analyze_portrait(np.ascontiguousarray(astronaut[crop]))


def test_profile_rules():
    frontal = Face(np.array([100., 100., 200., 220.]), np.array([[130, 150], [170, 150], [150, 180], [135, 200],
                                                                 [165, 200]], float), 0.99)
    check_face(frontal, 400, 400)
    profile = Face(frontal.box, np.array([[160, 150], [175, 150], [190, 180], [170, 200], [180, 200]], float), 0.99)
    with pytest.raises(ProfileFaceError, match="profile"):
        check_face(profile, 400, 400)
    check_yaw(30.0)
    check_yaw(-45.0)                                     # 3/4 views are animated
    with pytest.raises(ProfileFaceError, match="degrees"):
        check_yaw(-65.0)


def test_bad_image_files(tmp_path, default_audio):
    with pytest.raises(ImageError, match="could not be found"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(tmp_path / "empty.jpg")
    with pytest.raises(ImageError, match="not a JPEG, PNG or WebP"):
        load_image(default_audio.read_bytes())                 # an audio file given as the portrait
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buf, format="GIF")
    with pytest.raises(ImageError, match="GIF"):
        load_image(buf.getvalue())
    buf = io.BytesIO()
    Image.new("RGB", (100, 100), "red").save(buf, format="JPEG")
    with pytest.raises(ImageError):
        load_image(buf.getvalue()[: len(buf.getvalue()) // 3])      # truncated JPEG
    buf = io.BytesIO()
    Image.new("L", (8000, 6000)).save(buf, format="PNG")           # 48 megapixels
    with pytest.raises(ImageError, match="megapixels"):
        load_image(buf.getvalue())


def test_exif_orientation_is_applied(astronaut):
    img = Image.fromarray(astronaut)
    exif = Image.Exif()
    exif[0x0112] = 6                                               # "rotate 90 CW to display"
    buf = io.BytesIO()
    img.transpose(Image.Transpose.ROTATE_90).save(buf, format="JPEG", exif=exif.tobytes(), quality=95)
    upright = load_image(buf.getvalue())
    assert upright.shape == astronaut.shape
    assert np.abs(upright.astype(int) - astronaut).mean() < 6


# --- framing: the output square always lies inside the source --------------------------------------------

def _hopper_tight(hopper_path):
    im = load_image(hopper_path)
    h, w = im.shape[:2]
    y, x, s = int(h * 0.06), int(w * 0.19), int(w * 0.62)
    return np.ascontiguousarray(im[y:y + s, x:x + s])


def _inside(box, shape):
    x0, y0, x1, y1 = box
    return 0 <= x0 < x1 <= shape[1] and 0 <= y0 < y1 <= shape[0] and x1 - x0 == y1 - y0


def test_square_head_framed_source_keeps_its_framing(astronaut):
    p = analyze_portrait(astronaut, 512)
    assert p.crop_box == (0, 0, 512, 512)                # the astronaut is head-and-shoulders already
    assert np.abs(p.image.astype(int) - astronaut).mean() < 0.5      # same framing, same scale, no resampling


def test_tight_crops_are_framed_inside_the_source(hopper_path, astronaut):
    tight = _hopper_tight(hopper_path)                   # a head-and-shoulders crop, as profile pictures are
    landscape = np.ascontiguousarray(astronaut[20:300, 60:460])    # a wide video-frame-like crop
    for src in (tight, landscape):
        p = analyze_portrait(src, 512)
        assert _inside(p.crop_box, src.shape)
    assert analyze_portrait(tight, 512).crop_box == (0, 0) + tight.shape[:2][::-1]   # square: kept whole


def test_face_crop_is_animated_as_framed(hopper_path):
    """A 224-px face crop (as in face datasets) where the whole face is visible but MTCNN's box sticks out."""
    full = analyze_portrait(hopper_path, 512)
    lm = full.landmarks
    (x0, y0), (x1, y1) = lm[:, :2].min(0), lm[:, :2].max(0)
    pad = 0.06 * (x1 - x0)
    s = max(x1 - x0, y1 - y0) + 2 * pad
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    crop = full.image[int(cy - s / 2):int(cy + s / 2), int(cx - s / 2):int(cx + s / 2)]
    crop = cv2.resize(crop, (224, 224), interpolation=cv2.INTER_AREA)
    p = analyze_portrait(crop, 512)
    assert p.crop_box == (0, 0, 224, 224)
    assert p.face_width > 0.6 * 512                      # the face fills the frame, as in the source


def test_three_quarter_view_is_accepted(hopper_renderer):
    """A head turned 35 degrees (re-rendered from the Hopper portrait) is animated; only profiles are refused."""
    turned = hopper_renderer.render({"yaw": 35.0})
    p = analyze_portrait(turned, 512)
    assert abs(p.yaw) > 20
    from vasa_core.render import Renderer
    frame = Renderer(p, device="cpu").render({"jaw_open": 0.5, "yaw": -5.0})
    assert frame.shape == (512, 512, 3)
    with pytest.raises(ProfileFaceError, match="both eyes"):
        check_yaw(65.0)


def test_near_profile_is_refused(hopper_portrait):
    """One eye foreshortened to under 40% of the other: a near-profile, refused with its own sentence."""
    from vasa_core.portrait import EYE_L_LOWER, EYE_L_UPPER, check_eyes_visible
    check_eyes_visible(hopper_portrait.landmarks)
    lm = hopper_portrait.landmarks.copy()
    ids = EYE_L_UPPER + EYE_L_LOWER
    centre = lm[ids, 0].mean()
    lm[ids, 0] = centre + 0.3 * (lm[ids, 0] - centre)
    with pytest.raises(ProfileFaceError, match="both eyes"):
        check_eyes_visible(lm)
