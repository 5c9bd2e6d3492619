"""MTCNN face detection (Zhang et al. 2016) in numpy, on facenet-pytorch's bundled weights.

The same three networks (PNet on an image pyramid, RNet on 24x24 crops, ONet on 48x48 crops) and the same
steps as `facenet_pytorch.MTCNN.detect`, with the same boxes, points and scores (within float rounding;
tested against facenet-pytorch), but without torch or torchvision: importing those costs ~3 s of a cold
`generate` on a 2-core machine (facenet-pytorch's MTCNN pulls in torchvision for one NMS function), while the
networks' work on a portrait is ~0.1 s.

Weights: facenet-pytorch's package files (`facenet_pytorch/data/{pnet,rnet,onet}.pt`; they are not this
project's, so they are not copied into the repository). They are converted to numpy once, with torch, and
cached in `<venv>/share/vasa/mtcnn.npz` (the environment set-up builds; `make clean` removes it), or in the
user's cache directory when the environment is read-only; the cache is keyed on the source files' SHA-256.

Layout: images and feature maps are NHWC float32; a conv weight is torch's (out, in, kh, kw).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from threadpoolctl import threadpool_limits

NETS = ("pnet", "rnet", "onet")
THRESHOLDS = (0.6, 0.7, 0.7)     # facenet-pytorch's defaults: PNet, RNet, ONet face probability
FACTOR = 0.709                   # pyramid scale step


# ------------------------------------------------------------------------------------------------ weights
def _source_files() -> list[Path]:
    """facenet-pytorch's weight files, found without importing the package (its __init__ imports torch)."""
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("facenet-pytorch is not installed (its MTCNN weights are needed): run make setup")
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    return [data / f"{n}.pt" for n in NETS]


def _cache_paths() -> list[Path]:
    user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vasa"
    return [Path(sys.prefix) / "share" / "vasa" / "mtcnn.npz", user / "mtcnn.npz"]


def _convert(files: list[Path]) -> dict[str, np.ndarray]:
    import torch
    out = {}
    for name, path in zip(NETS, files):
        for k, v in torch.load(str(path), map_location="cpu", weights_only=True).items():
            out[f"{name}.{k}"] = v.float().numpy()
    return out


def load_weights() -> dict[str, np.ndarray]:
    """{"pnet.conv1.weight": array, ...} float32, from the cache, or converted (with torch) and cached."""
    files = _source_files()
    digest = hashlib.sha256(b"".join(hashlib.sha256(f.read_bytes()).digest() for f in files)).hexdigest()
    for cache in _cache_paths():
        try:
            with np.load(cache, allow_pickle=False) as z:
                if str(z["source_sha256"]) == digest:
                    return {k: z[k] for k in z.files if k != "source_sha256"}
        except (OSError, KeyError, ValueError):
            pass
    weights = _convert(files)
    for cache in _cache_paths():
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                np.savez(f, source_sha256=np.array(digest), **weights)
            os.replace(tmp, cache)
            break
        except OSError:
            continue
    return weights


