"""The 3D face rig: how facial actions and head pose move the 478 face-mesh landmarks.

Everything is computed in the head's *frontal frame* (the portrait's landmarks rotated so the face looks
straight at the camera, origin at the head pivot; x = towards the subject's left = image right, y = down,
z = away from the camera; units = source pixels). Most actions are linear displacement fields over the
landmarks, precomputed once per portrait; the jaw is a rotation about a pivot at ear height well behind the
chin; lip press closes whatever gap the jaw left; finally the head pose rotates, scales and moves the result.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .portrait import (BROW_L, BROW_R, CHEEK_L, CHEEK_R, CHIN, EYE_L_LOWER, EYE_L_UPPER, EYE_R_LOWER,
                       EYE_R_UPPER, INNER_CORNERS, LIP_MID_LOWER, LIP_MID_UPPER, LIPS_INNER_LOWER, LIPS_INNER_UPPER,
                       LIPS_OUTER_LOWER, LIPS_OUTER_UPPER, MOUTH_CORNERS, NOSE_BASE, Portrait, rotation_matrix)

JAW_MAX_DEG = 16.0   # jaw rotation at jaw_open = 1
CORNER_JAW = 0.4     # share of the jaw's rotation that the mouth corners follow
CHEEK_APPLE_R, CHEEK_APPLE_L = 50, 280   # mediapipe landmarks on the cheekbones' apples (image left, right)


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _inside(poly: np.ndarray, pts: np.ndarray, tol: float) -> np.ndarray:
    """Which 2D points lie inside (or within `tol` px of) the polygon."""
    contour = poly.astype(np.float32).reshape(-1, 1, 2)
    return np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), True) >= -tol for x, y in pts])


@dataclass(frozen=True)
class FaceRig:
    """Per-portrait rig. frontal: (478, 3) landmarks in the frontal frame; bases: action -> (478, 3)."""
    frontal: np.ndarray
    rotation: np.ndarray
    center: np.ndarray
    bases: dict
    jaw_weight: np.ndarray
    jaw_pivot: tuple[float, float]
    upper_lip: np.ndarray   # bool (478,)
    lower_lip: np.ndarray   # bool (478,)
    face_width: float
    mouth_width: float
    iod: float              # distance between the eye centres, pixels

    def pose_points(self, pts: np.ndarray, yaw: float, pitch: float, roll: float,
                    tx: float, ty: float, scale: float, size: int) -> np.ndarray:
        """Frontal-frame points (N, 3) -> camera pixels (N, 3) under a head pose relative to the portrait's."""
        r = self.rotation @ rotation_matrix(yaw, pitch, roll)
        out = (scale * pts) @ r.T + self.center
        out[:, 0] += tx * size
        out[:, 1] += ty * size
        return out


