"""Local features: ORB keypoints and binary descriptors from a working image of bounded size.

ORB was chosen over SIFT/RootSIFT by measured recall per millisecond
(``python -m bench.partial_copies --compare-sift``: pairwise brute-force matching + RANSAC on
crops, rotations, paste-ins and screenshots of the benchmark photos, one core): ORB (500
features an indexed image, 1000 a query) recall 0.90
at 10 ms per indexed image, RootSIFT (500 features, 512-pixel image) recall 0.84 at 37 ms, and
SIFT alone would spend most of the 60 ms ingest budget.

Four choices matter for finding partial copies, measured on the bench:

- the working image is scaled (up or down) so its longer side is ``WORKING_SIDE``; small images
  are upscaled because ORB ignores a 31-pixel border at every pyramid level;
- the FAST threshold is low (8), so low-contrast photos (fog, sky, skin) still get keypoints;
- keypoints are spread over a 4 x 4 grid (round-robin by response) so that a crop of any part of
  the picture still holds indexed keypoints;
- a query gets 1000 keypoints from an 800-pixel image: a copy pasted into a larger picture, or
  shown in a screenshot, is small in it, and the extra resolution keeps its keypoints.

Keypoints are returned in the image's *original* pixel coordinates (``full_size``), so that
boxes computed from them mean something to a user who never saw the working image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

__all__ = [
    "DESCRIPTOR_BYTES",
    "INDEX_FEATURES",
    "QUERY_FEATURES",
    "WORKING_SIDE",
    "LocalFeatures",
    "compute",
    "compute_array",
    "compute_dense",
    "compute_dense_scale",
    "merged",
]

WORKING_SIDE = 640
INDEX_FEATURES = 1000
QUERY_SIDE = 800
QUERY_FEATURES = 1000
QUERY_GRID = 4
DENSE_SIDE = 1280
DENSE_FEATURES = 3000
COARSE_SIDE = 400
COARSE_FEATURES = 1000
DESCRIPTOR_BYTES = 32
FAST_THRESHOLD = 8
GRID = 4
# ORB's per-level pyramid; kept explicit so a stored signal can say how it was made.
_SCALE_FACTOR = 1.2
_LEVELS = 8
# ORB finds no keypoint within this many pixels of any border (its default edgeThreshold and
# patchSize), so a working image whose shorter side is under twice it can hold none; OpenCV
# would also fail building its pyramid, whose coarse levels round such a side to 0 pixels.
_BORDER = 31


@dataclass(frozen=True)
class LocalFeatures:
    """Keypoints and descriptors of one image (or of its mirror image).

    Attributes
    ----------
    points : numpy.ndarray, shape (n, 2), float32
        Keypoint centres ``(x, y)`` in the original image's pixel coordinates. When
        ``flipped`` is true they are in the coordinates of the horizontally flipped image.
    descriptors : numpy.ndarray, shape (n, 32), uint8
        ORB (rBRIEF) descriptors, one row per point.
    size : tuple of int
        The original image's ``(width, height)``.
    flipped : bool
        These are the features of the image flipped left-right.
    mirrored : LocalFeatures or None
        Features of the flipped image, computed only for queries (``compute(..., query=True)``),
        so that mirrored copies are found although ORB is not mirror-invariant.
    """

    points: np.ndarray
    descriptors: np.ndarray
    size: tuple[int, int]
    flipped: bool = False
    mirrored: "LocalFeatures | None" = None

    def __len__(self) -> int:
        return int(self.points.shape[0])

    @property
    def working_scale(self) -> float:
        """Factor from original pixels to a frame whose longer side is ``WORKING_SIDE``."""
        return WORKING_SIDE / max(self.size)


def _gray_working(image: "Image.Image | np.ndarray", side: int) -> np.ndarray:
    """Return the image as a uint8 grey array, shape (h, w), longer side ``side``."""
    import cv2

    array = np.asarray(image)
    if array.ndim == 3:
        if array.shape[2] == 4:
            array = array[:, :, :3]
        gray = cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_RGB2GRAY)
    else:
        gray = array
    if gray.dtype != np.uint8:
        gray = np.clip(gray, 0, 255).astype(np.uint8)
    h, w = gray.shape
    scale = side / max(h, w)
    if abs(scale - 1.0) > 1e-3:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        # INTER_AREA when shrinking avoids aliasing that breaks FAST; LINEAR when enlarging.
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        gray = cv2.resize(gray, size, interpolation=interp)
    return np.ascontiguousarray(gray)


def _grid_select(keypoints: list, shape: tuple[int, int], n: int, grid: int) -> list:
    """Keep ``n`` keypoints spread over a ``grid`` x ``grid`` grid, strongest first in each cell."""
    if len(keypoints) <= n:
        return list(keypoints)
    h, w = shape
    pts = np.array([kp.pt for kp in keypoints], dtype=np.float32)
    response = np.array([kp.response for kp in keypoints], dtype=np.float32)
    row = np.minimum((pts[:, 1] * grid / h).astype(np.int64), grid - 1)
    col = np.minimum((pts[:, 0] * grid / w).astype(np.int64), grid - 1)
    cell = row * grid + col
    order = np.lexsort((-response, cell))
    sorted_cells = cell[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_cells)) + 1]
    lengths = np.diff(np.r_[starts, len(sorted_cells)])
    rank = np.arange(len(sorted_cells)) - np.repeat(starts, lengths)
    # Round-robin over cells: every cell's best, then every cell's second best, ...
    round_robin = np.lexsort((-response[order], rank))
    return [keypoints[i] for i in order[round_robin[:n]]]


_NO_FEATURES = (np.zeros((0, 2), np.float32), np.zeros((0, DESCRIPTOR_BYTES), np.uint8))


def _orb(gray: np.ndarray, n_features: int, grid: int, *, mirror: bool = False) -> tuple:
    """ORB points and descriptors of ``gray``, and with ``mirror`` those of its mirror image.

    Returns ``(points, descriptors)`` or, with ``mirror``, ``(points, descriptors,
    mirrored_points, mirrored_descriptors)``.
    """
    import cv2

    if min(gray.shape) <= 2 * _BORDER:  # a thin strip (1x640, 6x5000): nothing to find
        return _NO_FEATURES * (2 if mirror else 1)
    orb = cv2.ORB_create(
        nfeatures=(3 if grid > 1 else 1) * n_features,
        scaleFactor=_SCALE_FACTOR,
        nlevels=_LEVELS,
        fastThreshold=FAST_THRESHOLD,
    )
    keypoints = orb.detect(gray, None)
    if grid > 1:
        keypoints = _grid_select(keypoints, gray.shape, n_features, grid)
    found = _described(orb, gray, keypoints)
    if not mirror:
        return found
    # FAST corners, their Harris response and the grid are symmetric under a left-right
    # mirror, and the intensity-centroid angle becomes 180 - angle: the mirror image's
    # keypoints are these, mirrored (99 % identical to detecting them again, at a third of
    # the cost). Only the descriptors are computed anew.
    width = gray.shape[1]
    mirrored = [cv2.KeyPoint(_mirror_x(kp, width), kp.pt[1], kp.size, (180.0 - kp.angle) % 360,
                             kp.response, kp.octave, kp.class_id) for kp in keypoints]
    return (*found, *_described(orb, np.ascontiguousarray(gray[:, ::-1]), mirrored))


def _mirror_x(keypoint, width: int) -> float:
    # A keypoint lives on its pyramid level (cvRound(width / scale) wide): mirror it there.
    scale = _SCALE_FACTOR ** keypoint.octave
    level_width = int(np.floor(width / scale + 0.5))
    return (level_width - 1 - keypoint.pt[0] / scale) * scale


def _described(orb, gray: np.ndarray, keypoints: list) -> tuple[np.ndarray, np.ndarray]:
    keypoints, descriptors = orb.compute(gray, keypoints)
    if descriptors is None or not keypoints:
        return _NO_FEATURES
    points = np.array([kp.pt for kp in keypoints], dtype=np.float32).reshape(-1, 2)
    return points, np.ascontiguousarray(descriptors, dtype=np.uint8)


def compute_array(
    image: "Image.Image | np.ndarray",
    full_size: tuple[int, int] | None = None,
    *,
    n_features: int = INDEX_FEATURES,
    side: int = WORKING_SIDE,
    grid: int = GRID,
    mirror: bool = False,
) -> LocalFeatures:
    """Compute local features of ``image``; see :func:`compute`.

    ``side`` is the working image's longer side, ``grid`` the keypoint grid (1: none).
    """
    gray = _gray_working(image, side)
    h, w = gray.shape
    if full_size is None:
        if isinstance(image, np.ndarray):
            full_size = (image.shape[1], image.shape[0])
        else:
            full_size = tuple(image.size)
    full_w, full_h = int(full_size[0]), int(full_size[1])
    to_full = np.array([full_w / w, full_h / h], dtype=np.float32)

    found = _orb(gray, n_features, grid, mirror=mirror)
    points, descriptors = found[:2]
    mirrored = None
    if mirror:
        mirrored = LocalFeatures(found[2] * to_full, found[3], (full_w, full_h), flipped=True)
    return LocalFeatures(points * to_full, descriptors, (full_w, full_h), mirrored=mirrored)


def merged(a: LocalFeatures, b: LocalFeatures) -> LocalFeatures:
    """One set of features from two computed on the same image (at different scales)."""
    mirrored = None
    if a.mirrored is not None and b.mirrored is not None:
        mirrored = merged(a.mirrored, b.mirrored)
    return LocalFeatures(
        np.vstack([a.points, b.points]), np.vstack([a.descriptors, b.descriptors]), a.size,
        flipped=a.flipped, mirrored=mirrored,
    )


DENSE_SCALES = ((DENSE_FEATURES, DENSE_SIDE), (COARSE_FEATURES, COARSE_SIDE))
"""``(keypoints, longer side)`` of each scale :func:`compute_dense` combines."""


def compute_dense_scale(image: "Image.Image", full_size: tuple[int, int] | None,
                        scale: int) -> LocalFeatures:
    """One of :data:`DENSE_SCALES` (by index) of :func:`compute_dense`, mirror included."""
    n_features, side = DENSE_SCALES[scale]
    return compute_array(image, full_size, n_features=n_features, side=side, grid=QUERY_GRID,
                         mirror=True)


def compute_dense(
    image: "Image.Image", full_size: tuple[int, int] | None = None
) -> LocalFeatures:
    """Features of an image (and of its mirror image) at two more scales, for re-checking a few
    candidates: 3,000 at 1,280 px for a copy the query shows small (a paste-in, a screenshot),
    and 1,000 at 400 px for one it shows large (a crop keeping a quarter of the picture shows it
    at 2-4 times the indexed frame's scale, past the top of ORB's pyramid at 800 px).

    On the benchmark's crops keeping 25-50 % (pairwise, 8 inliers) the two scales together find
    95 %, 1,280 px alone 92 %."""
    return merged(*(compute_dense_scale(image, full_size, i) for i in range(len(DENSE_SCALES))))


def compute(
    image: "Image.Image",
    full_size: tuple[int, int] | None = None,
    *,
    query: bool = False,
) -> LocalFeatures:
    """Keypoints and descriptors of a (possibly reduced) image.

    Parameters
    ----------
    image : PIL.Image.Image or numpy.ndarray, shape (h, w[, 3])
        The decoded working image (any size; it is rescaled to a longer side of 640).
    full_size : tuple of int, optional
        ``(width, height)`` of the original image that ``image`` was reduced from; keypoints
        are returned in those coordinates. Defaults to ``image``'s own size.
    query : bool
        For a query: features from a larger working image (the query may show the indexed
        picture in a small part of itself) and the features of its mirror image too.

    Returns
    -------
    LocalFeatures
        ``points`` shape (n, 2), ``descriptors`` shape (n, 32); n <= 1000.
    """
    if query:
        return compute_array(image, full_size, n_features=QUERY_FEATURES, side=QUERY_SIDE,
                             grid=QUERY_GRID, mirror=True)
    return compute_array(image, full_size, n_features=INDEX_FEATURES, side=WORKING_SIDE,
                         grid=GRID)
