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


def features_of(pixels: np.ndarray) -> Features:
    """(H, W, C) float pixels in [0, 1] (C = 1 or 3) -> their Features (plain and mirrored)."""
    import cv2

    grey = pixels[..., 0] if pixels.shape[2] == 1 else pixels @ np.array([0.299, 0.587, 0.114], dtype=pixels.dtype)
    h, w = grey.shape
    factor = SIDE / max(h, w)
    grey = (np.clip(grey, 0, 1) * 255 + 0.5).astype(np.uint8)
    if factor < 1:
        grey = cv2.resize(grey, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)
    plain, mirror = _detect(grey), _detect(np.ascontiguousarray(grey[:, ::-1]))
    return Features(*plain, *mirror)


def agreeing_matches(a_points: np.ndarray, a_desc: np.ndarray, b_points: np.ndarray, b_desc: np.ndarray) -> int:
    """How many one-to-one descriptor matches between two keypoint sets agree with one similarity transform
    (RANSAC); 0 when there are too few matches or the transform is degenerate."""
    import cv2

    if len(a_desc) < 3 or len(b_desc) < 3:
        return 0
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
    matches = [m for m in matcher.match(a_desc, b_desc) if m.distance <= MAX_MATCH_BITS]
    if len(matches) < 3:
        return 0
    src = a_points[[m.queryIdx for m in matches]]
    dst = b_points[[m.trainIdx for m in matches]]
    cv2.setRNGSeed(0)  # RANSAC's samples: the same pair gives the same answer every time
    transform, inliers = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PIXELS, maxIters=500, confidence=0.99
    )
    if transform is None:
        return 0
    scale = float(np.hypot(transform[0, 0], transform[1, 0]))
    if not 1 / MAX_SCALE < scale < MAX_SCALE:
        return 0
    return int(inliers.sum())


def agreement(a: Features, b: Features) -> int:
    """The matches that agree on one transform between a and b, or between a and b's mirror image,
    whichever is more."""
    plain = agreeing_matches(a.keypoints, a.descriptors, b.keypoints, b.descriptors)
    if plain >= MIN_INLIERS:
        return plain
    return max(plain, agreeing_matches(a.keypoints, a.descriptors, b.mirror_keypoints, b.mirror_descriptors))


def same_picture(a: Features, b: Features) -> bool:
    return agreement(a, b) >= MIN_INLIERS
