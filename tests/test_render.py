"""The renderer driven by explicit motion: what a person would check, measured on the pixels."""
from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from vasa_core.portrait import (EYE_L_LOWER, EYE_L_UPPER, EYE_R_LOWER, EYE_R_UPPER, LIPS_INNER_LOWER,
                                LIPS_INNER_UPPER, LIPS_OUTER_LOWER, LIPS_OUTER_UPPER, NOSE_TIP, fit_mesh)
from vasa_core.render import Renderer, own_teeth_colour


def _box(points, pad):
    x0, y0 = np.floor(points.min(0)).astype(int) - pad
    x1, y1 = np.ceil(points.max(0)).astype(int) + pad
    return slice(y0, y1), slice(x0, x1)


def _mouth_box(p, pad=12):
    return _box(p.landmarks[[61, 291, 0, 17, 13, 14], :2], pad)


def test_neutral_frame_reproduces_the_portrait(hopper_renderer, hopper_portrait):
    frame = hopper_renderer.render({})
    assert frame.shape == hopper_portrait.image.shape and frame.dtype == np.uint8
    diff = np.abs(frame.astype(int) - hopper_portrait.image)
    mouth = diff[_mouth_box(hopper_portrait)]
    assert mouth.mean() < 1.0                                   # closed lips: the source mouth, unchanged
    assert diff.mean() < 0.5                                    # and the whole frame


def test_jaw_open_opens_a_dark_mouth(hopper_renderer, hopper_portrait):
    base = hopper_renderer.render({})
    open_ = hopper_renderer.render({"jaw_open": 0.7})
    box = _mouth_box(hopper_portrait, pad=25)
    assert np.abs(open_.astype(int) - base)[box].mean() > 6
    lm = hopper_renderer.landmarks({"jaw_open": 0.7})
    gap = lm[14, 1] - lm[13, 1]
    assert gap > 0.06 * hopper_portrait.face_width               # the lips part
    inner = np.zeros(base.shape[:2], np.uint8)
    cv2.fillPoly(inner, [np.round(lm[LIPS_INNER_UPPER + LIPS_INNER_LOWER[::-1], :2]).astype(np.int32)], 1)
    inner = cv2.erode(inner, np.ones((3, 3), np.uint8)).astype(bool)
    lum = cv2.cvtColor(open_, cv2.COLOR_RGB2GRAY).astype(float)
    skin = lum[_mouth_box(hopper_portrait, pad=25)].mean()
    assert lum[inner].mean() < 0.75 * skin                      # a mouth interior, not stretched lips
    # the chin goes down, the forehead stays
    assert lm[152, 1] > hopper_portrait.landmarks[152, 1] + 3
    assert abs(lm[10, 1] - hopper_portrait.landmarks[10, 1]) < 0.5


def test_wide_open_o_whose_lower_lip_mediapipe_misplaced(hopper_renderer):
    """On a wide "O" mediapipe can put the outer lower-lip contour on the lip's inner edge, with teeth and
    tongue inside it. Found by colour (the lip-coloured band lies outside the contour, not inside), the lower
    lip's landmarks move out onto the lip before the mouth is closed; a mouth drawn as mediapipe expects is
    left alone."""
    from vasa_core.portrait import LIPS_OUTER_LOWER, LIPS_OUTER_UPPER
    from vasa_core.lips import _lower_lip_moved_out, _lower_lip_outside
    lm = hopper_renderer.landmarks({"jaw_open": 1.0}).astype(np.float64)
    S = hopper_renderer.size
    skin, lip, dark = (200, 160, 140), (170, 70, 80), (60, 25, 30)

    def poly(ids):
        return np.round(lm[ids, :2]).astype(np.int32)
    upper_lip = np.concatenate([poly(LIPS_OUTER_UPPER), poly(LIPS_INNER_UPPER[::-1])])
    cavity = np.concatenate([poly(LIPS_INNER_UPPER), poly(LIPS_INNER_LOWER[::-1])])
    lower_band = np.concatenate([poly(LIPS_INNER_LOWER), poly(LIPS_OUTER_LOWER[::-1])])
    thick = float(np.median(lm[[37, 0, 267], 1] - lm[[82, 13, 312], 1]) * -1)
    below = np.concatenate([poly(LIPS_OUTER_LOWER),
                            np.round(lm[LIPS_OUTER_LOWER[::-1], :2] + [0, 1.1 * thick]).astype(np.int32)])
    right = np.full((S, S, 3), skin, np.uint8)
    for p_, c in ((upper_lip, lip), (cavity, dark), (lower_band, lip)):
        cv2.fillPoly(right, [p_], c)
    wrong = np.full((S, S, 3), skin, np.uint8)
    for p_, c in ((upper_lip, lip), (cavity, dark), (lower_band, dark), (below, lip)):
        cv2.fillPoly(wrong, [p_], c)
    assert thick > 3
    assert not _lower_lip_outside(right, lm)
    assert _lower_lip_outside(wrong, lm)
    moved = _lower_lip_moved_out(lm)
    assert moved[14, 1] == pytest.approx(lm[17, 1], abs=1.0)                 # inner lower edge on the old outer one
    assert moved[17, 1] == pytest.approx(lm[17, 1] + 1.1 * thick, abs=1.5)  # outer edge a lip's height below
    assert np.allclose(moved[[61, 291]], lm[[61, 291]])                       # corners stay
    assert np.allclose(moved[LIPS_OUTER_UPPER + LIPS_INNER_UPPER], lm[LIPS_OUTER_UPPER + LIPS_INNER_UPPER])