def build_rig(p: Portrait) -> FaceRig:
    """Precompute the frontal landmarks and every action's displacement field for a portrait."""
    lm = p.landmarks.astype(np.float64)
    F = (lm - p.center) @ p.rotation          # frontal frame: R^T (lm - c)
    x, y = F[:, 0], F[:, 1]
    W = float(np.linalg.norm(F[CHEEK_L, :2] - F[CHEEK_R, :2]))
    Wm = float(np.linalg.norm(F[MOUTH_CORNERS[1], :2] - F[MOUTH_CORNERS[0], :2]))
    eye_r = F[EYE_R_UPPER + EYE_R_LOWER].mean(0)
    eye_l = F[EYE_L_UPPER + EYE_L_LOWER].mean(0)
    iod = float(np.linalg.norm(eye_l[:2] - eye_r[:2]))
    mc = (F[LIP_MID_UPPER] + F[LIP_MID_LOWER]) / 2    # mouth centre
    corners = {MOUTH_CORNERS[0]: -1.0, MOUTH_CORNERS[1]: 1.0}

    # lips: classify every landmark as upper lip / lower lip by the lip polygons (frontal 2D)
    up_poly = F[LIPS_OUTER_UPPER + LIPS_INNER_UPPER[::-1], :2]
    lo_poly = F[LIPS_OUTER_LOWER + LIPS_INNER_LOWER[::-1], :2]
    upper = _inside(up_poly, F[:, :2], 1.0)
    lower = _inside(lo_poly, F[:, :2], 1.0) & ~upper
    for i in LIPS_INNER_LOWER[1:-1] + LIPS_OUTER_LOWER[1:-1]:
        lower[i], upper[i] = True, False
    for i in MOUTH_CORNERS + INNER_CORNERS:
        upper[i] = lower[i] = False
    # 0 at the mouth centre, 1 at the corners, measured on each side to its own corner: on a 3/4 view the
    # frontalised mouth centre sits off the corners' midpoint (art_15: 0.75 at one corner, 1.04 at the other)
    def sided(corner_ids) -> np.ndarray:
        x_c = np.sort(F[list(corner_ids), 0])
        return np.where(x < mc[0], (mc[0] - x) / max(mc[0] - x_c[0], 1e-6), (x - mc[0]) / max(x_c[1] - mc[0], 1e-6))
    half = sided(MOUTH_CORNERS)
    half_in = np.clip(sided(INNER_CORNERS), 0.0, 1.0)  # the same to the inner corners, where the opening ends
    # depth into each lip: 0 on its inner (aperture) edge, 1 on its outer contour; thinning or everting a lip
    # moves the outer contour, the aperture between the lips stays where the jaw and lip drop/raise put it
    depth = np.zeros(len(F))
    for mask, inner_ids, outer_ids in ((upper, LIPS_INNER_UPPER, LIPS_OUTER_UPPER),
                                       (lower, LIPS_INNER_LOWER, LIPS_OUTER_LOWER)):
        y_in = np.interp(x[mask], *_sorted_xy(F, inner_ids))
        y_out = np.interp(x[mask], *_sorted_xy(F, outer_ids))
        span = np.where(np.abs(y_out - y_in) > 1e-6, y_out - y_in, 1e-6)
        depth[mask] = np.clip((y[mask] - y_in) / span, 0.0, 1.0)
    centre_w = np.clip(1.0 - 0.55 * half ** 2, 0.35, 1.0)

    # jaw weights: lower lip 1 at the centre -> 0.4 at the corners, which move down with 0.4 of the jaw; the
    # upper lip 0, except its last fifth or so, which bends down to the corners so the opening tapers to them
    # (with the upper lip fixed up to the corners, an open mouth ended in a blunt vertical edge with a wedge
    # of stretched skin between it and the lip corner); chin and lower face 1, fading towards the sides of
    # the jaw; nothing above the nose base
    y_nb, y_mc, y_chin = F[NOSE_BASE, 1], F[list(MOUTH_CORNERS), 1].mean(), F[CHIN, 1]
    vertical = _smoothstep(y_nb + 0.35 * (y_mc - y_nb), y_mc + 0.35 * (y_chin - y_mc), y)
    lateral = 1.0 - 0.6 * _smoothstep(0.2 * W, 0.55 * W, np.abs(x - mc[0]))
    jaw = vertical * lateral
    jaw[upper] = CORNER_JAW * _smoothstep(0.55, 1.0, half_in[upper])
    jaw[lower] = 1.0 - (1.0 - CORNER_JAW) * half_in[lower] ** 2
    for i in MOUTH_CORNERS + INNER_CORNERS:
        jaw[i] = CORNER_JAW
    jaw[y < y_nb] = 0.0
    pivot = (float((F[CHEEK_R, 1] + F[CHEEK_L, 1]) / 2), float(F[CHIN, 2] + 0.6 * W))

    def gauss(center: np.ndarray, sigma: float) -> np.ndarray:
        return np.exp(-np.sum((F[:, :2] - center[:2]) ** 2, 1) / (2 * sigma ** 2))

    lip_region = gauss(mc, 0.55 * Wm) * (y > y_nb)
    corner_w = {i: gauss(F[i], 0.35 * Wm) * (y > y_nb - 0.1 * W) for i in corners}
    bases: dict[str, np.ndarray] = {}
    D = np.zeros_like(F)
    for i, side in corners.items():                    # smile: corners up and out, cheeks follow
        D[:, 0] += side * 0.10 * Wm * corner_w[i]
        D[:, 1] -= 0.11 * Wm * corner_w[i]
        D[:, 2] -= 0.02 * Wm * corner_w[i]
    bases["smile"] = D
    D = np.zeros_like(F)                               # stretch: corners out, lips thinner (outer contours in)
    for i, side in corners.items():
        D[:, 0] += side * 0.11 * Wm * corner_w[i]
    D[upper, 1] += 0.02 * Wm * depth[upper]
    D[lower, 1] -= 0.02 * Wm * depth[lower]
    bases["lip_stretch"] = D
    # funnel (rounding): lips gather and push forward, the outer contours evert; the aperture gets narrower
    # and rounder but not taller (rounded /u/ /o/ /w/ do not open the lips). Measured on 28 real talking
    # videos (`evaluate --real`, predicted lip gap vs the real speaker's): with the funnel opening the lips and
    # the stretch closing them, r 0.33; with both acting on the outer contours only, 0.36
    D = np.zeros_like(F)
    D[:, 0] = -(x - mc[0]) * 0.30 * lip_region
    D[:, 2] = -0.12 * Wm * lip_region
    D[upper, 1] -= 0.05 * Wm * centre_w[upper] * depth[upper]
    D[lower, 1] += 0.06 * Wm * centre_w[lower] * depth[lower]
    bases["lip_funnel"] = D
    D = np.zeros_like(F)                               # upper lip raise (and the skin just above it)
    above = (y > y_nb) & (y < y_mc) & ~upper & ~lower
    D[upper, 1] -= 0.09 * Wm * centre_w[upper]
    D[above, 1] -= 0.04 * Wm * lip_region[above]
    bases["upper_lip_raise"] = D
    D = np.zeros_like(F)                               # lower lip drop
    D[lower, 1] += 0.08 * Wm * centre_w[lower]
    bases["lower_lip_drop"] = D
    D = np.zeros_like(F)                               # lower lip tuck (f, v): up and back under the teeth
    D[lower, 1] -= 0.07 * Wm * centre_w[lower]
    D[lower, 2] += 0.06 * Wm
    bases["lower_lip_tuck"] = D
    brow_pts = F[BROW_R + BROW_L]
    y_brow = brow_pts[:, 1].mean()
    brow_w = np.zeros(len(F))
    for b in BROW_R + BROW_L:
        brow_w = np.maximum(brow_w, gauss(F[b], 0.10 * W))
    eye_y = (eye_r[1] + eye_l[1]) / 2
    brow_w = brow_w * (y < eye_y)                     # brows and forehead only, never the eyes
    D = np.zeros_like(F)
    D[:, 1] = -0.06 * W * brow_w
    bases["brow_raise_up"] = D
    D = np.zeros_like(F)
    D[:, 1] = 0.035 * W * brow_w
    D[:, 0] = -np.sign(x - mc[0]) * 0.02 * W * brow_w * _smoothstep(0.3 * W, 0.05 * W, np.abs(x - mc[0]))
    bases["brow_raise_down"] = D

    for name, upper_ids, lower_ids in (("blink_r", EYE_R_UPPER, EYE_R_LOWER), ("blink_l", EYE_L_UPPER, EYE_L_LOWER)):
        bases[name] = _blink_basis(F, upper_ids, lower_ids, y_brow)

    # cheek raise: the cheeks' apples lift and come forward, pushing the lower lids up a little (the
    # "smiling eyes"); the lips and the upper lids do not move with them
    cheeks = np.maximum(gauss(F[CHEEK_APPLE_R], 0.14 * W), gauss(F[CHEEK_APPLE_L], 0.14 * W))
    cheeks *= _smoothstep(eye_y - 0.02 * W, eye_y + 0.08 * W, y)
    cheeks[upper | lower] *= 0.25
    D = np.zeros_like(F)
    D[:, 1] = -0.035 * W * cheeks
    D[:, 2] = -0.012 * W * cheeks
    for ids, up_ids in ((EYE_R_LOWER, EYE_R_UPPER), (EYE_L_LOWER, EYE_L_UPPER)):
        opening = F[ids[1:-1], 1] - np.interp(F[ids[1:-1], 0], *_sorted_xy(F, up_ids))
        D[ids[1:-1], 1] = np.minimum(D[ids[1:-1], 1], -0.12 * np.maximum(opening, 0))
    bases["cheek_raise"] = D
    # lid tension: + the lids narrow (upper lid down a quarter of the opening, lower lid up), - they widen
    # (the upper lid lifts, as in surprise); built from the blink fields of both eyes
    both = bases["blink_r"] + bases["blink_l"]
    lower_only = np.zeros_like(F)
    lower_only[EYE_R_LOWER + EYE_L_LOWER] = both[EYE_R_LOWER + EYE_L_LOWER]
    bases["lid_narrow"] = 0.25 * both + 0.6 * lower_only
    bases["lid_widen"] = -0.16 * (both - lower_only)

    return FaceRig(frontal=F, rotation=p.rotation.copy(), center=p.center.copy(), bases=bases,
                   jaw_weight=jaw, jaw_pivot=pivot, upper_lip=upper, lower_lip=lower, face_width=W,
                   mouth_width=Wm, iod=iod)


