"""Mouth preparation, once per portrait: an open-mouth portrait's closed-mouth state (`close_mouth`: the lips
refilled from their own texture and tapered to the corners, so the rig can open and shape the mouth from
shut), and the colour of the portrait's own teeth (`own_teeth_colour`) for the painted mouth interior.
"""
from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from .face import build_rig, deform
from .landmarks import (INNER_CORNERS, LIP_MID_LOWER, LIP_MID_UPPER, LIPS_INNER_LOWER, LIPS_INNER_UPPER,
                        LIPS_OUTER_LOWER, LIPS_OUTER_UPPER)
from .portrait import Portrait
from .warp import build_mesh, flow_field, flow_maps, remap

LUMA = np.float32([0.299, 0.587, 0.114])   # RGB -> luminance (Rec. 601), for colour arithmetic on pixels
CLOSE_LIP_SHARE = 0.4   # closing an open portrait's mouth, the lips stretch to cover at most this share of their height
LIP_OUTER_TOP, LIP_OUTER_BOTTOM = 0, 17   # outer lip edges at the mouth's middle


def _lip_profiles(pts: np.ndarray):
    """Mouth-aligned frame (mid, u axis, v axis, half width between the inner corners) and the four lip
    contours as (u, v) profiles: outer upper, inner upper, inner lower, outer lower (u in half widths)."""
    cl, cr = pts[INNER_CORNERS[0], :2], pts[INNER_CORNERS[1], :2]
    mid = (cl + cr) / 2
    u_ax = (cr - cl) / max(np.linalg.norm(cr - cl), 1e-6)
    v_ax = np.array([-u_ax[1], u_ax[0]])
    half = max(np.linalg.norm(cr - cl) / 2, 1.0)

    def profile(ids):
        q = pts[ids, :2] - mid
        u, v = q @ u_ax / half, q @ v_ax
        o = np.argsort(u)
        return u[o], v[o]
    return (mid, u_ax, v_ax, half), [profile(i) for i in (LIPS_OUTER_UPPER, LIPS_INNER_UPPER, LIPS_INNER_LOWER,
                                                            LIPS_OUTER_LOWER)]