def test_black_and_white_portrait_gets_a_grey_mouth(hopper_portrait, hopper_renderer):
    """A black-and-white photo opens into a grey mouth (dark grey cavity, light grey teeth), not the cream
    teeth and dark red cavity painted into a colour portrait; the colour portrait keeps its red."""
    from vasa_core.portrait import analyze_portrait
    grey = cv2.cvtColor(cv2.cvtColor(hopper_portrait.image, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    r = Renderer(analyze_portrait(grey, 512), device="cpu")
    f = {"jaw_open": 0.8}

    def inside(renderer):
        frame, lm = renderer.render(f).astype(float), renderer.landmarks(f)
        inner = np.zeros(frame.shape[:2], np.uint8)
        cv2.fillPoly(inner, [np.round(lm[LIPS_INNER_UPPER + LIPS_INNER_LOWER[::-1], :2]).astype(np.int32)], 1)
        return frame[cv2.erode(inner, np.ones((5, 5), np.uint8)).astype(bool)]
    px = inside(r)
    assert len(px) > 200
    assert np.median(px.max(1) - px.min(1)) <= 2.0                      # no colour where the portrait has none
    assert np.percentile(px.max(1) - px.min(1), 95) <= 4.0
    colour = inside(hopper_renderer)
    assert np.median(colour[:, 0] - colour[:, 1]) > 8                  # the colour portrait's mouth is still red


def test_closed_lips_with_press(hopper_renderer):
    lm = hopper_renderer.landmarks({"jaw_open": 0.5, "lip_press": 1.0})
    assert lm[14, 1] - lm[13, 1] < 1.0                            # p/b/m: lips meet even with the jaw part open


def _eye_polys(lm):
    return [lm[u + l[::-1], :2] for u, l in ((EYE_R_UPPER, EYE_R_LOWER), (EYE_L_UPPER, EYE_L_LOWER))]


def test_blink_closes_the_eyes(hopper_renderer, hopper_portrait):
    area = lambda poly: cv2.contourArea(poly.astype(np.float32))   # noqa: E731
    open_area = [area(p) for p in _eye_polys(hopper_renderer.landmarks({}))]
    shut = hopper_renderer.landmarks({"blink_l": 1.0, "blink_r": 1.0})
    shut_area = [area(p) for p in _eye_polys(shut)]
    assert all(s < 0.12 * o for s, o in zip(shut_area, open_area))
    frame = hopper_renderer.render({"blink_l": 1.0, "blink_r": 1.0})
    base = hopper_renderer.render({})
    for poly in _eye_polys(hopper_portrait.landmarks):
        mask = np.zeros(base.shape[:2], np.uint8)
        cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1)
        changed = np.abs(frame.astype(int) - base).max(2)[mask > 0] > 15
        assert changed.mean() > 0.5                            # most of the eye opening is covered by lid
    one = hopper_renderer.landmarks({"blink_r": 1.0})
    assert area(_eye_polys(one)[1]) > 0.9 * open_area[1]        # the other eye stays open


@pytest.mark.parametrize("yaw", [12.0, -12.0])
def test_yaw_moves_the_nose_the_right_way(hopper_renderer, hopper_portrait, yaw):
    frame = hopper_renderer.render({"yaw": yaw})
    refit = fit_mesh(frame)                                   # measure on the pixels, not on our own landmarks
    assert refit is not None
    shift = (refit[NOSE_TIP, 0] - refit[[234, 454], 0].mean()) - \
            (hopper_portrait.landmarks[NOSE_TIP, 0] - hopper_portrait.landmarks[[234, 454], 0].mean())
    assert np.sign(shift) == np.sign(yaw) and abs(shift) > 4


def test_pitch_and_roll_and_gaze(hopper_renderer, hopper_portrait):
    lm0 = hopper_portrait.landmarks
    up = hopper_renderer.landmarks({"pitch": 8.0})
    assert up[NOSE_TIP, 1] < lm0[NOSE_TIP, 1] - 2
    rolled = hopper_renderer.landmarks({"roll": 8.0})
    eye_line = rolled[263, :2] - rolled[33, :2]
    assert np.degrees(np.arctan2(-eye_line[1], eye_line[0])) == pytest.approx(8.0 + np.degrees(np.arctan2(
        -(lm0[263, 1] - lm0[33, 1]), lm0[263, 0] - lm0[33, 0])), abs=1.5)
    base = hopper_renderer.render({})
    look = hopper_renderer.render({"gaze_x": 20.0})
    diff = np.abs(look.astype(int) - base).max(2) > 20
    ys, xs = np.nonzero(diff)
    eyes = np.concatenate(_eye_polys(lm0))
    assert len(xs) > 20
    assert ((xs > eyes[:, 0].min() - 4) & (xs < eyes[:, 0].max() + 4) & (ys > eyes[:, 1].min() - 4)
            & (ys < eyes[:, 1].max() + 4)).mean() > 0.99           # gaze changes the eyes and nothing else


def test_no_tearing_at_large_poses(hopper_renderer):
    for f in ({"yaw": 15, "jaw_open": 0.6}, {"pitch": -10, "roll": 10, "jaw_open": 1.0}, {"yaw": -15, "pitch": 10}):
        frame = hopper_renderer.render(f)
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        # a tear shows up as a run of pixels far brighter/darker than both neighbours along a line
        lap = np.abs(cv2.Laplacian(gray, cv2.CV_32F))
        base = np.abs(cv2.Laplacian(cv2.cvtColor(hopper_renderer.portrait.image, cv2.COLOR_RGB2GRAY), cv2.CV_32F))
        assert np.percentile(lap, 99.9) < 1.5 * np.percentile(base, 99.9)


def test_torch_engine_matches_opencv(hopper_portrait):
    f = {"yaw": 10.0, "jaw_open": 0.5, "blink_l": 0.5, "smile": 0.3}
    a = Renderer(hopper_portrait, device="cpu", engine="cv2").render(f)
    b = Renderer(hopper_portrait, device="cpu", engine="torch").render(f)
    assert np.abs(a.astype(int) - b).mean() < 0.5


def _inner_gap(lm):
    """inner-lip gap at the centre / face width"""
    return float(np.linalg.norm(lm[13, :2] - lm[14, :2]) / np.linalg.norm(lm[234, :2] - lm[454, :2]))


@pytest.mark.parametrize("name", ["hopper_portrait", "astronaut_portrait"])
def test_open_mouth_tapers_to_its_corners(name, request):
    """An open mouth ends in pointed corners: at each inner corner the upper and lower inner lips leave at an
    angle well under 90 degrees (with the upper lip fixed up to the corner while the corner dropped with the
    jaw, the opening ended in a near-vertical edge, 72-144 degrees, with a wedge of stretched skin beside it)."""
    r = Renderer(request.getfixturevalue(name), device="cpu")
    cam = r.landmarks({"jaw_open": 0.6})
    for corner, upper, lower in ((78, 191, 95), (308, 415, 324)):
        a, b = cam[upper, :2] - cam[corner, :2], cam[lower, :2] - cam[corner, :2]
        angle = np.degrees(np.arccos(a @ b / np.linalg.norm(a) / np.linalg.norm(b)))
        assert angle < 60, (corner, angle)
    assert cam[14, 1] - cam[13, 1] > 0.08 * r.rig.mouth_width      # and the mouth did open


def test_own_teeth_colour_needs_visible_teeth(hopper_portrait):
    """A closed mouth shows no teeth; a dark red opening (lips, tongue, cavity) has none either."""
    assert own_teeth_colour(hopper_portrait.image, hopper_portrait.landmarks) is None
    img = hopper_portrait.image.copy()
    lm = hopper_portrait.landmarks.copy()
    lm[LIPS_INNER_LOWER[1:-1], 1] += 12                          # a mouth 12 px open ...
    hole = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(hole, [np.round(lm[LIPS_INNER_UPPER + LIPS_INNER_LOWER[::-1], :2]).astype(np.int32)], 1)
    img[hole > 0] = (120, 30, 35)                                 # ... showing only a dark red inside
    assert own_teeth_colour(img, lm) is None
    img[(hole > 0) & (np.arange(img.shape[0])[:, None] < lm[13, 1] + 5)] = (230, 225, 215)   # now upper teeth
    c = own_teeth_colour(img, lm)
    assert c is not None and np.allclose(c, (230, 225, 215), atol=2)


def test_closed_lips_taper_to_the_corners(hopper_portrait):
    """Closed lips that come out thicker at the corners than in the middle (a closed wide "O") are thinned
    towards the corners; lips that already taper are left as they are."""
    from vasa_core.face import build_rig
    from vasa_core.lips import _lip_profiles, _taper_lip_corners
    rig = build_rig(hopper_portrait)
    lm = hopper_portrait.landmarks.astype(np.float64)
    assert np.allclose(_taper_lip_corners(lm, rig.upper_lip, rig.lower_lip), lm)   # Hopper's lips taper

    def thickness(points, at):          # upper lip: inner contour minus outer contour, along the mouth
        _, (s_ou, s_iu, _, _) = _lip_profiles(points)
        return np.interp(at, *s_iu) - np.interp(at, *s_ou)
    (mid, u_ax, v_ax, half), _ = _lip_profiles(lm)
    u = (lm[:, :2] - mid) @ u_ax / half
    square = lm.copy()                  # the upper lip's outer contour raised towards the corners
    outer = LIPS_OUTER_UPPER[1:-1]
    square[outer, :2] -= (12.0 * np.clip(np.abs(u[outer]) - 0.4, 0, None))[:, None] * v_ax
    assert thickness(square, 0.9) > thickness(square, 0.0)
    tapered = _taper_lip_corners(square, rig.upper_lip, rig.lower_lip)
    assert thickness(tapered, 0.9) < 0.6 * thickness(tapered, 0.0)
    assert abs(thickness(tapered, 0.0) - thickness(square, 0.0)) < 0.5      # the middle keeps its thickness


def test_closing_drops_stretched_glints(astronaut_portrait):
    """Glints on a glossy lower lip, stretched with the lip as the mouth closes, read as tooth edges: where
    the lip is stretched, specks much lighter than the lip around them are taken out."""
    from vasa_core.lips import _lip_profiles, close_mouth
    img = astronaut_portrait.image.copy()
    lm = astronaut_portrait.landmarks.astype(np.float64)
    (mid, u_ax, v_ax, half), (_, _, s_il, s_ol) = _lip_profiles(lm)
    for t in np.linspace(-0.5, 0.5, 6):     # white specks half-way down the lower lip
        v = 0.5 * (np.interp(t, *s_il) + np.interp(t, *s_ol))
        x, y = mid + t * half * u_ax + v * v_ax
        cv2.circle(img, (int(round(x)), int(round(y))), 1, (255, 255, 255), -1)
    closed = close_mouth(replace(astronaut_portrait, image=img))
    c = closed.landmarks.astype(np.float64)
    (cmid, cu, cv_, chalf), (_, c_iu, c_il, c_ol) = _lip_profiles(c)
    lip = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(lip, [np.round(c[LIPS_INNER_LOWER + LIPS_OUTER_LOWER[::-1], :2]).astype(np.int32)], 1)
    lum = cv2.cvtColor(closed.image, cv2.COLOR_RGB2GRAY).astype(float)
    excess = lum - cv2.GaussianBlur(lum, (0, 0), 3.0)
    assert excess[cv2.erode(lip, np.ones((3, 3), np.uint8)) > 0].max() < 40


def test_open_mouth_portrait_closes(astronaut_portrait, identity):
    """An open-mouth source (the astronaut smiles with her teeth showing) is rendered from a closed-mouth
    version: at rest the lips meet, measured by mediapipe on the pixels, and the teeth are gone."""
    assert astronaut_portrait.mouth_open > 0.02
    r = Renderer(astronaut_portrait, device="cpu")
    assert r.opened_source and r.portrait.mouth_open == 0.0
    for f in ({}, {"jaw_open": 0.3, "lip_press": 1.0}):
        frame = r.render(f)
        refit = fit_mesh(frame)
        assert refit is not None and _inner_gap(refit) < 0.012, f
    src_gap = _inner_gap(fit_mesh(astronaut_portrait.image))
    assert src_gap > 0.02
    # where the source showed teeth (bright pixels between the inner lips) the closed mouth shows lip/skin
    lm = astronaut_portrait.landmarks
    inner = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillPoly(inner, [np.round(lm[LIPS_INNER_UPPER + LIPS_INNER_LOWER[::-1], :2]).astype(np.int32)], 1)
    def teeth(img):         # whitish pixels (bright, unsaturated) where the source's mouth was open
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)[inner > 0].astype(float)
        return ((hsv[:, 2] > 150) & (hsv[:, 1] < 50)).mean()
    assert teeth(astronaut_portrait.image) > 0.3
    assert teeth(r.render({})) < 0.25 * teeth(astronaut_portrait.image)
    # opening again shows painted teeth under the upper lip in the colour of the portrait's own teeth
    own = own_teeth_colour(astronaut_portrait.image, astronaut_portrait.landmarks)
    assert own is not None and own.mean() > 200                      # her teeth: near white
    frame = r.render({"jaw_open": 0.6})
    lm = r.landmarks({"jaw_open": 0.6})
    hole = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillPoly(hole, [np.round(lm[LIPS_INNER_UPPER + LIPS_INNER_LOWER[::-1], :2]).astype(np.int32)], 1)
    px = frame[cv2.erode(hole, np.ones((3, 3), np.uint8)) > 0].astype(float)
    lum = px @ np.array([0.299, 0.587, 0.114])
    shown = px[lum >= np.percentile(lum, 75)]                       # the lit teeth
    assert shown.mean() > 170 and np.abs(shown.mean(0) / shown.mean() - own / own.mean()).max() < 0.08
    # and it stays the same person
    ref = identity.descriptor(astronaut_portrait.image)
    for f in ({}, {"jaw_open": 0.6}, {"jaw_open": 0.2, "lip_press": 1.0, "yaw": 8}):
        d = identity.descriptor(r.render(f))
        assert d is not None and np.linalg.norm(d - ref) < 0.45