def _sorted_xy(F: np.ndarray, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """x and y of landmarks `ids` ordered by x (for np.interp along a contour)."""
    o = sorted(ids, key=lambda i: F[i, 0])
    return F[o, 0], F[o, 1]


def _blink_basis(F: np.ndarray, upper_ids: list[int], lower_ids: list[int], y_brow: float) -> np.ndarray:
    """Displacement of a full blink: the upper lid comes down 85% of the opening, the lower lid up 15%;
    skin between lid and brow follows with a falloff (so the lid skin stretches over the eye)."""
    D = np.zeros_like(F)
    ux, uy = F[upper_ids, 0], F[upper_ids, 1]
    lo = sorted(lower_ids, key=lambda i: F[i, 0])
    lx, ly = F[lo, 0], F[lo, 1]
    gap_u = np.interp(ux, lx, ly) - uy
    for k, i in enumerate(upper_ids[1:-1], 1):
        D[i, 1] = 0.85 * max(gap_u[k], 0.0)
    up_sorted = sorted(upper_ids, key=lambda i: F[i, 0])
    for i in lower_ids[1:-1]:
        gap = F[i, 1] - np.interp(F[i, 0], F[up_sorted, 0], F[up_sorted, 1])
        D[i, 1] = -0.15 * max(gap, 0.0)
    # skin above the lid: fraction of the lid's motion, fading to 0 at the brow
    x0, x1 = F[upper_ids, 0].min(), F[upper_ids, 0].max()
    lid_y = np.interp(F[:, 0], F[up_sorted, 0], F[up_sorted, 1])
    lid_dy = np.interp(F[:, 0], F[up_sorted, 0], D[up_sorted, 1])
    span = np.maximum(lid_y - y_brow, 1.0)
    t = (lid_y - F[:, 1]) / span                     # 0 at the lid, 1 at the brow
    region = (F[:, 0] > x0 - 0.1 * (x1 - x0)) & (F[:, 0] < x1 + 0.1 * (x1 - x0)) & (t > 0.02) & (t < 1)
    region[upper_ids] = False
    D[region, 1] = np.maximum(D[region, 1], lid_dy[region] * 0.55 * (1 - t[region]) ** 1.5)
    return D


def deform(rig: FaceRig, f: dict[str, float]) -> np.ndarray:
    """Apply facial actions (dict of motion parameters) in the frontal frame: (478, 3) frontal points."""
    P = rig.frontal.copy()
    b = rig.bases
    for name in ("smile", "lip_stretch", "lip_funnel", "upper_lip_raise", "lower_lip_drop", "lower_lip_tuck",
                 "blink_l", "blink_r"):
        a = f.get(name, 0.0)
        if a:
            P += a * b[name]
    cheek = f.get("cheek_raise", 0.0)
    if cheek:
        P += cheek * b["cheek_raise"]
    lids = f.get("lid_tension", 0.0)
    if lids > 0:
        P += lids * b["lid_narrow"]
    elif lids < 0:
        P += -lids * b["lid_widen"]
    brow = f.get("brow_raise", 0.0)
    if brow > 0:
        P += brow * b["brow_raise_up"]
    elif brow < 0:
        P += -brow * b["brow_raise_down"]
    # jaw: rotate about the x axis through the pivot (y_p, z_p), by weight x angle
    angle = np.radians(JAW_MAX_DEG * f.get("jaw_open", 0.0)) * rig.jaw_weight
    if np.any(angle):
        yp, zp = rig.jaw_pivot
        dy, dz = P[:, 1] - yp, P[:, 2] - zp
        c, s = np.cos(angle), np.sin(angle)
        P[:, 1] = yp + c * dy - s * dz
        P[:, 2] = zp + s * dy + c * dz
    press = f.get("lip_press", 0.0)
    if press > 0:
        up = sorted(LIPS_INNER_UPPER, key=lambda i: P[i, 0])
        lo = sorted(LIPS_INNER_LOWER, key=lambda i: P[i, 0])
        gap = np.interp(P[:, 0], P[lo, 0], P[lo, 1]) - np.interp(P[:, 0], P[up, 0], P[up, 1])
        gap = np.maximum(gap, 0.0)
        P[rig.lower_lip, 1] -= press * 0.7 * gap[rig.lower_lip]
        P[rig.upper_lip, 1] += press * 0.3 * gap[rig.upper_lip]
    return P