def _refill_lips(image: np.ndarray, source: np.ndarray, src_lm: np.ndarray, dst_lm: np.ndarray) -> np.ndarray:
    """Redraw the lips of `image` (whose landmarks are `dst_lm`, lips closed) from the open lips of `source`
    (landmarks `src_lm`): each lip is stretched from its outer edge to the line where the lips now meet,
    sampling only the outer half of each lip (mediapipe's inner contour of a wide-open mouth can lie on the cavity),
    so nothing of the open mouth's inside (teeth, cavity) survives. A soft seam darkens the meeting line."""
    (smid, su, sv, shalf), (s_ou, s_iu, s_il, s_ol) = _lip_profiles(src_lm)
    (dmid, du, dv, dhalf), (d_ou, d_iu, d_il, d_ol) = _lip_profiles(dst_lm)
    S = image.shape[0]
    outer = dst_lm[LIPS_OUTER_UPPER + LIPS_OUTER_LOWER[::-1][1:-1], :2]
    pad = 4
    x0, y0 = np.maximum(np.floor(outer.min(0)).astype(int) - pad, 0)
    x1, y1 = np.minimum(np.ceil(outer.max(0)).astype(int) + pad, S)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    rx, ry = xx - dmid[0], yy - dmid[1]
    u = (rx * du[0] + ry * du[1]) / dhalf
    v = rx * dv[0] + ry * dv[1]
    vo_u, vo_l = np.interp(u, *d_ou), np.interp(u, *d_ol)
    seam = (np.interp(u, *d_iu) + np.interp(u, *d_il)) / 2
    up = v < seam
    t_up = np.clip((v - vo_u) / np.maximum(seam - vo_u, 0.5), 0, 1)
    t_lo = np.clip((vo_l - v) / np.maximum(vo_l - seam, 0.5), 0, 1)
    s_out_u, s_in_u = np.interp(u, *s_ou), np.interp(u, *s_iu)
    s_out_l, s_in_l = np.interp(u, *s_ol), np.interp(u, *s_il)
    sv_up = s_out_u + 0.55 * t_up * (s_in_u - s_out_u)
    sv_lo = s_out_l - 0.5 * t_lo * (s_out_l - s_in_l)
    s_v = np.where(up, sv_up, sv_lo)
    sx = smid[0] + u * shalf * su[0] + s_v * sv[0]
    sy = smid[1] + u * shalf * su[1] + s_v * sv[1]
    lips = cv2.remap(source, sx.astype(np.float32), sy.astype(np.float32), cv2.INTER_LANCZOS4,
                     borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    # specular glints on glossy lips, stretched with the lip, became tall bright bars that read as tooth edges
    # (sadtalker__art_16): light above the lip's local colour goes where the lip is stretched by 1.5x or more
    # (the broad sheen, in the local colour, stays)
    stretch = np.where(up, (seam - vo_u) / np.maximum(0.55 * (s_in_u - s_out_u), 0.5),
                       (vo_l - seam) / np.maximum(0.5 * (s_out_l - s_in_l), 0.5))
    local = cv2.GaussianBlur(lips, (0, 0), max(1.0, 0.15 * dhalf))
    glint = np.clip((lips @ LUMA - local @ LUMA - 6.0) / 10.0, 0.0, 1.0)        # clearly lighter than around it
    lips -= np.maximum(lips - local, 0) * (glint * np.clip((stretch - 1.0) / 0.5, 0.0, 1.0))[..., None]
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [np.round((outer - [x0, y0]) * 4).astype(np.int32)], 255, cv2.LINE_AA, shift=2)
    alpha = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), 0.8)
    # the seam: a thin shadow where the lips meet, fading towards the corners
    d = np.abs(v - seam)
    width = max(0.6, 0.012 * dhalf)
    lips *= (1.0 - 0.35 * np.exp(-(d / width) ** 2) * np.clip(1.2 - np.abs(u), 0, 1))[..., None]
    out = image.copy()
    region = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.clip(region + alpha[..., None] * (lips - region) + 0.5, 0, 255).astype(np.uint8)
    return out


def _upper_lip_height(profiles) -> float:
    """Median height of the upper lip over the middle half of the mouth, from its (outer, inner) profiles (px)."""
    u = np.linspace(-0.5, 0.5, 21)
    return float(np.median(np.interp(u, *profiles[1]) - np.interp(u, *profiles[0])))


def _lower_lip_outside(image: np.ndarray, lm: np.ndarray) -> bool:
    """Whether an open mouth's lower lip lies below mediapipe's outer lower-lip contour rather than inside it:
    on a wide "O" the mesh puts that contour on the lip's inner edge, and the band inside it is teeth, tongue
    and cavity. Decided by colour (CIELAB): the band inside the contour should look like the upper lip; when a
    band of the upper lip's height just outside it looks much more like the upper lip, the lip is there."""
    (mid, u_ax, v_ax, half), (s_ou, s_iu, s_il, s_ol) = _lip_profiles(lm)
    u = np.linspace(-0.5, 0.5, 21)[:, None]
    t = np.linspace(0.1, 0.9, 9)[None, :]
    out_u, in_u = np.interp(u, *s_ou), np.interp(u, *s_iu)
    out_l, in_l = np.interp(u, *s_ol), np.interp(u, *s_il)
    thick = _upper_lip_height((s_ou, s_iu))
    if thick <= 1.0:
        return False
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)

    def colour(v):
        x, y = mid[0] + u * half * u_ax[0] + v * v_ax[0], mid[1] + u * half * u_ax[1] + v * v_ax[1]
        return cv2.remap(lab, x.astype(np.float32), y.astype(np.float32), cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE).reshape(-1, 3).mean(0)
    upper = colour(out_u + t * 0.55 * (in_u - out_u))
    inside, outside = colour(out_l - t * 0.5 * (out_l - in_l)), colour(out_l + t * 1.1 * thick)
    return bool(np.linalg.norm(outside - upper) < 0.5 * np.linalg.norm(inside - upper))