def test_mouth_interior_teeth_on_the_skull(hopper_renderer):
    """The painted interior: a cavity that is dark but not black, lighter towards the tongue than at the back,
    upper teeth that stay on the skull when the upper lip lifts (more teeth show, the teeth do not move)."""
    f = {"jaw_open": 0.8}
    frame = hopper_renderer.render(f)
    lm = hopper_renderer.landmarks(f)
    inner = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillPoly(inner, [np.round(lm[LIPS_INNER_UPPER + LIPS_INNER_LOWER[::-1], :2]).astype(np.int32)], 1)
    inner = cv2.erode(inner, np.ones((3, 3), np.uint8))
    lum = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(float)
    assert np.percentile(lum[inner > 0], 5) > 12                 # no black hole
    x = int(round(lm[13, 0]))
    col = lum[int(lm[13, 1]):int(lm[14, 1]), x]
    n = len(col)
    assert n > 12
    assert col[int(0.75 * n):].mean() > 1.3 * col[int(0.3 * n):int(0.5 * n)].mean()   # tongue lit, back dark

    def teeth_edge(f):      # the upper teeth's edge: the end of the first bright run below the upper lip
        fr = hopper_renderer.render(f)
        l = hopper_renderer.landmarks(f)
        g = cv2.cvtColor(fr, cv2.COLOR_RGB2GRAY).astype(float)[:, int(round(l[13, 0]))]
        y0, y1 = int(l[13, 1]), int(l[14, 1])
        seg = g[y0:y1]
        assert seg.max() > 1.8 * np.percentile(seg, 20)          # light teeth against the dark cavity
        bright = seg > 0.5 * (seg.max() + np.percentile(seg, 20))    # teeth, not cavity
        first = int(np.argmax(bright))
        assert first < 0.3 * len(seg)                             # they hang from the upper lip
        return y0 + first + int(np.argmin(bright[first:])), l[13, 1]
    edge0, lip0 = teeth_edge({"jaw_open": 0.6})
    edge1, lip1 = teeth_edge({"jaw_open": 0.6, "upper_lip_raise": 1.0})
    assert lip0 - lip1 > 3                                        # the upper lip went up ...
    assert abs(edge1 - edge0) <= 1.5                              # ... the teeth stayed