# ------------------------------------------------------------------------------------------------ layers
def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Valid 2-D convolution, stride 1: (N, H, W, C) -> (N, H-kh+1, W-kw+1, O)."""
    o, c, kh, kw = w.shape
    cols = sliding_window_view(x, (kh, kw), axis=(1, 2))                 # (N, H', W', C, kh, kw)
    n, h2, w2 = cols.shape[:3]
    return cols.reshape(n, h2, w2, c * kh * kw) @ w.reshape(o, -1).T + b


def _prelu(x: np.ndarray, a: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, x * a)


def _max_pool(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """torch.nn.MaxPool2d(k, s, ceil_mode=True) on (N, H, W, C): a last, partial window is kept when it
    starts inside the image."""
    def size(n):
        out = -(-(n - k) // s) + 1
        return out - 1 if (out - 1) * s >= n else out
    h, w = size(x.shape[1]), size(x.shape[2])
    ph, pw = (h - 1) * s + k - x.shape[1], (w - 1) * s + k - x.shape[2]
    if ph > 0 or pw > 0:
        x = np.pad(x, ((0, 0), (0, max(ph, 0)), (0, max(pw, 0)), (0, 0)), constant_values=-np.inf)
    win = sliding_window_view(x, (k, k), axis=(1, 2))[:, ::s, ::s]
    return win.max(axis=(-2, -1))[:, :h, :w]


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _dense(x: np.ndarray, wts: dict, name: str) -> np.ndarray:
    return x @ wts[name + ".weight"].T + wts[name + ".bias"]


class AreaSampler:
    """torch's interpolate(mode="area") (adaptive average pooling) of any rectangle of one image, from its
    integral image (float64: the sums of uint8 values are exact): output cell i of a rectangle h rows high
    averages its rows floor(i*h/oh) .. ceil((i+1)*h/oh)-1 (the same for columns)."""

    def __init__(self, rgb: np.ndarray):
        h, w, c = rgb.shape
        self.sums = np.zeros((h + 1, w + 1, c), np.float64)
        self.sums[1:, 1:] = np.cumsum(np.cumsum(rgb, axis=0, dtype=np.float64), axis=1)

    def resize(self, y0: int, x0: int, h: int, w: int, oh: int, ow: int) -> np.ndarray:
        """Rows y0..y0+h-1, columns x0..x0+w-1 -> (oh, ow, C) float32."""
        def cells(origin, n_in, n_out):
            i = np.arange(n_out)
            return origin + (i * n_in) // n_out, origin + ((i + 1) * n_in + n_out - 1) // n_out
        (ys, ye), (xs, xe) = cells(y0, h, oh), cells(x0, w, ow)
        s = self.sums
        total = s[ye][:, xe] - s[ys][:, xe] - s[ye][:, xs] + s[ys][:, xs]
        return (total / ((ye - ys)[:, None, None] * (xe - xs)[None, :, None])).astype(np.float32)


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x - np.float32(127.5)) * np.float32(0.0078125)


# ------------------------------------------------------------------------------------------------ networks
def _pnet(x: np.ndarray, w: dict) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W, 3) -> box regression (N, h, w, 4), face probability (N, h, w)."""
    x = _prelu(_conv(x, w["pnet.conv1.weight"], w["pnet.conv1.bias"]), w["pnet.prelu1.weight"])
    x = _max_pool(x, 2, 2)
    x = _prelu(_conv(x, w["pnet.conv2.weight"], w["pnet.conv2.bias"]), w["pnet.prelu2.weight"])
    x = _prelu(_conv(x, w["pnet.conv3.weight"], w["pnet.conv3.bias"]), w["pnet.prelu3.weight"])
    prob = _softmax(_conv(x, w["pnet.conv4_1.weight"], w["pnet.conv4_1.bias"]))[..., 1]
    return _conv(x, w["pnet.conv4_2.weight"], w["pnet.conv4_2.bias"]), prob


def _flatten(x: np.ndarray) -> np.ndarray:
    """The original (Caffe) networks flatten feature maps column-major: torch's permute(0, 3, 2, 1)."""
    return np.ascontiguousarray(x.transpose(0, 2, 1, 3)).reshape(len(x), -1)


def _rnet(x: np.ndarray, w: dict) -> tuple[np.ndarray, np.ndarray]:
    """(N, 24, 24, 3) -> box regression (N, 4), face probability (N,)."""
    x = _max_pool(_prelu(_conv(x, w["rnet.conv1.weight"], w["rnet.conv1.bias"]), w["rnet.prelu1.weight"]), 3, 2)
    x = _max_pool(_prelu(_conv(x, w["rnet.conv2.weight"], w["rnet.conv2.bias"]), w["rnet.prelu2.weight"]), 3, 2)
    x = _prelu(_conv(x, w["rnet.conv3.weight"], w["rnet.conv3.bias"]), w["rnet.prelu3.weight"])
    x = _prelu(_dense(_flatten(x), w, "rnet.dense4"), w["rnet.prelu4.weight"])
    return _dense(x, w, "rnet.dense5_2"), _softmax(_dense(x, w, "rnet.dense5_1"))[:, 1]