def _lower_lip_moved_out(lm: np.ndarray) -> np.ndarray:
    """Landmarks with the lower lip put where it is on a wide "O" (see `_lower_lip_outside`): the inner lower
    contour on mediapipe's outer one, the outer contour the upper lip's height x 1.1 below it, and the
    landmarks between them spread over that band (the corners stay)."""
    (mid, u_ax, v_ax, half), (s_ou, s_iu, s_il, s_ol) = _lip_profiles(lm)
    out = lm.copy()
    q = lm[:468, :2] - mid
    u, v = q @ u_ax / half, q @ v_ax
    inner, outer = np.interp(u, *s_il), np.interp(u, *s_ol)
    thick = 1.1 * _upper_lip_height((s_ou, s_iu))
    band = (np.abs(u) < 0.999) & (v >= inner - 0.5) & (v <= outer + 0.5) & (outer - inner > 1.0)
    frac = np.clip((v - inner) / np.maximum(outer - inner, 1e-6), 0, 1)
    taper = np.clip((1 - np.abs(u)) / 0.25, 0, 1)            # nothing moves at the corners
    new_v = outer + frac * thick
    out[:468, :2] += np.where(band, taper * (new_v - v), 0.0)[:, None] * v_ax[None, :]
    return out


def own_teeth_colour(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
    """The colour of the teeth an open-mouth portrait shows (RGB float, lit side), or None when too few show.

    Teeth are the light, unsaturated pixels between the inner lips (1 px in from them): luminance at least
    0.55x the brightest 5% there (and >= 60), chroma below 0.3 of their brightness (lips are 0.35-0.9). They
    must cover a tenth of the opening (and 20 px); the colour is the per-channel median of the lighter half of
    them, because the painted teeth are shaded down from it (`Renderer._paint_teeth`)."""
    hole = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(hole, [np.round(landmarks[LIPS_INNER_UPPER + LIPS_INNER_LOWER[::-1][1:-1], :2]).astype(np.int32)], 1)
    px = image[cv2.erode(hole, np.ones((3, 3), np.uint8)) > 0].astype(np.float32)
    if len(px) < 20:
        return None
    lum = px @ LUMA
    chroma = (px.max(1) - px.min(1)) / np.maximum(px.max(1), 1.0)
    teeth = (lum >= max(0.55 * float(np.percentile(lum, 95)), 60.0)) & (chroma < 0.3)
    if teeth.sum() < max(20, 0.1 * len(px)):
        return None
    lit = px[teeth][lum[teeth] >= np.median(lum[teeth])]
    return np.median(lit, 0)


def _taper_lip_corners(lm: np.ndarray, upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """Closed-mouth landmarks whose lips thin towards the corners as closed lips do. A closed wide "O"
    (liveportrait__d19) kept the O's ring at the corners: lips thicker there than in the middle, a mouth with
    square ends. A lip (mask `upper` / `lower` over the landmarks) whose thickness at 0.9 of the way to the
    corners is over 0.8x its middle's is brought, point by point along its depth, to at most the middle's
    thickness x sqrt(1 - u^2) (at least a quarter of it), u = 0 in the middle and 1 at the corners; closed lips
    in photos taper like that (anitalker__girl: 0.33x at 0.9). Other lips are returned as they are."""
    (mid, u_ax, v_ax, half), (s_ou, s_iu, s_il, s_ol) = _lip_profiles(lm)
    out = lm.copy()
    q = lm[:, :2] - mid
    u, v = q @ u_ax / half, q @ v_ax
    for mask, outer, inner in ((upper, s_ou, s_iu), (lower, s_ol, s_il)):
        def thickness(at: np.ndarray) -> np.ndarray:
            return np.abs(np.interp(at, *outer) - np.interp(at, *inner))
        middle = float(np.median(thickness(np.linspace(-0.3, 0.3, 7))))
        if middle <= 1.0 or thickness(np.array([-0.9, 0.9])).mean() <= 0.8 * middle:
            continue
        v_in = np.interp(u, *inner)
        have = np.maximum(thickness(u), 1e-6)
        want = np.minimum(have, middle * np.maximum(np.sqrt(np.clip(1 - u ** 2, 0, 1)), 0.25))
        out[mask, :2] += ((v_in + (v - v_in) * want / have - v)[mask])[:, None] * v_ax[None, :]
    return out


def close_mouth(portrait: Portrait) -> Portrait:
    """The closed-mouth version of an open-mouth portrait, built once per portrait.

    The jaw turns up by as much as it is open (60% of the lip gap at the centre, the rest is the lips), then
    a lip press brings the lips together; one warp of the portrait moves the face to those landmarks, and the
    lips are redrawn from the open lips, stretched to meet (`_refill_lips`), so no tooth or cavity pixel
    survives. Every frame is rendered from this version, so the mouth can close on p/b/m; when it opens, the
    renderer paints the mouth interior as for any closed-mouth portrait, with teeth in the colour the original
    showed (`own_teeth_colour`). On a wide "O" whose lower lip mediapipe placed on the
    cavity's edge, the lower lip's landmarks are first moved onto the lip (`_lower_lip_moved_out`), and the jaw
    closes more than 60% of the gap where the lips would otherwise stretch (`CLOSE_LIP_SHARE`).
    """
    if _lower_lip_outside(portrait.image, portrait.landmarks.astype(np.float64)):
        portrait = replace(portrait, landmarks=_lower_lip_moved_out(
            portrait.landmarks.astype(np.float64)).astype(portrait.landmarks.dtype))
    rig = build_rig(portrait)
    S = portrait.size
    f = rig.frontal
    gap = f[LIP_MID_LOWER, 1] - f[LIP_MID_UPPER, 1]
    lips = (f[LIP_MID_UPPER, 1] - f[LIP_OUTER_TOP, 1]) + (f[LIP_OUTER_BOTTOM, 1] - f[LIP_MID_LOWER, 1])
    # the jaw closes 60% of the gap, more where the lips would otherwise stretch by over CLOSE_LIP_SHARE of
    # their own height (a wide "O": a tall band of lip under the seam)
    jaw_share = max(0.6, 1.0 - CLOSE_LIP_SHARE * lips / gap) if gap > 1e-6 else 0.0
    lift = deform(rig, {"jaw_open": -0.1})[LIP_MID_LOWER, 1] - f[LIP_MID_LOWER, 1]   # lower lip per -0.1 of jaw
    jaw = float(np.clip(0.1 * jaw_share * gap / lift, -1.5, 0.0)) if lift < -1e-6 else 0.0
    closed = _taper_lip_corners(rig.pose_points(deform(rig, {"jaw_open": jaw, "lip_press": 1.0}), 0, 0, 0, 0, 0, 1, S),
                                rig.upper_lip, rig.lower_lip)
    mesh = build_mesh(portrait.landmarks, rig.face_width, S)
    flow = flow_field(mesh, *mesh.targets(closed), S)
    image = portrait.image
    if flow is not None:
        mx, my = flow_maps(*flow)
        image = remap(image, mx, my, flow[2], cv2.INTER_LANCZOS4)    # once per portrait: the sharpest filter
    image = _refill_lips(image, portrait.image, portrait.landmarks.astype(np.float64), closed)
    lm = portrait.landmarks.copy()
    lm[:468] = closed[:468]
    return replace(portrait, image=image, landmarks=lm.astype(np.float32), mouth_open=0.0,
                   key=portrait.key + ":closed")