def test_lower_teeth_show_only_when_the_lower_lip_drops(hopper_renderer):
    """The lower incisors are on the jaw with the lower lip, just below its edge: an open jaw alone shows the
    tongue above the lower lip, a dropped lower lip (open vowels) bares the lower teeth."""
    def above_lower_lip(f):      # luminance of the band just above the lower lip's inner edge, centre column
        fr = hopper_renderer.render(f)
        l = hopper_renderer.landmarks(f)
        g = cv2.cvtColor(fr, cv2.COLOR_RGB2GRAY).astype(float)
        x, y = int(round(l[14, 0])), int(round(l[14, 1]))
        band = max(2, int(round(0.03 * hopper_renderer.rig.mouth_width)))
        return g[y - band - 1:y - 1, x - 2:x + 3].mean(), g[int(l[13, 1]) + 1:y, x].max()
    closed_lip, top = above_lower_lip({"jaw_open": 0.6})
    dropped, top_d = above_lower_lip({"jaw_open": 0.6, "lower_lip_drop": 1.0})
    assert closed_lip < 0.6 * top            # tongue / cavity there, darker than the upper teeth
    assert dropped > 0.8 * top_d             # teeth, about as light as the upper row


@pytest.mark.parametrize("name", ["hopper_portrait", "astronaut_portrait"])
def test_closed_lid_line_is_soft(name, request):
    """A fully closed eye meets in a soft lash line, not a 1-px stair-stepped crack: the strongest vertical
    luminance steps over the closed eye (99th percentile) stay under 45 grey levels (50-75 without the
    softening)."""
    r = Renderer(request.getfixturevalue(name), device="cpu")
    f = {"blink_l": 1.0, "blink_r": 1.0}
    frame, lm = r.render(f), r.landmarks(f)
    g = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(float)
    for upper, lower in ((EYE_R_UPPER, EYE_R_LOWER), (EYE_L_UPPER, EYE_L_LOWER)):
        pts = lm[upper + lower, :2]
        (x0, y0), (x1, y1) = np.floor(pts.min(0)).astype(int) - 2, np.ceil(pts.max(0)).astype(int) + 3
        assert np.percentile(np.abs(np.diff(g[y0:y1, x0:x1], axis=0)), 99) < 45


