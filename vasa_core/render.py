"""The renderer: a 3D-aware mesh warp of the portrait, plus a mouth interior and moving irises.

Per frame:
  1. the face rig moves the 478 landmarks (facial actions, jaw, head pose)         -> `vasa_core.face`
  2. a triangle mesh over the landmarks, a ring at 1.25x the face oval (follows half of the oval's
     motion), a fixed ring at 1.75x and fixed image-border points turns that motion into one dense
     backward flow field (piecewise affine; triangles drawn far-to-near so folds hide correctly)
  3. one remap of the portrait (whose irises were painted out once) through that flow field
  4. irises composited at their gaze position, clipped by the eyelids
  5. a mouth interior (cavity, upper and lower teeth, tongue) composited where the lips part, coloured,
     blurred and grained like the portrait; an open-mouth portrait's teeth are painted in their own colour.
Only the triangles that move are rasterised, and only their bounding box is remapped.

The mesh warp (steps 2-3) lives in `vasa_core.warp`, the once-per-portrait mouth preparation (closing an
open-mouth portrait, its own teeth colour) in `vasa_core.lips`; this module owns the per-portrait state and
composites the eyes, lids and mouth interior.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .face import FaceRig, build_rig, deform
from .motion import PARAMS
from .lips import LUMA, _lip_profiles, close_mouth, own_teeth_colour
from .warp import build_mesh, flow_field, flow_maps, remap, _fine_maps
from .portrait import (EYE_L_LOWER, EYE_L_UPPER, EYE_R_LOWER, EYE_R_UPPER, IRIS_L, IRIS_R,
                       LIP_MID_LOWER, LIP_MID_UPPER, LIPS_INNER_LOWER, LIPS_INNER_UPPER,
                       LIPS_OUTER_LOWER, LIPS_OUTER_UPPER, Portrait)

# bump with any change to the pixels the renderer draws: the detector's shipped weights record the version
# they were trained on, and tests/test_detector.py fails until `python -m tools.evals.train` re-trains them
RENDERER_VERSION = "2026-12-07.9"
LASH_WIDTH = 0.025       # a closed eye's lash line: thickness / eye width
LASH_OPACITY = 0.7      # ... and how much of the lash colour it lays over the lid
EYE_RADIUS_IOD = 0.19   # eyeball radius / inter-ocular distance (12 mm / 63 mm)
OPEN_MOUTH = 0.02       # inner-lip gap / face width above which a portrait's mouth counts as open
# turning towards the camera (degrees of relative yaw allowed, by the portrait's own |yaw|): measured by eye on
# sadtalker__art_15 (yaw -24: the nose balloons past ~5 degrees) and frontal portraits (fine at 15)
REVEAL_FRONTAL_DEG, REVEAL_MIN_DEG = 15.0, 5.0
REVEAL_FREE_UP_TO_DEG, REVEAL_HIDDEN_FROM_DEG = 8.0, 22.0
# the still background plate (Renderer._prepare_background): the person's matte above BG_MATTE_HIGH is the
# person, below BG_MATTE_LOW the background; a band this many face widths inside the outline is inpainted
BG_MATTE_LOW, BG_MATTE_HIGH = 0.2, 0.5
BG_BAND_FACE_WIDTHS = 0.12
MOUTH_OUTLINE_POINTS = 24   # points per lip edge of the mouth hole's outline (sampled from the smooth curves)
MOUTH_EDGE_PX = 1.5         # width of the hole's soft edge at 512 px (scales with the output size)
MESH_LAYOUT_JAW = 0.5   # the jaw opening of the face the warp mesh's triangles are laid out on
LIP_FULL_SATURATION = 0.35   # lip saturation (chroma / max channel) from which the mouth inside is in full colour


def reveal_yaw_limit(portrait_yaw: float) -> float:
    """Degrees a portrait may turn towards the camera (see `Renderer.within_view`): REVEAL_FRONTAL_DEG for a
    frontal or slightly turned face (nothing is hidden behind the nose), down to REVEAL_MIN_DEG from
    REVEAL_HIDDEN_FROM_DEG of yaw on (a 3/4 view, whose far cheek the nose hides)."""
    a = abs(float(portrait_yaw))
    t = float(np.clip((a - REVEAL_FREE_UP_TO_DEG) / (REVEAL_HIDDEN_FROM_DEG - REVEAL_FREE_UP_TO_DEG), 0.0, 1.0))
    return REVEAL_FRONTAL_DEG + t * (REVEAL_MIN_DEG - REVEAL_FRONTAL_DEG)


def pick_device(device: str = "auto") -> str:
    """'cpu' or 'cuda': 'auto' takes the GPU when torch sees one."""
    if device == "auto":
        try:
            import torch
            return "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:
            return "cpu"
    return device


@dataclass(frozen=True)
class _Eye:
    upper: list
    lower: list
    iris: list
    patch: np.ndarray      # (h, w, 3) uint8 iris texture, lid-covered parts filled in
    alpha: np.ndarray      # (h, w) float32 disc
    offset: np.ndarray     # iris centre - eye-contour centre, source pixels
    radius: float
    corner: np.ndarray     # the patch's top-left pixel - iris centre, source pixels (so at rest it lands on itself)


def _smooth_profile(knots_u: np.ndarray, knots_v: np.ndarray):
    """A lip edge v(u) through its landmarks (u increasing): monotone cubic (PCHIP: no overshoot past the
    landmarks), held flat beyond the ends; two or fewer distinct points: straight."""
    from scipy.interpolate import PchipInterpolator
    uk, first = np.unique(np.asarray(knots_u, np.float64), return_index=True)
    vk = np.asarray(knots_v, np.float64)[first]
    if len(uk) < 3:
        return lambda u: np.interp(u, uk, vk)
    curve = PchipInterpolator(uk, vk)
    return lambda u: curve(np.clip(u, uk[0], uk[-1]))


def _lid_weight(blink: float) -> float:
    """How much of an eye is drawn from its closed-lid texture (0 open .. 1 shut) at a blink amount: none up
    to 0.7, all from 0.95, smoothstep between. Up to 0.7 the warp alone closes the eye (the lid comes down over
    the iris, which is clipped by it); a cross-fade there showed a faint iris through the lid (it began at
    0.35 until 2026-12-02), so it is kept to the last narrow slit."""
    w = float(np.clip((blink - 0.7) / 0.25, 0, 1))
    return w * w * (3 - 2 * w)

class Renderer:
    """Renders frames of one portrait under per-frame motion parameters."""

    def __init__(self, portrait: Portrait, device: str = "auto", engine: str | None = None):
        """device: 'auto' | 'cpu' | 'cuda'; engine: 'cv2' or 'torch' for the flow field and remap
        (default: torch on a GPU, OpenCV on the CPU, which is faster there)."""
        # an open-mouth portrait is rendered from its closed-mouth version; the colour of the teeth it showed
        # is kept for the painted ones
        self.opened_source = portrait.mouth_open > OPEN_MOUTH
        self.own_teeth = None
        if self.opened_source:
            self.own_teeth = own_teeth_colour(portrait.image, portrait.landmarks)
            portrait = close_mouth(portrait)
        self.portrait = portrait
        self.size = S = portrait.size
        self.device = pick_device(device)
        self.engine = engine or ("cv2" if self.device == "cpu" else "torch")
        self.rig: FaceRig = build_rig(portrait)
        W = self.rig.face_width
        self.reveal_yaw_deg = reveal_yaw_limit(portrait.yaw)

        # triangles laid out on the face with its mouth open (see build_mesh)
        opened = self.rig.pose_points(deform(self.rig, {"jaw_open": MESH_LAYOUT_JAW}), 0, 0, 0, 0, 0, 1, S)
        layout = portrait.landmarks.copy()
        layout[:468] = opened[:468]
        self.mesh = build_mesh(portrait.landmarks, W, S, layout)
        lips = set(LIPS_OUTER_UPPER + LIPS_OUTER_LOWER)
        self._mouth_vertices = np.array([k for k, i in enumerate(self.mesh.sel) if i in lips])

        # --- appearance prepared once: irises painted out of the source; iris textures kept aside
        self.eyes = [self._prepare_eye(EYE_R_UPPER, EYE_R_LOWER, IRIS_R), self._prepare_eye(EYE_L_UPPER, EYE_L_LOWER, IRIS_L)]
        self.source = self._paint_out_irises()
        self.person, self.plate = self._prepare_background()
        self.lids = [self._prepare_lid(e) for e in self.eyes]
        self.lash_colours = [self._lash_colour(e) for e in self.eyes]
        self._prepare_mouth()
        self._grid_x, self._grid_y = np.meshgrid(np.arange(S, dtype=np.float32), np.arange(S, dtype=np.float32))
        self._torch = None
        if self.engine == "torch":
            import torch
            self._torch = torch
            self._src_t = torch.from_numpy(self.source).to(self.device).permute(2, 0, 1)[None].float()

    # ----------------------------------------------------------------------------------------------------
    def _prepare_eye(self, upper, lower, iris) -> _Eye:
        lm = self.portrait.landmarks.astype(np.float64)
        img = self.portrait.image
        centre = lm[iris[0], :2]
        radius = float(np.mean(np.linalg.norm(lm[iris[1:], :2] - centre, axis=1)))
        r = int(np.ceil(radius * 1.15)) + 2
        x0, y0 = int(round(centre[0])) - r, int(round(centre[1])) - r
        patch = img[max(y0, 0):y0 + 2 * r + 1, max(x0, 0):x0 + 2 * r + 1].copy()
        h, w = patch.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w]
        disc = ((xx + max(x0, 0) - centre[0]) ** 2 + (yy + max(y0, 0) - centre[1]) ** 2) <= radius ** 2
        opening = np.zeros(img.shape[:2], np.uint8)
        cv2.fillPoly(opening, [np.round(lm[upper + lower[::-1], :2]).astype(np.int32)], 1)
        visible = opening[max(y0, 0):y0 + 2 * r + 1, max(x0, 0):x0 + 2 * r + 1].astype(bool)
        visible = cv2.erode(visible.astype(np.uint8), np.ones((2, 2), np.uint8)).astype(bool)
        hidden = (disc & ~visible).astype(np.uint8)
        if hidden.any() and (disc & visible).any():
            patch = cv2.inpaint(patch, hidden, 2, cv2.INPAINT_TELEA)
        # opaque over the whole circle the iris was painted out of (radius + 1.5, `_paint_out_irises`): there the
        # patch holds the portrait's own pixels, so an unmoved eye is the portrait's eye, not a blend with the
        # painted-out one; the soft edge falls on the sclera outside it
        wide = ((xx + max(x0, 0) - centre[0]) ** 2 + (yy + max(y0, 0) - centre[1]) ** 2) <= (radius + 1.5) ** 2
        alpha = np.maximum(cv2.GaussianBlur(wide.astype(np.float32), (3, 3), 0.7), wide.astype(np.float32))
        eye_c = lm[upper + lower, :2].mean(0)
        offset = centre - eye_c
        corner = np.array([max(x0, 0), max(y0, 0)], np.float64) - centre
        return _Eye(upper, lower, iris, patch, alpha, offset, radius, corner)

    def _prepare_lid(self, e: _Eye) -> tuple[tuple[int, int, int, int], np.ndarray]:
        """A closed-eye texture for one eye, used while the eye closes: the opening filled with the lash
        line, so the squashed eye shows lashes under the stretched lid skin instead of a sliver of eye
        white (warping alone reads as a squint). Returns (box, patch) in source pixels."""
        lm = self.portrait.landmarks.astype(np.float64)
        up = sorted(e.upper, key=lambda i: lm[i, 0])
        lo = sorted(e.lower, key=lambda i: lm[i, 0])
        x0, x1 = lm[up, 0].min(), lm[up, 0].max()
        height = float(np.max(np.interp(lm[up, 0], lm[lo, 0], lm[lo, 1]) - lm[up, 1]))   # eye opening, px
        pad = int(np.ceil(height * 1.5)) + 3
        bx0, bx1 = max(int(x0) - 3, 0), min(int(np.ceil(x1)) + 4, self.size)
        by0 = max(int(lm[up, 1].min()) - 2 * pad, 0)
        by1 = min(int(np.ceil(lm[lo, 1].max())) + pad, self.size)
        patch = self.source[by0:by1, bx0:bx1].astype(np.float32)
        xs = np.arange(bx0, bx1, dtype=np.float64)
        top = np.interp(xs, lm[up, 0], lm[up, 1])
        bottom = np.interp(xs, lm[lo, 0], lm[lo, 1])
        yy = np.arange(by0, by1, dtype=np.float32)[:, None]
        # a closed eye is the upper lid pulled down over it: the band of lid skin above the lash line (2/3 of
        # the opening's height: more would pull down glasses frames that sit on the lid) is stretched down to
        # the lower lid, so the lashes end up where the lids meet and the opening shows skin (filling the whole
        # opening with the lash row read as a dark slit with a ragged edge once squashed)
        skin = max(3.0, 0.65 * height)
        start = top[None] - skin                                   # rows above are left as they are
        stop = bottom[None] + 2.5
        stretched = start + (yy - start) * skin / np.maximum(stop - start, 1e-3)
        inside = np.clip((yy - start) / 1.0, 0, 1) * np.clip((stop - yy) / 3.0, 0, 1)
        # ... between the eye's corners only, fading out over the last 15% of its width on each side: beyond
        # the corners the lid lines are clamped, so the stretch and the smoothing below ran on to the edges of
        # the box and left a rectangular seam there (visible at 3x on every closed eye)
        u = (xs - x0) / max(x1 - x0, 1.0)
        across = np.clip(np.minimum(u, 1.0 - u) / 0.15, 0.0, 1.0)
        inside = inside * (across * across * (3.0 - 2.0 * across))[None].astype(np.float32)
        map_y = (yy + inside * (stretched - yy) - by0).astype(np.float32)
        map_x = np.broadcast_to(np.arange(bx1 - bx0, dtype=np.float32)[None], map_y.shape).copy()
        closed = cv2.remap(patch, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        # stretching draws the lashes and creases out into vertical streaks: smooth the lid along its length
        sigma = max(1.0, 0.3 * height)
        smooth = cv2.GaussianBlur(closed, (2 * int(3 * sigma) + 1, 1), sigmaX=sigma, sigmaY=0.5)
        a = inside[..., None].astype(np.float32)
        return (bx0, by0, bx1, by1), closed + a * (smooth - closed)

    def _paint_out_irises(self) -> np.ndarray:
        lm = self.portrait.landmarks
        mask = np.zeros(self.portrait.image.shape[:2], np.uint8)
        for e in self.eyes:
            c = lm[e.iris[0], :2]
            cv2.circle(mask, (int(round(c[0])), int(round(c[1]))), int(np.ceil(e.radius + 1.5)), 1, -1)
            opening = np.zeros_like(mask)
            cv2.fillPoly(opening, [np.round(lm[e.upper + e.lower[::-1], :2]).astype(np.int32)], 1)
            mask &= cv2.dilate(opening, np.ones((3, 3), np.uint8))
        return cv2.inpaint(self.portrait.image, mask, 3, cv2.INPAINT_TELEA)

    def _prepare_background(self) -> tuple[np.ndarray, np.ndarray]:
        """The person's matte (S, S) float32 and a still background plate (S, S, 3) uint8: the portrait with a
        band just inside the person's outline filled in from the background around it (cv2.inpaint), wide
        enough for the largest head motion; elsewhere the portrait's own pixels (so a frame at rest is exact)."""
        m = self.portrait.person_mask.astype(np.float32)
        inside = (m > BG_MATTE_HIGH).astype(np.uint8)
        band = max(3, int(round(BG_BAND_FACE_WIDTHS * self.rig.face_width)))
        deep = cv2.erode(inside, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1)))
        fill = (inside > 0) & (deep == 0)
        plate = cv2.inpaint(self.source, fill.astype(np.uint8), 5, cv2.INPAINT_TELEA) if fill.any() else self.source
        return m, plate

    def _composite_background(self, out: np.ndarray, maps) -> None:
        """Keep what is behind the person still: the warped person (through its own warped matte) over the
        still plate, in the box that moved. The mesh's outer rings drag the background next to the head
        along (window blinds bent with it); the plate shows it where it was, and the strip the person
        uncovers from the inpainted band."""
        if maps is None:
            return
        x0, y0, mx, my = maps
        h, w = mx.shape
        m = cv2.remap(self.person, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        # matte -> opacity: 1 wherever the plate was filled (no blend with inpainted pixels at rest), 0 well
        # outside the person; between, the plate is the portrait itself, so a frame at rest is unchanged
        a = np.clip((m - BG_MATTE_LOW) * (1.0 / (BG_MATTE_HIGH - BG_MATTE_LOW)), 0.0, 1.0)
        region = out[y0:y0 + h, x0:x0 + w]
        # cv2.blendLinear: one pass in C over the box (numpy's float blend cost 3x as much here)
        region[:] = cv2.blendLinear(region, self.plate[y0:y0 + h, x0:x0 + w], a, 1.0 - a)

    def _prepare_mouth(self) -> None:
        """Colours, grain and sharpness of the portrait, used to paint the mouth interior."""
        p, lm = self.portrait, self.portrait.landmarks
        img = p.image.astype(np.float32)
        W = self.rig.face_width
        lips = np.zeros(img.shape[:2], np.uint8)
        cv2.fillPoly(lips, [np.round(lm[LIPS_OUTER_UPPER + LIPS_OUTER_LOWER[::-1][1:-1], :2]).astype(np.int32)], 1)
        cheeks = np.zeros_like(lips)
        for i in (50, 280, 101, 330):
            cv2.circle(cheeks, (int(lm[i, 0]), int(lm[i, 1])), max(2, int(0.05 * W)), 1, -1)
        self.skin = np.median(img[cheeks > 0], 0)
        lip_px = img[(lips > 0) & ~cv2.dilate(cheeks, np.ones((3, 3), np.uint8)).astype(bool)]
        self.lip = np.median(lip_px, 0) if len(lip_px) else self.skin * np.array([0.9, 0.6, 0.6])
        lum = float(self.skin @ LUMA)
        light = np.clip(lum / 170.0, 0.45, 1.2)
        # teeth: ivory, tinted a quarter of the way towards the skin's own colour (the scene's light and its
        # bounce off the skin), never bluer than neutral (white-balancing by the skin turned teeth cyan on grey
        # and cool-toned portraits), and brighter than the skin around them, or they read as grey
        ivory = np.array([236.0, 226.0, 204.0])
        tint = 0.75 * ivory / float(ivory @ LUMA) + 0.25 * self.skin / max(float(self.skin @ LUMA), 1.0)
        tint[1] = min(tint[1], tint[0])
        tint[2] = min(tint[2], tint[1])
        # (next to real talking videos, 1.4x the skin's luminance was too white: teeth sit in the mouth's
        # shade, about as bright as the lit skin, brighter only under frontal light)
        target = np.clip(1.15 * lum, 110.0, 225.0) * min(light, 1.0) ** 0.25
        self.teeth = np.clip(tint * target, 0, 255)
        if self.own_teeth is not None:         # an open-mouth portrait showed its teeth: their colour, as lit there
            self.teeth = np.clip(self.own_teeth, 0, 255)
        self.cavity = np.clip(self.lip * np.array([0.30, 0.15, 0.17]), 0, 255)
        self.tongue = np.clip(self.lip * np.array([0.88, 0.60, 0.64]) + 14, 0, 255)
        self.gum = np.clip(self.lip * np.array([1.0, 0.72, 0.72]) + 12, 0, 255)
        # a black-and-white photo, a statue or a faded print gets a mouth no more colourful than its lips: the
        # painted colours keep their brightness and lose chroma in step with the lips' saturation (full colour
        # from LIP_FULL_SATURATION up; a grey portrait showed cream teeth in a red mouth)
        sat = float(self.lip.max() - self.lip.min()) / max(float(self.lip.max()), 1.0)
        keep = float(np.clip(sat / LIP_FULL_SATURATION, 0.0, 1.0))
        for name in ("teeth", "cavity", "tongue", "gum"):
            c = getattr(self, name)
            y = float(c @ LUMA)
            setattr(self, name, np.clip(y + keep * (c - y), 0, 255))
        gray = cv2.cvtColor(p.image, cv2.COLOR_RGB2GRAY).astype(np.float32)
        hp = gray - cv2.GaussianBlur(gray, (0, 0), 1.5)
        face = cheeks > 0
        self.grain = float(np.clip(np.std(hp[face]) if face.any() else 2.0, 0.5, 5.0))
        self.mouth_blur = 0.55 * self.size / 512
        rng = np.random.default_rng(int(p.key[:8], 16))
        self.noise = rng.standard_normal((self.size, self.size)).astype(np.float32)


    # ----------------------------------------------------------------------------------------------------
    def within_view(self, f: dict[str, float]) -> dict[str, float]:
        """The motion with its yaw softly limited towards the side the portrait does not show.

        A warp can only move pixels the portrait has. Turning a 3/4 view towards the camera uncovers the far
        cheek the nose hid, which a warp can only stretch (the nose balloons, the lips smear): in that
        direction the relative yaw is limited to `reveal_yaw_deg` (soft: turns up to half of it pass exactly,
        larger ones bend into it); turning further away only hides more, which the far-to-near drawing
        handles, so it stays free; a frontal portrait is never limited."""
        yaw, limit = f.get("yaw", 0.0), self.reveal_yaw_deg
        knee = 0.5 * limit                       # turns up to half the limit pass exactly
        if limit < REVEAL_FRONTAL_DEG and yaw * self.portrait.yaw < 0 and abs(yaw) > knee:
            # towards the camera (opposite sign to the portrait's yaw): bend smoothly into the limit
            bent = knee + (limit - knee) * float(np.tanh((abs(yaw) - knee) / (limit - knee)))
            f = {**f, "yaw": float(np.copysign(bent, yaw))}
        return f

    def landmarks(self, f: dict[str, float]) -> np.ndarray:
        """Where the 478 landmarks go under motion `f` (camera pixels, (478, 3)), as rendered."""
        return self._posed(self.within_view(f))

    def _posed(self, f: dict[str, float]) -> np.ndarray:
        P = deform(self.rig, f)
        return self.rig.pose_points(P, f.get("yaw", 0.0), f.get("pitch", 0.0), f.get("roll", 0.0),
                                    f.get("tx", 0.0), f.get("ty", 0.0), f.get("scale", 1.0), self.size)

    def render(self, f: dict[str, float] | np.ndarray) -> np.ndarray:
        """One frame (S, S, 3) uint8 for motion parameters `f` (dict, or a row in `motion.PARAMS` order)."""
        if not isinstance(f, dict):
            f = {k: float(v) for k, v in zip(PARAMS, f)}
        f = self.within_view(f)                  # the teeth below are posed with the same, limited yaw
        cam = self._posed(f)
        out, maps = self._warp(*self.mesh.targets(cam))
        self._smooth_folds(out, maps)
        self._composite_background(out, maps)
        self._composite_lids(out, f, maps)
        self._composite_eyes(out, cam, f)
        self._draw_lash_lines(out, cam, f)
        if cam[LIP_MID_LOWER, 1] - cam[LIP_MID_UPPER, 1] > 0.3 or np.abs(cam[LIPS_INNER_LOWER, 1] - cam[LIPS_INNER_UPPER, 1]).max() > 0.3:
            # the teeth are fixed to the skull (upper) and to the jaw (lower): where the inner lips would be
            # under the head pose alone, and under the head pose and the jaw alone
            pose = [f.get(k, d) for k, d in (("yaw", 0.0), ("pitch", 0.0), ("roll", 0.0), ("tx", 0.0), ("ty", 0.0),
                                               ("scale", 1.0))]
            skull = self.rig.pose_points(self.rig.frontal, *pose, self.size)
            jaw = self.rig.pose_points(deform(self.rig, {"jaw_open": f.get("jaw_open", 0.0)}), *pose, self.size)
            self._composite_mouth(out, cam, skull, jaw)
        return out

    # --- warp ---------------------------------------------------------------------------------------------
    def _warp(self, dst: np.ndarray, z: np.ndarray):
        """Backward-warp the (iris-free) portrait so mesh vertices land on `dst`: (frame, maps) where maps is
        (x0, y0, mx, my), the backward map over the box that moved, or None when nothing moved."""
        exact = None
        if len(self._mouth_vertices):
            mouth = dst[self._mouth_vertices]
            exact = (*(np.floor(mouth.min(0)) - 3), *(np.ceil(mouth.max(0)) + 4))
        flow = flow_field(self.mesh, dst, z, self.size, exact)
        if flow is None:
            return self.source.copy(), None
        if self._torch is not None:
            return self._warp_torch(*flow)
        mx, my = flow_maps(*flow)
        box = flow[2]
        return remap(self.source, mx, my, box), (box[0], box[1], mx, my)

    def _warp_torch(self, ids: np.ndarray, M: np.ndarray, box, fine=None):
        """The same flow field and remap with torch (on the GPU when there is one)."""
        torch = self._torch
        F = torch.nn.functional
        x0, y0, x1, y1 = box
        S, dev = self.size, self.device
        h2, w2 = ids.shape
        m = torch.from_numpy(M).to(dev)[torch.from_numpy(ids).to(dev).long()]          # (h2, w2, 6)
        gx = (x0 + 0.5 + 2 * torch.arange(w2, device=dev, dtype=torch.float32))[None, :]
        gy = (y0 + 0.5 + 2 * torch.arange(h2, device=dev, dtype=torch.float32))[:, None]
        maps = torch.stack([m[..., 0] * gx + m[..., 1] * gy + m[..., 2],
                            m[..., 3] * gx + m[..., 4] * gy + m[..., 5]], 0)[None]
        maps = F.interpolate(maps, size=(2 * h2, 2 * w2), mode="bilinear", align_corners=False)
        maps = maps[0, :, : y1 - y0, : x1 - x0]
        if fine is not None:
            fx, fy = _fine_maps(M, fine)
            bx0, by0 = fine[0] - x0, fine[1] - y0
            maps[:, by0:by0 + fx.shape[0], bx0:bx0 + fx.shape[1]] = torch.from_numpy(np.stack([fx, fy])).to(dev)
        grid = (maps.permute(1, 2, 0) / (S - 1) * 2 - 1)[None]
        patch = F.grid_sample(self._src_t, grid, mode="bicubic", padding_mode="border", align_corners=True)
        out = self.source.copy()
        out[y0:y1, x0:x1] = patch[0].permute(1, 2, 0).round().clamp(0, 255).byte().cpu().numpy()
        return out, (x0, y0, maps[0].cpu().numpy(), maps[1].cpu().numpy())

    @staticmethod
    def _smooth_folds(out: np.ndarray, maps) -> None:
        """Anti-alias occlusion edges: where the flow jumps (a near triangle drawn over a far one), the hard
        polygon edge would show stair-steps; soften the few pixels along it with a 3x3 blur."""
        if maps is None:
            return
        x0, y0, mx, my = maps
        jump = np.zeros(mx.shape, bool)
        for m in (mx, my):
            jump[:, 1:] |= np.abs(np.diff(m, axis=1)) > 2.5
            jump[1:, :] |= np.abs(np.diff(m, axis=0)) > 2.5
        if not jump.any():
            return
        ys, xs = np.nonzero(jump)
        ya, yb = max(ys.min() - 2, 0), min(ys.max() + 3, mx.shape[0])
        xa, xb = max(xs.min() - 2, 0), min(xs.max() + 3, mx.shape[1])
        mask = cv2.dilate(jump[ya:yb, xa:xb].astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        region = out[y0 + ya:y0 + yb, x0 + xa:x0 + xb]
        soft = cv2.GaussianBlur(region, (3, 3), 0.8)
        region[mask] = soft[mask]

    # --- lids ---------------------------------------------------------------------------------------------
    def _composite_lids(self, out: np.ndarray, f: dict[str, float], maps) -> None:
        """Where an eye is closing, re-sample it (through this frame's flow) from its closed-eye texture."""
        if maps is None:
            return
        x0, y0, mx, my = maps
        for ((bx0, by0, bx1, by1), closed), amount in zip(self.lids, (f.get("blink_r", 0.0), f.get("blink_l", 0.0))):
            w = _lid_weight(amount)
            if w <= 0:
                continue
            # destination pixels whose flow lands inside this eye's texture box
            hit = (mx >= bx0) & (mx < bx1 - 1) & (my >= by0) & (my < by1 - 1)
            ys, xs = np.nonzero(hit)
            if len(ys) == 0:
                continue
            ya, yb, xa, xb = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            px = (mx[ya:yb, xa:xb] - bx0).astype(np.float32)
            py = (my[ya:yb, xa:xb] - by0).astype(np.float32)
            tex = cv2.remap(closed, px, py, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
            inside = hit[ya:yb, xa:xb].astype(np.float32)
            region = out[y0 + ya:y0 + yb, x0 + xa:x0 + xb].astype(np.float32)
            a = (w * inside)[..., None]
            mixed = region + a * (tex - region)
            # the lid closes to a line that the flow draws 1 px thin and stair-stepped along the lower lid:
            # soften it vertically, as much as the lid is shut
            soft = cv2.GaussianBlur(mixed, (0, 0), sigmaX=0.5, sigmaY=0.9)
            mixed += a * (soft - mixed)
            out[y0 + ya:y0 + yb, x0 + xa:x0 + xb] = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)

    def _lash_colour(self, e: _Eye) -> np.ndarray:
        """The colour of this eye's lash line (RGB float32): the darkest fifth of the portrait along the upper
        lid margin (1.5 px above to 0.5 px below it), over the middle 70% of the eye."""
        lm = self.portrait.landmarks.astype(np.float64)
        up = sorted(e.upper, key=lambda i: lm[i, 0])
        xs = np.arange(int(np.ceil(lm[up, 0].min())), int(lm[up, 0].max()) + 1)
        u = (xs - xs[0]) / max(1, xs[-1] - xs[0])
        xs = xs[(u > 0.15) & (u < 0.85)] if len(xs) > 3 else xs
        ys = np.interp(xs, lm[up, 0], lm[up, 1])
        img = self.portrait.image.astype(np.float32)
        pix = np.concatenate([img[np.clip(np.round(ys + d).astype(int), 0, self.size - 1),
                                  np.clip(xs, 0, self.size - 1)] for d in (-1.5, -0.5, 0.5)], 0)
        luma = pix @ LUMA
        return pix[luma <= np.percentile(luma, 20)].mean(0).astype(np.float32)

    def _draw_lash_lines(self, out: np.ndarray, cam: np.ndarray, f: dict[str, float]) -> None:
        """Where an eye is (nearly) shut, draw its lash line in the frame along the posed upper lid: an
        anti-aliased curve in the lash colour, LASH_WIDTH of the eye's width thick, fading towards the corners,
        as a closed eye looks in real video (liveportrait__d10/d12/d14 blinks). Drawn after the warp rather than
        into the lid texture: the flow squashes the texture's rows where the lids meet into a ragged,
        stair-stepped edge, while the posed lid is a smooth curve."""
        for e, colour, amount in zip(self.eyes, self.lash_colours, (f.get("blink_r", 0.0), f.get("blink_l", 0.0))):
            w = _lid_weight(amount)
            if w <= 0:
                continue
            up = cam[sorted(e.upper, key=lambda i: cam[i, 0]), :2]
            x0, y0 = np.maximum(np.floor(up.min(0)).astype(int) - [3, 4], 0)
            x1, y1 = np.minimum(np.ceil(up.max(0)).astype(int) + [4, 5], self.size)
            if x1 <= x0 or y1 <= y0:
                continue
            width = max(float(up[:, 0].max() - up[:, 0].min()), 1.0)
            mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
            cv2.polylines(mask, [np.round((up - [x0, y0]) * 16).astype(np.int32)], False, 255,
                          max(1, int(round(LASH_WIDTH * width))), cv2.LINE_AA, shift=4)
            a = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), sigmaX=0.6, sigmaY=1.0)
            u = (np.arange(x0, x1, dtype=np.float32) - float(up[:, 0].min())) / width
            across = np.clip(np.minimum(u, 1.0 - u) / 0.2, 0.0, 1.0)
            across = np.where((u < 0) | (u > 1), 0.0, 0.35 + 0.65 * across * across * (3.0 - 2.0 * across))
            a = (w * LASH_OPACITY * a * across[None].astype(np.float32))[..., None]
            region = out[y0:y1, x0:x1].astype(np.float32)
            out[y0:y1, x0:x1] = np.clip(region + a * (colour - region) + 0.5, 0, 255).astype(np.uint8)

    # --- eyes -----------------------------------------------------------------------------------------------
    def _composite_eyes(self, out: np.ndarray, cam: np.ndarray, f: dict[str, float]) -> None:
        iod_px = self.rig.iod * f.get("scale", 1.0)
        gx, gy = np.radians(f.get("gaze_x", 0.0)), np.radians(f.get("gaze_y", 0.0))
        shift = EYE_RADIUS_IOD * iod_px * np.array([np.sin(gx), -np.sin(gy)])
        for e, blink in zip(self.eyes, (f.get("blink_r", 0.0), f.get("blink_l", 0.0))):
            shut = _lid_weight(blink)          # the closed-lid texture is over the eye: the iris goes with it
            if shut >= 1.0:
                continue
            poly = cam[e.upper + e.lower[::-1], :2]
            centre = cam[e.upper + e.lower, :2].mean(0) + e.offset + shift
            h, w = e.patch.shape[:2]
            top_left = centre + e.corner        # at rest: the pixel the patch was cut from (no resampling)
            x0, y0 = int(np.floor(top_left[0] + 1e-6)), int(np.floor(top_left[1] + 1e-6))
            fx, fy = max(top_left[0] - x0, 0.0), max(top_left[1] - y0, 0.0)
            # sub-pixel placement of the iris texture
            m = np.float32([[1, 0, fx], [0, 1, fy]])
            tex = cv2.warpAffine(e.patch, m, (w + 1, h + 1), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
            a = cv2.warpAffine(e.alpha, m, (w + 1, h + 1), flags=cv2.INTER_LINEAR)
            xa, ya = max(x0, 0), max(y0, 0)
            xb, yb = min(x0 + w + 1, self.size), min(y0 + h + 1, self.size)
            if xb <= xa or yb <= ya:
                continue
            opening = np.zeros((yb - ya, xb - xa), np.uint8)
            cv2.fillPoly(opening, [np.round((poly - [xa, ya]) * 4).astype(np.int32)], 255, cv2.LINE_AA, shift=2)
            alpha = a[ya - y0:yb - y0, xa - x0:xb - x0] * (opening.astype(np.float32) / 255.0) * (1.0 - shut)
            region = out[ya:yb, xa:xb].astype(np.float32)
            t = tex[ya - y0:yb - y0, xa - x0:xb - x0].astype(np.float32)
            out[ya:yb, xa:xb] = (region + alpha[..., None] * (t - region) + 0.5).astype(np.uint8)

    # --- mouth ----------------------------------------------------------------------------------------------
    def _composite_mouth(self, out: np.ndarray, cam: np.ndarray, skull: np.ndarray, jaw: np.ndarray) -> None:
        """Paint the inside of the mouth where the lips part (landmarks `cam`): a cavity that falls off into a
        dark red gradient, the tongue, upper teeth hanging from where the upper lip rests on the skull
        (`skull`: landmarks under the head pose alone), lower teeth rising from where the lower lip rests on
        the jaw (`jaw`: head pose and jaw only), each tooth shaded as a rounded shape with gaps between, gums
        above the upper row, shadows cast by the lips. An open-mouth portrait gets the same painted mouth, in the
        colour of the teeth it showed (`own_teeth_colour`): re-using its own mouth pixels, stretched from its
        narrow gap to a wide one, showed a dark, jagged cavity with fragments of teeth and a black inner rim."""
        (mid, u_ax, v_ax, half), (_, (uu, vu), (ul, vl), _) = _lip_profiles(cam)
        # the inner lip edges as smooth curves through the landmarks (straight segments between 11 points drew
        # a hexagonal hole with pointed corners), and the hole's outline sampled from them
        upper, lower = _smooth_profile(uu, vu), _smooth_profile(ul, vl)
        ts = np.linspace(-1.0, 1.0, MOUTH_OUTLINE_POINTS)

        def outline(curve, knots_u) -> np.ndarray:
            uq = np.interp(ts, [-1.0, 1.0], [knots_u[0], knots_u[-1]])
            return mid + np.outer(uq * half, u_ax) + np.outer(curve(uq), v_ax)
        poly = np.concatenate([outline(upper, uu), outline(lower, ul)[::-1][1:-1]])
        lo = np.floor(poly.min(0)).astype(int) - 2
        hi = np.ceil(poly.max(0)).astype(int) + 3
        x0, y0 = max(lo[0], 0), max(lo[1], 0)
        x1, y1 = min(hi[0], self.size), min(hi[1], self.size)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        rx, ry = xx - mid[0], yy - mid[1]
        u = (rx * u_ax[0] + ry * u_ax[1]) / half
        v = rx * v_ax[0] + ry * v_ax[1]
        v_up = upper(u)
        v_lo = lower(u)
        a = v - v_up                  # pixels below the upper lip's inner edge
        b = v_lo - v                  # pixels above the lower lip's inner edge
        # inside the inner-lip outline (anti-aliased: exact at the corners, where a 3/4 view's perspective
        # puts inner-lip points beyond the corner landmarks) and between the lip profiles, with a soft edge
        # (the lip's own rounded edge, not a cut-out)
        hole = np.zeros(a.shape, np.uint8)
        cv2.fillPoly(hole, [np.round((poly - [x0, y0]) * 4).astype(np.int32)], 255, cv2.LINE_AA, shift=2)
        edge = MOUTH_EDGE_PX * self.size / 512
        alpha = np.minimum(np.clip((np.minimum(a, b) + 0.5 * edge) / edge, 0.0, 1.0), hole.astype(np.float32) / 255.0)
        if alpha.max() <= 0.02:
            return

        def rest_profile(pts: np.ndarray, ids: list[int]) -> np.ndarray:   # a lip line of `pts`, in this frame
            q = pts[ids, :2] - mid
            pu, pv = q @ u_ax / half, q @ v_ax
            o = np.argsort(pu)
            return np.interp(u, pu[o], pv[o])
        v_teeth_up = rest_profile(skull, LIPS_INNER_UPPER)     # where the upper incisors' roots sit
        v_teeth_lo = rest_profile(jaw, LIPS_INNER_LOWER)       # where the lower incisors' roots sit
        Wm = 2 * half
        # along the mouth, measured from the lips' middle (landmark 13), not from the corners' midpoint: on a
        # turned head the far half of the mouth is foreshortened, and its teeth with it
        q = cam[LIP_MID_UPPER, :2] - mid
        u_mid = float(np.clip(q @ u_ax / half, -0.6, 0.6))
        along = np.where(u >= u_mid, (u - u_mid) / (1 - u_mid), (u - u_mid) / (1 + u_mid))
        gap = np.maximum(v_lo - v_up, 1e-3)
        # a portrait's own slightly parted lips (a dark line) stay as they are until the mouth opens further
        rest_gap = rest_profile(skull, LIPS_INNER_LOWER) - v_teeth_up
        alpha *= np.clip((gap - np.maximum(rest_gap, 0) - 0.3) / (0.02 * Wm + 1.0), 0, 1)
        if alpha.max() <= 0.02:
            return
        au = np.abs(along)
        depth = np.clip(1.0 - 0.75 * au ** 2, 0.25, 1.0)        # the mouth darkens towards its corners
        # cavity: dark red, darkest at the back (the top, behind the upper teeth) and towards the corners,
        # a little light falling in past the lips
        down = np.clip(a / gap, 0, 1)
        near_lip = np.exp(-np.maximum(np.minimum(a, b), 0) / (0.05 * Wm))
        col = np.empty(a.shape + (3,), np.float32)
        col[:] = self.cavity
        col *= ((0.55 + 0.6 * down) * (0.45 + 0.55 * depth))[..., None]
        col += (0.18 * near_lip * depth)[..., None] * (self.lip - col)
        # tongue: a dome rising from the floor of the mouth, lit on top, with a faint middle groove
        tongue_top = v_lo - (0.42 * gap + 0.02 * Wm) * (1 - 0.8 * au ** 2)
        tongue = np.clip((v - tongue_top) / (0.02 * Wm + 0.8), 0, 1) * np.clip((0.8 - au) / 0.2, 0, 1)
        lit = 0.75 + 0.35 * np.exp(-np.maximum(v - tongue_top, 0) / (0.06 * Wm)) - 0.12 * np.exp(-(along * half / (0.05 * Wm + 0.5)) ** 2)
        col += tongue[..., None] * (self.tongue * (lit * (0.5 + 0.5 * depth))[..., None] - col)
        col = self._paint_teeth(col, along, v, a, b, v_teeth_up, v_teeth_lo, Wm, depth)
        col = cv2.GaussianBlur(col, (0, 0), self.mouth_blur)
        lum = col @ LUMA
        # photo grain, weaker in the dark (grey noise on a dark red cavity would wash it out to grey)
        col += (self.grain * np.clip(lum / 140.0, 0.15, 1.0) * self.noise[y0:y1, x0:x1])[..., None]
        region = out[y0:y1, x0:x1].astype(np.float32)
        out[y0:y1, x0:x1] = np.clip(region + alpha[..., None] * (col - region) + 0.5, 0, 255).astype(np.uint8)

    # tooth boundaries along the mouth (|u|, in half mouth widths): central and lateral incisors, canine,
    # premolars, as they project onto a curved arch (narrower towards the corners)
    UPPER_TEETH = np.array([0.0, 0.27, 0.48, 0.64, 0.76, 0.86])
    LOWER_TEETH = np.array([0.0, 0.17, 0.33, 0.47, 0.59, 0.70])
    # each tooth's length against the central incisor's: the upper laterals are visibly shorter than the
    # centrals and the canines (a row of equal lengths read as dentures at 2x), premolars shorter again
    UPPER_HEIGHTS = np.array([1.0, 0.86, 0.95, 0.82, 0.76])
    LOWER_HEIGHTS = np.array([1.0, 0.98, 0.95, 0.88, 0.82])

    def _paint_teeth(self, col, u, v, a, b, v_teeth_up, v_teeth_lo, Wm, depth):
        """Upper and lower teeth rows over the cavity colours `col` (in place and returned)."""
        au = np.abs(u)

        def row(edges: np.ndarray, heights: np.ndarray, length: float, dist: np.ndarray, rounding: float = 0.22,
                pointed_canine: bool = False):
            """coverage and shading of one row; `dist` = pixels from the row's root line towards its edge;
            `heights`: each tooth's length as a share of `length`; `rounding`: how far a tooth's edge falls back
            at its sides (share of its length); `pointed_canine`: the third tooth comes to a point"""
            k = np.clip(np.searchsorted(edges, au) - 1, 0, len(edges) - 2)
            frac = (au - edges[k]) / (edges[k + 1] - edges[k])
            c = 2 * frac - 1
            jitter = np.sin(12.9898 * k + 3.1 * np.sign(u) + 1.7 * length)                 # no two teeth alike
            edge = 1 - rounding * c ** 4
            if pointed_canine:
                edge = np.where(k == 2, 1 - 0.3 * np.abs(c) ** 1.5, edge)
            tip = length * edge * heights[k] * (1 + 0.05 * jitter)                    # rounded (or pointed) edges
            cover = np.clip(tip - dist + 0.5, 0, 1) * np.clip(dist + 0.04 * Wm, 0, 1) * (au < edges[-1])
            to_gap = np.minimum(frac, 1 - frac) * (edges[k + 1] - edges[k]) * Wm / 2      # px to the nearest gap
            shade = (1 - 0.12 * c ** 2) * (1 - 0.2 * np.exp(-(to_gap / 0.6) ** 2))           # convex, soft gaps
            shade *= (1 + 0.06 * jitter) * (1 - 0.08 * c)                       # each tooth lit from one side
            shade *= 1 - 0.22 * np.clip(dist / np.maximum(tip, 1e-3), 0, 1) ** 3    # translucent tips
            return cover, shade
        up_cover, up_shade = row(self.UPPER_TEETH, self.UPPER_HEIGHTS, 0.095 * Wm, v - v_teeth_up + 0.01 * Wm,
                                 pointed_canine=True)
        # the lower incisors sit on the jaw with the lower lip, their tips 0.02 mouth widths under its inner
        # edge as the jaw alone puts it: they show when the lower lip drops (open vowels), as in real speech, not
        # as a second row in every open mouth (until 2026-12-03 they stood 0.065 mouth widths above that edge,
        # and every open frame showed both rows, next to real speakers whose lower teeth mostly stay hidden);
        # their edges are nearly straight (rounded ones made the sliver over a slightly dropped lip a dotted line)
        lo_len = 0.05 * Wm
        lo_cover, lo_shade = row(self.LOWER_TEETH, self.LOWER_HEIGHTS, lo_len, v_teeth_lo - v + lo_len + 0.02 * Wm,
                                 rounding=0.06)
        up_cover *= np.clip((0.84 - au) / 0.15, 0, 1)
        lo_cover *= np.clip((0.66 - au) / 0.15, 0, 1)
        # the upper lip shades them a little (real open mouths: bright up to the lip; 0.5 read as grey teeth)
        lip_shadow_up = 1 - 0.3 * np.exp(-np.maximum(a, 0) / (0.04 * Wm))
        lip_shadow_lo = 1 - 0.3 * np.exp(-np.maximum(b, 0) / (0.03 * Wm))
        # gums: a pink band above the upper teeth, seen when the upper lip lifts above the teeth's roots
        gum = np.clip((v_teeth_up - 0.01 * Wm - v) / 1.0 + 0.5, 0, 1) * np.clip((0.8 - au) / 0.2, 0, 1)
        col += gum[..., None] * (self.gum * (0.5 + 0.5 * depth)[..., None] - col)
        # shaded teeth fall towards a dark lip red, not towards black or grey (both read green-blue next to red)
        def shaded(light: np.ndarray) -> np.ndarray:
            light = np.clip(light, 0, 1.1)[..., None]
            return self.teeth * light + 0.5 * self.lip * (1 - np.minimum(light, 1))
        col += lo_cover[..., None] * (shaded(0.8 * depth * lo_shade * lip_shadow_lo) - col)
        col += up_cover[..., None] * (shaded(depth ** 0.7 * up_shade * lip_shadow_up) - col)
        return col
