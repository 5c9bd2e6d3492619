"""The mesh warp: a triangle mesh over the face landmarks (plus rings around the face oval and fixed border
points) turned into one dense backward flow field, and the remap of the portrait through it.

    build_mesh(landmarks, face_width, S) -> Mesh        once per portrait
    flow_field(mesh, moved, depth, S) -> (ids, M, box)  per frame: which triangle covers each pixel, its affine
    flow_maps / remap                                    the flow field as OpenCV maps, and the warped pixels

Piecewise affine: triangles are drawn far-to-near by depth so folds hide correctly; only the triangles that
move are rasterised, and only their bounding box is remapped.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .landmarks import FACE_OVAL

FOLD_JUMP_PX = 3.0   # backward maps of neighbouring half-resolution samples further apart than this: a fold (1.5 px caught a little more, 105 vs 142 pixels off by > 20 on s7 at yaw 14, for +1.5 ms a frame instead of +0.3)


@dataclass(frozen=True)
class Mesh:
    """The warp mesh of one portrait (vertex positions in the portrait's pixels).

    Vertices: face-mesh landmarks `sel` (0-467 without the iris, less interior points hugging the oval), a
    ring at 1.25x the face oval (moves with half of the oval's motion), a fixed ring at 1.75x, fixed border
    points. tris: (K, 3) Delaunay triangles; src_z: depth per vertex (rings and border far behind the face).
    """
    src: np.ndarray        # (N, 2) float64
    tris: np.ndarray       # (K, 3) int
    src_z: np.ndarray      # (N,) float64
    sel: np.ndarray        # landmark index of the first n_face vertices
    oval_pos: np.ndarray   # positions of the face-oval landmarks among the vertices
    ring1: np.ndarray      # (n_ring1, 2) the 1.25x ring, at rest

    @property
    def n_face(self) -> int:
        return len(self.sel)

    def targets(self, cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vertex positions (N, 2) and depths (N,) for landmarks moved to `cam` (478, 3)."""
        n = self.n_face
        dst = self.src.copy()
        dst[:n] = cam[self.sel, :2]
        dst[n:n + len(self.ring1)] = self.ring1 + 0.5 * (dst[self.oval_pos] - self.src[self.oval_pos])
        z = self.src_z.copy()
        z[:n] = cam[self.sel, 2]
        return dst, z


def delaunay(points: np.ndarray) -> np.ndarray:
    """Delaunay triangles (K, 3) of vertex indices of `points` (N, 2), with OpenCV's Subdiv2D (importing
    scipy's qhull would cost ~0.3 s of a cold start). A repeated point keeps its first index. Subdiv2D starts
    from three virtual vertices outside its rectangle, which can stand in for very thin triangles on the convex
    hull, so its rectangle is taken a thousand times the points' extent (then equal to qhull on random points).
    Where four points lie on one circle either split is Delaunay; the mesh has such squares only among its
    fixed border points, which never move (so their triangles are never drawn). Rows come sorted (each row
    ascending, rows in lexicographic order): the draw order of triangles at equal depth is fixed."""
    pts = np.asarray(points, np.float32)
    margin = 1000.0 * float(np.ptp(pts, 0).max()) + 2.0
    lo, hi = np.floor(pts.min(0) - margin), np.ceil(pts.max(0) + margin)
    subdiv = cv2.Subdiv2D((int(lo[0]), int(lo[1]), int(hi[0] - lo[0]), int(hi[1] - lo[1])))
    index: dict[tuple[float, float], int] = {}
    for i, (x, y) in enumerate(pts):
        (vx, vy), _ = subdiv.getVertex(subdiv.insert((float(x), float(y))))
        index.setdefault((float(np.float32(vx)), float(np.float32(vy))), i)
    corners = [[(float(x), float(y)) for x, y in tri] for tri in subdiv.getTriangleList().reshape(-1, 3, 2)]
    tris = np.array([[index[c] for c in tri] for tri in corners if all(c in index for c in tri)], np.int64)
    tris = np.sort(tris.reshape(-1, 3), 1)
    return tris[np.lexsort(tris.T[::-1])]


def build_mesh(lm: np.ndarray, face_width: float, S: int, layout: np.ndarray | None = None) -> Mesh:
    """The warp mesh for landmarks `lm` (478, 3) in an S x S portrait.

    `layout` (478, 3), default `lm`: the same face in the pose whose Delaunay triangles the mesh takes. The
    renderer passes the face with its mouth open: on closed lips the inner-lip landmarks of both lips lie on
    one line, so Delaunay joins upper-lip points to lower-lip points at random, and when the mouth opened
    those triangles stretched the dark line between the lips into a saw-tooth over the lips' edges."""
    lm = lm.astype(np.float64)
    layout = lm if layout is None else layout.astype(np.float64)
    W = face_width
    oval_set = set(FACE_OVAL)
    contour = lm[FACE_OVAL, :2].astype(np.float32).reshape(-1, 1, 2)
    sel = [i for i in range(468) if i in oval_set
           or cv2.pointPolygonTest(contour, (float(lm[i, 0]), float(lm[i, 1])), True) >= 0.06 * W]
    k = np.linspace(0, S - 1, 9)
    border = np.concatenate([np.stack([k, np.zeros(9)], 1), np.stack([k, np.full(9, S - 1.0)], 1),
                             np.stack([np.zeros(7), k[1:-1]], 1), np.stack([np.full(7, S - 1.0), k[1:-1]], 1)])

    def rings(pts: np.ndarray):
        oval = pts[FACE_OVAL, :2]
        c = oval.mean(0)
        ring1 = np.clip(c + 1.25 * (oval - c), 0, S - 1)
        ring2 = np.clip(c + 1.75 * (oval - c), 1, S - 2)
        return ring1, ring2
    ring1, ring2 = rings(lm)
    keep2 = np.min(np.linalg.norm(ring2[:, None] - border[None], axis=2), 1) > 0.03 * S
    src = np.concatenate([lm[sel, :2], ring1, ring2[keep2], border])
    lay1, lay2 = rings(layout)
    lay = np.concatenate([layout[sel, :2], lay1, lay2[keep2], border])
    tri = delaunay(lay)
    a, b, d = lay[tri[:, 0]], lay[tri[:, 1]], lay[tri[:, 2]]
    area = 0.5 * np.abs((b[:, 0] - a[:, 0]) * (d[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (d[:, 0] - a[:, 0]))
    far = float(lm[:, 2].max()) + W
    src_z = np.concatenate([lm[sel, 2], np.full(len(src) - len(sel), far)])
    return Mesh(src=src, tris=tri[area > 1e-3], src_z=src_z, sel=np.array(sel),
                oval_pos=np.array([sel.index(i) for i in FACE_OVAL]), ring1=ring1)


def flow_field(mesh: Mesh, dst: np.ndarray, z: np.ndarray, S: int, exact=None):
    """The backward flow that moves mesh vertices from `mesh.src` to `dst`, drawn far-to-near by `z`.

    Returns None when nothing moves, else (ids, M, box, fine): a half-resolution map of triangle ids
    (h2, w2), the per-triangle affine maps M (K + 1, 6) float32 (the last is the identity), the box
    (x0, y0, x1, y1) it covers, and `fine`: (bx0, by0, ids) at full resolution over the box `exact` (or None).
    The flow is computed at half resolution and upsampled linearly: it is piecewise affine, so this is exact
    inside triangles and sub-pixel at their edges, and it quarters the cost (measured ~2x faster per frame at
    512x512 here). Where the flow tears (the lips parting) 2x2 blocks of the half-resolution ids would show
    as a jagged lip edge, so the mouth (`exact`) gets its ids at full resolution.
    """
    moved = np.linalg.norm(dst - mesh.src, axis=1) > 0.02
    tris = mesh.tris[moved[mesh.tris].any(1)]
    if len(tris) == 0:
        return None
    tris = tris[np.argsort(-z[tris].mean(1))]      # far to near: nearer triangles overwrite
    d = dst[tris]                                    # (K, 3, 2)
    dm = np.concatenate([d, np.ones((len(tris), 3, 1))], 2)
    ok = np.abs(np.linalg.det(dm)) > 1e-6
    M = np.zeros((len(tris) + 1, 2, 3))              # the extra last entry is the identity
    M[:-1][ok] = np.transpose(np.linalg.solve(dm[ok], mesh.src[tris][ok]), (0, 2, 1))
    # a triangle squashed to a sliver (a closed eye, closed lips) has an exploding affine that would
    # fetch far-away pixels along its edge: map it by translation of its centroid instead
    e1, e2 = d[:, 1] - d[:, 0], d[:, 2] - d[:, 0]
    area = 0.5 * np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
    sliver = area < 0.75
    shift = mesh.src[tris][sliver].mean(1) - d[sliver].mean(1)
    M[:-1][sliver] = np.concatenate([np.broadcast_to(np.eye(2), (sliver.sum(), 2, 2)), shift[:, :, None]], 2)
    ok |= sliver
    M[-1] = [[1, 0, 0], [0, 1, 0]]
    lo = np.floor(d.reshape(-1, 2).min(0)).astype(int) - 1
    hi = np.ceil(d.reshape(-1, 2).max(0)).astype(int) + 2
    x0, y0 = int(max(lo[0], 0)), int(max(lo[1], 0))
    x1, y1 = int(min(hi[0], S)), int(min(hi[1], S))
    w2, h2 = (x1 - x0 + 1) // 2, (y1 - y0 + 1) // 2
    ids = np.full((h2, w2), len(tris), np.int32)
    # half-res pixel (i, j) samples full-res point (x0 + 2j + 0.5, y0 + 2i + 0.5) (cv2.resize's convention)
    pts = np.round((d - [x0 + 0.5, y0 + 0.5]) * 2).astype(np.int32)    # 2 bits sub-pixel, half scale
    for k in np.nonzero(ok)[0]:     # one convex polygon per call (~3 us each); no batched id fill exists
        cv2.fillConvexPoly(ids, pts[k], int(k), lineType=cv2.LINE_8, shift=2)
    fine = None
    if exact is not None:
        bx0, by0 = max(int(exact[0]), x0), max(int(exact[1]), y0)
        bx1, by1 = min(int(exact[2]), x1), min(int(exact[3]), y1)
        if bx1 > bx0 and by1 > by0:
            fids = np.full((by1 - by0, bx1 - bx0), len(tris), np.int32)
            lo_t, hi_t = d.min(1), d.max(1)
            near = ok & (hi_t[:, 0] >= bx0) & (lo_t[:, 0] < bx1) & (hi_t[:, 1] >= by0) & (lo_t[:, 1] < by1)
            fpts = np.round((d - [bx0, by0]) * 4).astype(np.int32)            # 2 bits sub-pixel, full scale
            for k in np.nonzero(near)[0]:
                cv2.fillConvexPoly(fids, fpts[k], int(k), lineType=cv2.LINE_8, shift=2)
            fine = (bx0, by0, fids)
    return ids, M.reshape(-1, 6).astype(np.float32), (x0, y0, x1, y1), fine


def _fine_maps(M: np.ndarray, fine) -> tuple[np.ndarray, np.ndarray]:
    """Backward maps at full resolution over a flow field's `fine` box (see `flow_field`)."""
    bx0, by0, fids = fine
    gx = (bx0 + np.arange(fids.shape[1])).astype(np.float32)[None, :]
    gy = (by0 + np.arange(fids.shape[0])).astype(np.float32)[:, None]
    m = M[fids]
    return m[..., 0] * gx + m[..., 1] * gy + m[..., 2], m[..., 3] * gx + m[..., 4] * gy + m[..., 5]


def flow_maps(ids: np.ndarray, M: np.ndarray, box, fine=None) -> tuple[np.ndarray, np.ndarray]:
    """Full-resolution backward maps (mx, my) over `box` from a flow field (OpenCV)."""
    x0, y0, x1, y1 = box
    h2, w2 = ids.shape
    gx = (x0 + 0.5 + 2 * np.arange(w2)).astype(np.float32)[None, :]
    gy = (y0 + 0.5 + 2 * np.arange(h2)).astype(np.float32)[:, None]
    m = M[ids]                                                          # (h2, w2, 6)
    mx = m[..., 0] * gx + m[..., 1] * gy + m[..., 2]
    my = m[..., 3] * gx + m[..., 4] * gy + m[..., 5]
    # where the flow tears (a fold: a near triangle drawn over a far one), upsampling linearly would blend two
    # triangles' maps and fetch pixels from between them, a light or dark fringe along the face's outline on
    # a turned head; there each pixel takes its own triangle's affine map instead
    jump = np.zeros((h2, w2), bool)
    for half in (mx, my):
        jump[:, 1:] |= np.abs(np.diff(half, axis=1)) > FOLD_JUMP_PX
        jump[1:, :] |= np.abs(np.diff(half, axis=0)) > FOLD_JUMP_PX
    mx = cv2.resize(mx, (2 * w2, 2 * h2), interpolation=cv2.INTER_LINEAR)[: y1 - y0, : x1 - x0]
    my = cv2.resize(my, (2 * w2, 2 * h2), interpolation=cv2.INTER_LINEAR)[: y1 - y0, : x1 - x0]
    if jump.any():
        near = cv2.dilate(jump.astype(np.uint8), np.ones((3, 3), np.uint8))
        hy, hx = np.nonzero(near)                                       # half-res cells, then their 2x2 pixels
        ys = (2 * hy[:, None] + np.array([0, 0, 1, 1])).ravel()
        xs = (2 * hx[:, None] + np.array([0, 1, 0, 1])).ravel()
        inside = (ys < y1 - y0) & (xs < x1 - x0)
        ys, xs = ys[inside], xs[inside]
        k = M[ids[ys // 2, xs // 2]]                                    # each pixel's own triangle (nearest)
        fx, fy = (x0 + xs).astype(np.float32), (y0 + ys).astype(np.float32)
        mx[ys, xs] = k[:, 0] * fx + k[:, 1] * fy + k[:, 2]
        my[ys, xs] = k[:, 3] * fx + k[:, 4] * fy + k[:, 5]
    if fine is not None:
        fx, fy = _fine_maps(M, fine)
        bx0, by0 = fine[0] - x0, fine[1] - y0
        mx[by0:by0 + fx.shape[0], bx0:bx0 + fx.shape[1]] = fx
        my[by0:by0 + fx.shape[0], bx0:bx0 + fx.shape[1]] = fy
    return mx, my


def remap(image: np.ndarray, mx: np.ndarray, my: np.ndarray, box, interpolation: int = cv2.INTER_CUBIC) -> np.ndarray:
    """`image` with `box` replaced by its backward warp through (mx, my).

    Bicubic: bilinear sampling at fractional offsets kept only 0.58x of Grace Hopper's face detail
    (Laplacian variance, face resized to 256 px), bicubic 0.88x for ~1.5 ms more per 512 frame; Lanczos
    0.94x but 2-3x slower than bicubic.
    """
    x0, y0, x1, y1 = box
    out = image.copy()
    out[y0:y1, x0:x1] = cv2.remap(image, mx, my, interpolation, borderMode=cv2.BORDER_REPLICATE)
    return out