def test_cheeks_and_lids(hopper_renderer):
    area = lambda poly: cv2.contourArea(poly.astype(np.float32))   # noqa: E731
    base = hopper_renderer.landmarks({})
    opening = sum(area(p) for p in _eye_polys(base))
    narrow = sum(area(p) for p in _eye_polys(hopper_renderer.landmarks({"lid_tension": 1.0})))
    wide = sum(area(p) for p in _eye_polys(hopper_renderer.landmarks({"lid_tension": -1.0})))
    assert narrow < 0.8 * opening and wide > 1.08 * opening
    cheek = hopper_renderer.landmarks({"cheek_raise": 1.0})
    assert base[50, 1] - cheek[50, 1] > 1.5 and base[280, 1] - cheek[280, 1] > 1.5     # cheeks lift
    assert np.abs(cheek[[13, 14, 61, 291], :2] - base[[13, 14, 61, 291], :2]).max() < 1.0  # lips stay
    assert sum(area(p) for p in _eye_polys(cheek)) < opening                         # lower lids pushed up


def test_rounding_and_spreading_shape_the_lips_not_the_aperture(hopper_renderer):
    """lip_funnel gathers the lips (narrower mouth) and lip_stretch spreads and thins them; neither opens or
    closes the gap between the lips at the middle (the jaw and the lip drop/raise do that)."""
    width = lambda lm: float(np.linalg.norm(lm[61, :2] - lm[291, :2]))          # noqa: E731
    thickness = lambda lm: float(lm[14, 1] - lm[13, 1] + lm[17, 1] - lm[0, 1])   # noqa: E731 (both lips, px)
    gap = lambda lm: float(lm[14, 1] - lm[13, 1])                               # noqa: E731
    for jaw in (0.0, 0.5):
        base = hopper_renderer.landmarks({"jaw_open": jaw})
        rounded = hopper_renderer.landmarks({"jaw_open": jaw, "lip_funnel": 1.0})
        spread = hopper_renderer.landmarks({"jaw_open": jaw, "lip_stretch": 1.0})
        assert width(rounded) < 0.85 * width(base) and width(spread) > 1.1 * width(base)
        tol = 0.5 + 0.1 * gap(base)       # px; the funnel's forward push tilts a little with the jaw
        assert abs(gap(rounded) - gap(base)) < tol and abs(gap(spread) - gap(base)) < tol
        assert thickness(spread) < thickness(base) - 1.0                            # thinner lips