def _onet(x: np.ndarray, w: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 48, 48, 3) -> box regression (N, 4), points (N, 10: five x then five y), face probability (N,)."""
    x = _max_pool(_prelu(_conv(x, w["onet.conv1.weight"], w["onet.conv1.bias"]), w["onet.prelu1.weight"]), 3, 2)
    x = _max_pool(_prelu(_conv(x, w["onet.conv2.weight"], w["onet.conv2.bias"]), w["onet.prelu2.weight"]), 3, 2)
    x = _max_pool(_prelu(_conv(x, w["onet.conv3.weight"], w["onet.conv3.bias"]), w["onet.prelu3.weight"]), 2, 2)
    x = _prelu(_conv(x, w["onet.conv4.weight"], w["onet.conv4.bias"]), w["onet.prelu4.weight"])
    x = _prelu(_dense(_flatten(x), w, "onet.dense5"), w["onet.prelu5.weight"])
    return (_dense(x, w, "onet.dense6_2"), _dense(x, w, "onet.dense6_3"),
            _softmax(_dense(x, w, "onet.dense6_1"))[:, 1])


# ------------------------------------------------------------------------------------------------ boxes
def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, overlap: str = "union") -> np.ndarray:
    """Greedy non-maximum suppression: indices kept, best score first. A box is dropped when its overlap with
    a kept one exceeds `threshold`: "union" = IoU with areas (x1-x0)*(y1-y0) (torchvision.ops.nms), "min" =
    intersection over the smaller area with +1 pixel sides (MTCNN's last stage)."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    x0, y0, x1, y1 = (boxes[:, i] for i in range(4))
    one = np.float32(1.0 if overlap == "min" else 0.0)
    area = (x1 - x0 + one) * (y1 - y0 + one)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while len(order):
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(np.float32(0), np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]) + one)
        h = np.maximum(np.float32(0), np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]) + one)
        inter = w * h
        o = inter / np.minimum(area[i], area[rest]) if overlap == "min" else inter / (area[i] + area[rest] - inter)
        order = rest[o <= threshold]
    return np.array(keep, np.int64)


def _square(b: np.ndarray) -> np.ndarray:
    """Boxes (n, >=4) made square about their centres, side = the longer side (in place and returned)."""
    h, w = b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]
    side = np.maximum(w, h)
    b[:, 0] = b[:, 0] + w * np.float32(0.5) - side * np.float32(0.5)
    b[:, 1] = b[:, 1] + h * np.float32(0.5) - side * np.float32(0.5)
    b[:, 2], b[:, 3] = b[:, 0] + side, b[:, 1] + side
    return b


