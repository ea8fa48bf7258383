"""The second stage of near-duplicate search: do two images show the same picture?

Binary codes find candidates fast, but codes of different photos can fall a few bits apart, and at the
scale of a photo library some always do. So a candidate pair is reported as a duplicate only once the
pictures themselves agree, as copy-detection systems check (a descriptor finer than the code, with a
calibrated threshold):

    image -> grey, long side SIDE px -> ORB keypoints + 256-bit descriptors (Rublee et al. 2011, OpenCV)
    pair  -> descriptors matched one to one (nearest both ways, Hamming) -> a similarity transform
             (rotation, uniform scale, shift) fitted by RANSAC (Fischler & Bolles 1981)
          -> the same picture when at least MIN_INLIERS matches agree with that one transform

A crop, a border, a small rotation, a quarter turn, a resize, JPEG, blur, a caption or a colour change keep
dozens of keypoints in place under one transform; two different photos share a handful by chance. A mirror
image is checked against the mirrored features, which are kept beside the plain ones.

Threshold (measured on training photos, `aetools eval hash --part dedup` reports it on held-out ones): with
200 keypoints, 1,770 pairs of different photos agreed on at most 10 matches (99.9th percentile 8), while
every edited copy in the benchmark's 12 edits kept at least 20 (a 25% crop, its hardest); MIN_INLIERS = 16
sits between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIDE = 256  # features are computed on the image resized to this long side
KEYPOINTS = 200
MIN_INLIERS = 16
RANSAC_PIXELS = 3.0  # a match agrees with the transform when it lands within this many pixels (at SIDE)
MAX_SCALE = 5.0  # a transform shrinking or enlarging more than this is not a copy, but a degenerate fit
MAX_MATCH_BITS = 64  # descriptor pairs further apart than this (of 256 bits) are not matches
FEATURES_VERSION = f"orb{KEYPOINTS}-{SIDE}"  # names the index's features cache: other settings, other file


@dataclass
class Features:
    """ORB features of one image: keypoints (N, 2) float32 (x, y at SIDE px), descriptors (N, 32) uint8;
    `mirror_*` the same of the image mirrored left to right."""

    keypoints: np.ndarray
    descriptors: np.ndarray
    mirror_keypoints: np.ndarray
    mirror_descriptors: np.ndarray

    def to_bytes(self) -> bytes:
        n, m = len(self.keypoints), len(self.mirror_keypoints)
        parts = [self.keypoints, self.descriptors, self.mirror_keypoints, self.mirror_descriptors]
        return np.array([n, m], dtype="<u4").tobytes() + b"".join(np.ascontiguousarray(p).tobytes() for p in parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> Features:
        n, m = np.frombuffer(data[:8], dtype="<u4").tolist()
        out, at = [], 8
        for count, dtype, width in ((n, np.float32, 2), (n, np.uint8, 32), (m, np.float32, 2), (m, np.uint8, 32)):
            size = count * width * np.dtype(dtype).itemsize
            out.append(np.frombuffer(data[at : at + size], dtype=dtype).reshape(count, width))
            at += size
        return cls(*out)


def _orb():
    import cv2

    # edge and patch sizes suit a 256-px image (OpenCV's defaults, 31, are meant for larger ones)
    return cv2.ORB_create(nfeatures=KEYPOINTS, scaleFactor=1.2, nlevels=8, edgeThreshold=15, patchSize=15)


def _detect(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keypoints, descriptors = _orb().detectAndCompute(grey, None)
    if descriptors is None:
        return np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8)
    return np.array([k.pt for k in keypoints], dtype=np.float32).reshape(-1, 2), descriptors


def grey_at_side(pixels: np.ndarray) -> np.ndarray:
    """(H, W, C) float pixels in [0, 1] (C = 1 or 3) -> the uint8 grey image features are computed on: long
    side at most SIDE px. Keypoints are in its pixel coordinates."""
    import cv2

    grey = pixels[..., 0] if pixels.shape[2] == 1 else pixels @ np.array([0.299, 0.587, 0.114], dtype=pixels.dtype)
    h, w = grey.shape
    factor = SIDE / max(h, w)
    grey = (np.clip(grey, 0, 1) * 255 + 0.5).astype(np.uint8)
    if factor < 1:
        grey = cv2.resize(grey, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)
    return grey


def features_of(pixels: np.ndarray) -> Features:
    """(H, W, C) float pixels in [0, 1] (C = 1 or 3) -> their Features (plain and mirrored)."""
    return features_of_grey(grey_at_side(pixels))


def features_of_grey(grey: np.ndarray) -> Features:
    """The Features of a `grey_at_side` image."""
    plain, mirror = _detect(grey), _detect(np.ascontiguousarray(grey[:, ::-1]))
    return Features(*plain, *mirror)


def fit_transform(
    a_points: np.ndarray, a_desc: np.ndarray, b_points: np.ndarray, b_desc: np.ndarray
) -> tuple[np.ndarray | None, int]:
    """One-to-one descriptor matches between two keypoint sets, and the similarity transform (2, 3) from a's
    points to b's that most of them agree with (RANSAC) -> (transform, agreeing matches); (None, 0) when
    there are too few matches or the transform is degenerate."""
    import cv2

    if len(a_desc) < 3 or len(b_desc) < 3:
        return None, 0
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
    matches = [m for m in matcher.match(a_desc, b_desc) if m.distance <= MAX_MATCH_BITS]
    if len(matches) < 3:
        return None, 0
    src = a_points[[m.queryIdx for m in matches]]
    dst = b_points[[m.trainIdx for m in matches]]
    cv2.setRNGSeed(0)  # RANSAC's samples: the same pair gives the same answer every time
    transform, inliers = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PIXELS, maxIters=500, confidence=0.99
    )
    if transform is None:
        return None, 0
    scale = float(np.hypot(transform[0, 0], transform[1, 0]))
    if not 1 / MAX_SCALE < scale < MAX_SCALE:
        return None, 0
    return transform, int(inliers.sum())


def agreeing_matches(a_points: np.ndarray, a_desc: np.ndarray, b_points: np.ndarray, b_desc: np.ndarray) -> int:
    """How many one-to-one descriptor matches between two keypoint sets agree with one similarity transform
    (RANSAC); 0 when there are too few matches or the transform is degenerate."""
    return fit_transform(a_points, a_desc, b_points, b_desc)[1]


def agreement(a: Features, b: Features) -> int:
    """The matches that agree on one transform between a and b, or between a and b's mirror image,
    whichever is more."""
    plain = agreeing_matches(a.keypoints, a.descriptors, b.keypoints, b.descriptors)
    if plain >= MIN_INLIERS:
        return plain
    return max(plain, agreeing_matches(a.keypoints, a.descriptors, b.mirror_keypoints, b.mirror_descriptors))


@dataclass
class Alignment:
    """How a's picture lies on b's: `transform` (2, 3) takes a's feature pixels to b's (to b's mirror image's
    when `mirrored`), agreed on by `matches` keypoints."""

    transform: np.ndarray
    mirrored: bool
    matches: int


def align(a: Features, b: Features) -> Alignment | None:
    """The transform `agreement` found between a and b (or b's mirror image), or None when they are not the
    same picture."""
    transform, matches = fit_transform(a.keypoints, a.descriptors, b.keypoints, b.descriptors)
    if matches >= MIN_INLIERS:
        return Alignment(transform, False, matches)
    mirrored, mirror_matches = fit_transform(a.keypoints, a.descriptors, b.mirror_keypoints, b.mirror_descriptors)
    if mirror_matches >= MIN_INLIERS:
        return Alignment(mirrored, True, mirror_matches)
    return None


def same_picture(a: Features, b: Features) -> bool:
    return agreement(a, b) >= MIN_INLIERS


# -------------------------------------------------------------------------- which copy was made from which
#
# Once a pair is verified, its transform says how one picture lies on the other, which tells which copy is
# the edited one (`keep.py` orders a group with it):
#   crop     a's frame maps inside b's and shows less than CROP_COVER of it (a 10% crop shows 81%)
#   overlay  after aligning the two and matching their tones (a per-level mean, so brightness, contrast and
#            clipping are explained), both fail to explain each other in one compact region (OVERLAY_AREA of
#            the frame) while the rest agrees; the copy whose edges there stand out against its own edges
#            elsewhere (OVERLAY_EDGES, and OVERLAY_EDGES_RATIO times the other's) carries the caption or
#            sticker. Detail a blurred copy lost is no overlay: blurring the sharper copy explains it away.
# Measured on the 92 Kodak24 + CBSD68 originals under the benchmark's 12 edits (`aetools eval hash --part
# dedup`, the keep table).

CROP_COVER = 0.92  # a copy showing less than this share of the other's frame (and nothing outside it) is a crop
COVER_FULL = 0.97  # "nothing outside it": at least this share of the crop's frame lies in the other's
MARGIN = 6  # pixels (at SIDE) left out at the frame's edges: interpolated borders of rotated copies
TONE_LEVELS = 32  # grey levels of the tone map fitted between the two copies
OVERLAY_MIN_DIFFERENCE = 0.06  # of full scale, in 9 x 9 means: smaller differences are noise, JPEG, blur
OVERLAY_AREA = (0.004, 0.3)  # the differing region's share of the common frame: compact, not everywhere
OVERLAY_EDGES = 1.3  # the overlay copy's edges in the region, against its own mean elsewhere
OVERLAY_EDGES_RATIO = 1.4  # ... and against the other copy's same ratio
BLUR_TRIES = (0.6, 1.2, 2.4)  # Gaussian sigmas (at SIDE) tried to explain a difference as the other's blur


@dataclass
class Derivation:
    """How two verified copies relate: `a_is_crop` / `b_is_crop`, and `overlay` ("a", "b" or None): the copy
    carrying a caption, watermark or sticker the other lacks."""

    a_is_crop: bool = False
    b_is_crop: bool = False
    overlay: str | None = None


def frame_cover(transform: np.ndarray, a_shape: tuple[int, int], b_shape: tuple[int, int], n: int = 24) -> float:
    """The share of a's frame (H, W) that `transform` (2, 3) maps inside b's frame (H, W): an n x n grid."""
    h, w = a_shape
    ys, xs = np.meshgrid((np.arange(n) + 0.5) * h / n, (np.arange(n) + 0.5) * w / n, indexing="ij")
    points = np.stack([xs.ravel(), ys.ravel(), np.ones(n * n)], axis=1) @ transform.T
    hb, wb = b_shape
    inside = (points[:, 0] >= -2) & (points[:, 0] <= wb + 2) & (points[:, 1] >= -2) & (points[:, 1] <= hb + 2)
    return float(inside.mean())


def _tone_mapped(src: np.ndarray, dst: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """dst as predicted from src by a global tone map: the mean of dst at each of TONE_LEVELS levels of src."""
    level = np.minimum((src * TONE_LEVELS).astype(np.int64), TONE_LEVELS - 1)
    sums = np.bincount(level[valid], dst[valid], TONE_LEVELS)
    counts = np.bincount(level[valid], None, TONE_LEVELS)
    have = counts > 0
    table = np.interp(np.arange(TONE_LEVELS), np.flatnonzero(have), sums[have] / counts[have])
    return table[level].astype(np.float32)


def _local_mean(x: np.ndarray, valid: np.ndarray, k: int = 9) -> np.ndarray:
    import cv2

    weight = cv2.blur(valid.astype(np.float32), (k, k))
    out = cv2.blur(x * valid, (k, k)) / np.maximum(weight, 1e-3)
    out[~valid] = 0
    return out


def _unexplained(a: np.ndarray, b: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Where neither aligned grey image (floats in [0, 1]) is explained by the other's tones: a bool mask."""
    mask = valid.copy()
    for x, y in ((a, b), (b, a)):
        local = _local_mean(np.abs(x - _tone_mapped(y, x, valid)), valid)
        mask &= local > max(OVERLAY_MIN_DIFFERENCE, 4 * float(np.median(local[valid])))
    return mask


def _edges(x: np.ndarray) -> np.ndarray:
    import cv2

    return np.hypot(cv2.Sobel(x, cv2.CV_32F, 1, 0), cv2.Sobel(x, cv2.CV_32F, 0, 1))


def overlay_side(a_grey: np.ndarray, b_grey: np.ndarray, transform: np.ndarray) -> str | None:
    """Which of two aligned copies (uint8 grey at SIDE; `transform` takes a's pixels to b's) carries an
    overlay the other lacks: "a", "b" or None (see the notes above `CROP_COVER`)."""
    import cv2

    h, w = b_grey.shape
    a = cv2.warpAffine(a_grey.astype(np.float32) / 255, transform, (w, h), flags=cv2.INTER_LINEAR)
    valid = cv2.warpAffine(np.ones_like(a_grey), transform, (w, h), flags=cv2.INTER_NEAREST)
    valid = cv2.erode(valid, np.ones((2 * MARGIN + 1, 2 * MARGIN + 1), np.uint8)) > 0
    inner = np.zeros_like(valid)
    inner[MARGIN : h - MARGIN, MARGIN : w - MARGIN] = True
    valid &= inner
    if valid.sum() < 1000:
        return None
    a = cv2.GaussianBlur(a, (0, 0), 0.8)  # JPEG blocks and resampling left out
    b = cv2.GaussianBlur(b_grey.astype(np.float32) / 255, (0, 0), 0.8)
    region = _unexplained(a, b, valid)
    share = region.sum() / valid.sum()
    if not OVERLAY_AREA[0] <= share <= OVERLAY_AREA[1]:
        return None
    rest = valid & ~region
    stand_out = {}
    for name, x in (("a", a), ("b", b)):
        e = _edges(x)
        stand_out[name] = float(e[region].mean() / max(float(e[rest].mean()), 1e-6))
    side, other = ("a", "b") if stand_out["a"] >= stand_out["b"] else ("b", "a")
    if stand_out[side] < OVERLAY_EDGES or stand_out[side] < OVERLAY_EDGES_RATIO * stand_out[other]:
        return None
    # Detail the other copy lost to blur also stands out: blur the sharper copy as much as explains the other
    # best; an overlay still differs, lost detail no longer does.
    sharp, soft = (a, b) if side == "a" else (b, a)

    def blurred(sigma: float) -> np.ndarray:
        return cv2.GaussianBlur(sharp, (0, 0), sigma) if sigma else sharp

    misfit = {
        s: float(np.median(np.abs(blurred(s) - _tone_mapped(soft, blurred(s), valid))[valid])) for s in (0, *BLUR_TRIES)
    }
    sigma = min(misfit, key=misfit.get)
    if sigma and _unexplained(blurred(sigma), soft, valid).sum() < 0.5 * region.sum():
        return None
    return side


def derivation(a_grey: np.ndarray, b_grey: np.ndarray, alignment: Alignment) -> Derivation:
    """How copy a relates to copy b, given their grey images at SIDE (`grey_at_side` of the trimmed pixels
    the features came from) and `align(a, b)`."""
    import cv2

    b_view = np.ascontiguousarray(b_grey[:, ::-1]) if alignment.mirrored else b_grey
    t = alignment.transform
    a_in_b = frame_cover(t, a_grey.shape, b_view.shape)
    b_in_a = frame_cover(cv2.invertAffineTransform(t), b_view.shape, a_grey.shape)
    return Derivation(
        a_is_crop=a_in_b >= COVER_FULL and b_in_a < CROP_COVER,
        b_is_crop=b_in_a >= COVER_FULL and a_in_b < CROP_COVER,
        overlay=overlay_side(a_grey, b_view, t),
    )