@pytest.mark.parametrize("which", ["hopper", "astronaut"])
def test_closed_eyes_show_lid_skin_not_a_dark_slit(which, hopper_renderer, hopper_portrait, astronaut_portrait):
    """At a full blink the eye opening is covered by the upper lid's skin (lashes only on the line where the
    lids meet): few pixels of the former opening stay darker than 0.6x the cheeks (the old closed-lid texture
    left 46-82% of them dark: a slit with a ragged edge). Under 30%: the lash line drawn where the lids meet
    (`test_closed_eye_has_an_unbroken_lash_line`) takes 23-26% of Hopper's and the astronaut's former
    openings, as a real closed eye's does (a 2-3 px line in a 10-12 px opening in liveportrait__d10/d14's
    blinks); the lid without it left 9-19%."""
    if which == "hopper":
        portrait, renderer = hopper_portrait, hopper_renderer
    else:
        portrait, renderer = astronaut_portrait, Renderer(astronaut_portrait, device="cpu")
    gray = cv2.cvtColor(renderer.render({"blink_l": 1.0, "blink_r": 1.0}), cv2.COLOR_RGB2GRAY).astype(float)
    lm = portrait.landmarks
    cheeks = np.concatenate([gray[int(lm[k, 1]) - 4:int(lm[k, 1]) + 5, int(lm[k, 0]) - 4:int(lm[k, 0]) + 5].ravel()
                             for k in (50, 280)])
    shares = []
    for upper, lower in ((EYE_R_UPPER, EYE_R_LOWER), (EYE_L_UPPER, EYE_L_LOWER)):
        mask = np.zeros(gray.shape, np.uint8)
        cv2.fillPoly(mask, [np.round(lm[upper + lower[::-1], :2]).astype(np.int32)], 1)
        shares.append(float(np.mean(gray[mask > 0] < 0.6 * np.median(cheeks))))
    assert np.mean(shares) < 0.3, shares