def _regress(b: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Boxes moved by the networks' regression (fractions of the +1-pixel side), in place and returned."""
    w, h = b[:, 2] - b[:, 0] + 1, b[:, 3] - b[:, 1] + 1
    b[:, :4] = b[:, :4] + reg[:, :4] * np.stack([w, h, w, h], 1)
    return b


def _crops(image: AreaSampler, boxes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(crops (k, size, size, 3) normalised to about [-1, 1], which boxes they came from): each box truncated
    to whole pixels, 1-based, clipped to the image; boxes with nothing inside are skipped."""
    h, w = image.sums.shape[0] - 1, image.sums.shape[1] - 1
    b = np.trunc(boxes[:, :4]).astype(np.int64)
    x0, y0 = np.maximum(b[:, 0], 1), np.maximum(b[:, 1], 1)
    x1, y1 = np.minimum(b[:, 2], w), np.minimum(b[:, 3], h)
    ok = np.flatnonzero((y1 > y0 - 1) & (x1 > x0 - 1))
    out = np.empty((len(ok), size, size, 3), np.float32)
    for j, k in enumerate(ok):
        out[j] = image.resize(y0[k] - 1, x0[k] - 1, y1[k] - y0[k] + 1, x1[k] - x0[k] + 1, size, size)
    return _normalise(out), ok


class MTCNN:
    """detect(rgb (H, W, 3) uint8) -> (boxes (n, 4) float32 x0 y0 x1 y1, scores (n,), points (n, 5, 2)),
    largest face first, as `facenet_pytorch.MTCNN(min_face_size=...).detect(rgb, landmarks=True)`."""

    def __init__(self, min_face_size: int = 20, thresholds=THRESHOLDS, factor: float = FACTOR,
                 weights: dict[str, np.ndarray] | None = None):
        self.min_face_size, self.thresholds, self.factor = min_face_size, tuple(thresholds), float(factor)
        self.w = weights if weights is not None else load_weights()

    def _pyramid(self, image: AreaSampler) -> np.ndarray:
        """Stage 1: PNet over the scale pyramid -> candidate boxes (n, 9: box, score, regression)."""
        h, w = image.sums.shape[0] - 1, image.sums.shape[1] - 1
        m = 12.0 / self.min_face_size
        minl, scale, scales = min(h, w) * m, m, []
        while minl >= 12:
            scales.append(scale)
            scale, minl = scale * self.factor, minl * self.factor
        found = []
        for scale in scales:
            x = _normalise(image.resize(0, 0, h, w, int(h * scale + 1), int(w * scale + 1)))
            reg, prob = _pnet(x[None], self.w)
            _, ys, xs = np.nonzero(prob >= self.thresholds[0])
            cell = np.stack([xs, ys], 1).astype(np.float32)
            s = np.float32(scale)
            boxes = np.concatenate([np.floor((2 * cell + 1) / s), np.floor((2 * cell + 12) / s),
                                    prob[0, ys, xs][:, None], reg[0, ys, xs]], 1).astype(np.float32)
            found.append(boxes[nms(boxes[:, :4], boxes[:, 4], 0.5)])
        return np.concatenate(found) if found else np.zeros((0, 9), np.float32)

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # one BLAS thread: the matrices are small, and on a busy 2-core machine OpenBLAS's spinning worker
        # threads made detection 3-8x slower (measured)
        with threadpool_limits(limits=1, user_api="blas"):
            return self._detect(rgb)

    def _detect(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        img = AreaSampler(np.asarray(rgb))
        empty = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))
        boxes = self._pyramid(img)
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
        # stage 1's boxes moved by PNet's regression (fractions of the plain side, unlike the later stages), squared
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        moved = boxes[:, :4] + boxes[:, 5:9] * np.stack([w, h, w, h], 1)
        boxes = _square(np.concatenate([moved, boxes[:, 4:5]], 1))
        if len(boxes) == 0:
            return empty
        # stage 2: RNet on 24x24 crops
        crops, ok = _crops(img, boxes, 24)
        boxes = boxes[ok]
        reg, score = _rnet(crops, self.w)
        keep = score > self.thresholds[1]
        boxes = np.concatenate([boxes[keep, :4], score[keep, None]], 1)
        reg = reg[keep]
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
        boxes = _square(_regress(boxes[pick], reg[pick]))
        if len(boxes) == 0:
            return empty
        # stage 3: ONet on 48x48 crops: final boxes, scores and the five points
        crops, ok = _crops(img, boxes, 48)
        boxes = boxes[ok]
        reg, pts, score = _onet(crops, self.w)
        keep = score > self.thresholds[2]
        boxes = np.concatenate([boxes[keep, :4], score[keep, None]], 1)
        reg, pts = reg[keep], pts[keep]
        w, h = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
        points = np.stack([w[:, None] * pts[:, :5] + boxes[:, :1] - 1, h[:, None] * pts[:, 5:] + boxes[:, 1:2] - 1], 2)
        boxes = _regress(boxes, reg)
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7, "min")
        boxes, points = boxes[pick], points[pick]
        order = np.argsort(-((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])), kind="stable")
        return boxes[order, :4], boxes[order, 4], points[order].astype(np.float32)


def describe_cache() -> str:
    """Where the converted weights are cached (for set-up messages)."""
    return json.dumps([str(p) for p in _cache_paths()])