@pytest.mark.parametrize("which", ["hopper", "astronaut"])
def test_closed_lid_texture_stays_between_the_eye_corners(which, hopper_renderer, astronaut_portrait):
    """The closed-lid texture changes nothing beyond the eye's corners: at a full blink, the frame with the lid
    texture and the frame with the plain source in its place agree (p99 difference < 2 grey levels) in the
    skin up to 0.3 eye widths outside each corner. The former texture stretched and smoothed the skin there
    too, up to the edges of its box, which left a rectangular seam beside each closed eye (p99 20-29 grey
    levels on these two portraits, 7-39 on four research portraits; 0 now)."""
    r = hopper_renderer if which == "hopper" else Renderer(astronaut_portrait, device="cpu")
    f = {"blink_l": 1.0, "blink_r": 1.0}
    shut = r.render(f).astype(float)
    lids = r.lids
    try:
        r.lids = [(box, r.source[box[1]:box[3], box[0]:box[2]].astype(np.float32)) for box, _ in lids]
        plain = r.render(f).astype(float)
    finally:
        r.lids = lids
    lm = r.landmarks(f)
    xs = np.arange(shut.shape[1])
    for upper, lower in ((EYE_R_UPPER, EYE_R_LOWER), (EYE_L_UPPER, EYE_L_LOWER)):
        pts = lm[upper + lower, :2]
        xl, xr = pts[:, 0].min(), pts[:, 0].max()
        w = xr - xl
        y0, y1 = int(pts[:, 1].min() - 0.5 * w), int(pts[:, 1].max() + 0.3 * w)
        beyond = ((xs < xl - 1) & (xs > xl - 0.3 * w)) | ((xs > xr + 1) & (xs < xr + 0.3 * w))
        assert np.percentile(np.abs(shut - plain)[y0:y1][:, beyond].max(-1), 99) < 2.0
    assert np.abs(shut - plain).max() > 20          # (the texture does close the eye between the corners)


@pytest.mark.parametrize("which", ["hopper", "astronaut"])
def test_closed_eye_has_an_unbroken_lash_line(which, hopper_renderer, astronaut_portrait):
    """A closed eye shows a dark lash line where the lids meet, unbroken along the lid, as real blinks do: over
    the middle 70% of each closed eye, >= 80% of the columns have a pixel within 2 px above to 3 px below the
    posed upper lid that is >= 25% darker than the lid skin 4-9 px above it (all columns now; with the lashes
    left to the squashed lid texture the astronaut's left eye had 23%, a ragged, broken line)."""
    r = hopper_renderer if which == "hopper" else Renderer(astronaut_portrait, device="cpu")
    f = {"blink_l": 1.0, "blink_r": 1.0}
    g = cv2.cvtColor(r.render(f), cv2.COLOR_RGB2GRAY).astype(float)
    lm = r.landmarks(f)
    for upper in (EYE_R_UPPER, EYE_L_UPPER):
        pts = lm[sorted(upper, key=lambda i: lm[i, 0]), :2]
        xl, xr = pts[:, 0].min(), pts[:, 0].max()
        xs = np.arange(int(np.ceil(xl + 0.15 * (xr - xl))), int(xr - 0.15 * (xr - xl)) + 1)
        rows = np.round(np.interp(xs, pts[:, 0], pts[:, 1])).astype(int)
        line = np.array([g[y - 2:y + 4, x].min() for x, y in zip(xs, rows)])
        skin = np.array([np.median(g[y - 9:y - 4, x]) for x, y in zip(xs, rows)])
        assert np.mean(line <= 0.75 * skin) >= 0.8, np.mean(line <= 0.75 * skin)


def test_mesh_triangulation_is_delaunay(hopper_renderer):
    """The mesh's OpenCV triangulation (no scipy import at start-up) is qhull's Delaunay triangulation: the same
    triangles on points in general position (and a repeated point) and on the portrait's mesh points, where
    only squares of fixed border points could split either way (they never move, so they are never drawn)."""
    from scipy.spatial import Delaunay
    from vasa_core.warp import delaunay

    def tri_set(tris):
        return {tuple(sorted(map(int, t))) for t in tris}

    for seed in range(8):
        rng = np.random.default_rng(seed)
        pts = rng.uniform(0, rng.uniform(50, 2000), (int(rng.integers(10, 600)), 2))
        ours = delaunay(np.concatenate([pts, pts[:1]]))      # the repeated point keeps its first index
        assert tri_set(ours) == tri_set(Delaunay(pts).simplices)
        assert np.array_equal(ours, np.array(sorted(map(sorted, ours.tolist()))))    # a fixed order
    from vasa_core.warp import build_mesh
    p = hopper_renderer.portrait
    mesh = build_mesh(p.landmarks, hopper_renderer.rig.face_width, p.size)     # laid out on its own points
    fixed = mesh.n_face + len(mesh.ring1)                    # vertices from here on never move
    ref = tri_set(Delaunay(mesh.src).simplices)
    a, b, d = (mesh.src[[t[k] for t in ref]] for k in range(3))
    area = 0.5 * np.abs((b[:, 0] - a[:, 0]) * (d[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (d[:, 0] - a[:, 0]))
    ref = {t for t, ar in zip(ref, area) if ar > 1e-3}
    assert {t for t in tri_set(mesh.tris) if min(t) < fixed} == {t for t in ref if min(t) < fixed}
    assert len(tri_set(mesh.tris)) == len(ref)


@pytest.mark.parametrize("which", ["hopper", "astronaut"])
def test_no_mesh_triangle_joins_the_upper_lip_to_the_lower_lip(which, hopper_renderer, astronaut_portrait):
    """The only triangles with corners on both lips span the opening between the inner lip edges; one that
    joins the upper lip's outer edge to the lower lip (Delaunay's choice on closed lips, where both inner edges
    lie on one line) stretches the dark line between the lips into a saw-tooth over the lips as they part."""
    from vasa_core.portrait import LIPS_OUTER_LOWER, LIPS_OUTER_UPPER
    r = hopper_renderer if which == "hopper" else Renderer(astronaut_portrait, device="cpu")
    corners = {61, 291, 78, 308}
    upper, lower = set(LIPS_OUTER_UPPER + LIPS_INNER_UPPER) - corners, set(LIPS_OUTER_LOWER + LIPS_INNER_LOWER) - corners
    outer_up, outer_lo = set(LIPS_OUTER_UPPER) - corners, set(LIPS_OUTER_LOWER) - corners
    sel = r.mesh.sel
    tris = [{int(sel[k]) for k in t} for t in r.mesh.tris if t.max() < len(sel)]
    assert any(t & set(LIPS_INNER_UPPER) - corners and t & set(LIPS_INNER_LOWER) - corners for t in tris)  # the opening
    assert not [t for t in tris if (t & outer_up and t & lower) or (t & outer_lo and t & upper)]
    f = {"jaw_open": 0.6}
    lm = r.landmarks(f)
    assert lm[14, 1] - lm[13, 1] > 5                                 # (and the mouth does open)


@pytest.mark.parametrize("which", ["hopper", "astronaut"])
def test_half_closed_eye_shows_the_iris_under_the_lid_not_through_it(which, hopper_renderer, astronaut_portrait):
    """Mid-blink (0.45-0.7, the values a 4-7-frame blink passes through) the upper lid comes down over the top
    of the iris and the rest of the iris is seen as it is, not cross-faded with the closed-lid texture (a ghost
    iris through the lid): the visible lower half of each iris does not grow lighter against the cheeks as the
    lid comes down (the former cross-fade from blink 0.35 on lifted it by 20-30% between 0.45 and 0.65)."""
    renderer = hopper_renderer if which == "hopper" else Renderer(astronaut_portrait, device="cpu")

    def iris_contrast(blink: float) -> np.ndarray:
        """cheek brightness - brightness of the lower half of each iris (right, left), grey levels"""
        f = {"blink_l": blink, "blink_r": blink}
        gray = cv2.cvtColor(renderer.render(f), cv2.COLOR_RGB2GRAY).astype(float)
        lm = renderer.landmarks(f)
        cheeks = np.median(np.concatenate([gray[int(lm[k, 1]) - 4:int(lm[k, 1]) + 5,
                                                int(lm[k, 0]) - 4:int(lm[k, 0]) + 5].ravel() for k in (50, 280)]))
        out = []
        for centre, ring in ((468, range(469, 473)), (473, range(474, 478))):
            c = lm[centre, :2]
            radius = float(np.mean(np.linalg.norm(lm[list(ring), :2] - c, axis=1)))
            x, y = int(round(c[0])), int(round(c[1] + 0.45 * radius))
            h = max(1, int(0.2 * radius))
            out.append(cheeks - gray[y - h:y + h + 1, x - h:x + h + 1].mean())
        return np.array(out)

    assert np.all(iris_contrast(0.0) > 40)                      # the irises are dark in the open eye
    before = iris_contrast(0.45)
    for blink in (0.55, 0.65):
        assert np.all(iris_contrast(blink) > 0.9 * before), (blink, iris_contrast(blink), before)
