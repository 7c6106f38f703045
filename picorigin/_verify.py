"""Geometric verification: match keypoints of two images and fit a transform with RANSAC.

Two images show the same picture (or part of it) when many keypoint matches agree on one
geometric transform. Matching is one-to-one nearest neighbour in Hamming distance with Lowe's
ratio test, either by brute force (:func:`match_brute_force`, for one pair) or inside the
vocabulary tree's cells (:func:`match_by_words`, about ten times faster, for re-ranking many
candidates). A similarity transform (rotation, uniform scale, translation) is fitted with
RANSAC in a 640-pixel frame and refined to a homography (USAC MAGSAC) when that explains at
least as many matches and stays plausible. A match is accepted with at least
``MIN_INLIERS`` distinct inliers: measured on ``bench/partial_copies.py`` (1,300 queries against
326 images, every candidate verified with a threshold of 5), the best unrelated candidate of a
query has 5 inliers at the median, 8 at the 99th percentile and 9 at most, while true copies
have a median of 84 and a 5th percentile of 15.

Mirrored copies: ORB is not mirror-invariant, so queries also carry the features of their
flipped image; a transform fitted on those is composed with the flip and reported with
``mirror: true``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._features.local import DESCRIPTOR_BYTES, LocalFeatures

__all__ = [
    "MIN_INLIERS",
    "Verification",
    "describe",
    "match_brute_force",
    "match_by_words",
    "match_by_words_many",
    "verify",
    "verify_candidate",
]

MIN_INLIERS = 12
RATIO = 0.8
# Largest Hamming distance (of 256 bits) of a match found by word cells, where often only one
# candidate shares the cell and the ratio test cannot apply.
MAX_DISTANCE = 64
REPROJECTION = 6.0  # RANSAC threshold in pixels of the 640-pixel frame
_MIN_SCALE, _MAX_SCALE = 1 / 16, 16


@dataclass(frozen=True)
class Verification:
    """A fitted transform between a query and an indexed image.

    Attributes
    ----------
    transform : numpy.ndarray, shape (3, 3), float64
        Maps query pixels ``(x, y, 1)`` (original coordinates) to match pixels.
    inliers : int
        Distinct keypoints consistent with it.
    matches : int
        Tentative matches RANSAC saw.
    mirror : bool
        The query is a mirror image of the match.
    query_points, match_points : numpy.ndarray, shape (inliers, 2)
        The inlier keypoints in each image's original coordinates.
    """

    transform: np.ndarray
    inliers: int
    matches: int
    mirror: bool
    query_points: np.ndarray
    match_points: np.ndarray


def _as_u64(descriptors: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(descriptors, dtype=np.uint8).view(np.uint64)


def _one_to_one(qi: np.ndarray, mi: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep, for every match-side keypoint, only its closest query keypoint."""
    if len(qi) == 0:
        return qi, mi
    # One stable sort on (match keypoint, distance) packed into one key: a third of the cost
    # of lexsort, the same order (distances are at most 256).
    order = np.argsort(mi.astype(np.int64) * 512 + dist, kind="stable")
    ms = mi[order]
    first = np.r_[True, ms[1:] != ms[:-1]]
    keep = order[first]
    return qi[keep], mi[keep]


def match_brute_force(
    query: np.ndarray, match: np.ndarray, *, ratio: float = RATIO
) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matches between two descriptor sets by exhaustive Hamming search.

    Parameters
    ----------
    query, match : numpy.ndarray, shapes (n, 32) and (m, 32), uint8

    Returns
    -------
    query_index, match_index : numpy.ndarray, shape (t,), int64
    """
    if len(query) < 2 or len(match) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    dist, nearest = _two_nearest(query, match)
    good = dist[:, 0] < ratio * dist[:, 1]
    qi = np.flatnonzero(good)
    mi = nearest[good, 0].astype(np.int64)
    return _one_to_one(qi, mi, dist[good, 0])


def _two_nearest(query: np.ndarray, match: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hamming distances and indices of each query descriptor's two nearest match descriptors,
    shapes (n, 2). FAISS's flat binary scan: three times faster than OpenCV's batchDistance.
    Which of two equally near descriptors comes first may differ between the two, but such a
    tie never passes the ratio test, so the matches do not."""
    import faiss

    from ._index._threads import threads_for

    index = faiss.IndexBinaryFlat(8 * DESCRIPTOR_BYTES)
    index.add(np.ascontiguousarray(match, dtype=np.uint8))
    with threads_for(len(match)):
        dist, nearest = index.search(np.ascontiguousarray(query, dtype=np.uint8), 2)
    return dist, nearest


def match_by_words(
    query: np.ndarray,
    query_cells: np.ndarray,
    match: np.ndarray,
    match_cells: np.ndarray,
    *,
    ratio: float = RATIO,
    max_distance: int = MAX_DISTANCE,
) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matches among descriptors that fall in the same vocabulary cell.

    Parameters
    ----------
    query, match : numpy.ndarray, shapes (n, 32) and (m, 32), uint8
    query_cells, match_cells : numpy.ndarray, shapes (n,) and (m,), int
        Each descriptor's vocabulary node (a level above the leaves keeps most true matches
        together while leaving a handful of candidates per cell).

    Returns
    -------
    query_index, match_index : numpy.ndarray, shape (t,), int64
    """
    return match_by_words_many(query, query_cells, [(match, match_cells)], ratio=ratio,
                               max_distance=max_distance)[0]


def match_by_words_many(
    query: np.ndarray,
    query_cells: np.ndarray,
    matches: list[tuple[np.ndarray, np.ndarray]],
    *,
    ratio: float = RATIO,
    max_distance: int = MAX_DISTANCE,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`match_by_words` of one query against many images at once: the same matches, in
    the same order, for a fraction of the cost (a few dozen array operations in all instead
    of a few dozen per image).

    Parameters
    ----------
    query : numpy.ndarray, shape (n, 32), uint8
    query_cells : numpy.ndarray, shape (n,), int
    matches : list of (descriptors, cells)
        Each image's descriptors, shape (m_i, 32) uint8, and cells, shape (m_i,) int.

    Returns
    -------
    list of (query_index, match_index)
        One per image, as :func:`match_by_words` returns them.
    """
    empty = np.zeros(0, np.int64)
    images = len(matches)
    sizes = np.array([len(descriptors) for descriptors, _ in matches], np.int64)
    n = len(query)
    if n == 0 or not sizes.sum():
        return [(empty, empty)] * images
    descriptors = np.concatenate([d for d, _ in matches]).astype(np.uint8, copy=False)
    cells = np.concatenate([np.asarray(c, np.int64) for _, c in matches])
    query_cells = np.asarray(query_cells, np.int64)
    span = int(max(cells.max(), query_cells.max())) + 1
    # Every (image, cell) is one key: an image's descriptors sorted by cell, images in turn;
    # where each key's descriptors start in that order, and how many, by counting.
    key = np.repeat(np.arange(images, dtype=np.int64), sizes) * span + cells
    order = np.argsort(key, kind="stable")
    per_key = np.bincount(key, minlength=images * span)
    first_of_key = np.cumsum(per_key) - per_key
    wanted = (np.arange(images, dtype=np.int64)[:, None] * span + query_cells[None, :]).ravel()
    lo, counts = first_of_key[wanted], per_key[wanted]
    total = int(counts.sum())
    if total == 0:
        return [(empty, empty)] * images
    # One run of candidates per (image, query keypoint), runs in ascending order.
    ends = np.cumsum(counts)
    starts = ends - counts
    mi = order[np.arange(total) - np.repeat(starts - lo, counts)]  # into the concatenation
    dist = np.bitwise_count(_as_u64(query)[np.repeat(np.tile(np.arange(n), images), counts)]
                            ^ _as_u64(descriptors)[mi]).sum(axis=1, dtype=np.int64)
    # Per run: its nearest candidate, tested against the second nearest if any. Minima over
    # the runs, no sort: distance and position packed in one key, so of two equally near
    # candidates the first in the run wins.
    has = counts > 0
    runs = np.flatnonzero(has)
    packed = (dist << 32) | np.arange(total, dtype=np.int64)
    nearest = np.minimum.reduceat(packed, starts[has])
    picked, best = nearest & 0xFFFFFFFF, nearest >> 32
    packed[picked] = np.iinfo(np.int64).max
    second = np.minimum.reduceat(packed, starts[has]) >> 32  # huge where a run has one
    ok = (best <= max_distance) & ((counts[has] == 1) | (best < ratio * second))
    picked, runs = picked[ok], runs[ok]
    if len(picked) == 0:
        return [(empty, empty)] * images
    # One to one: every image keypoint keeps only its closest query keypoint. Sorted by
    # (image keypoint, distance): by image, then by keypoint, as match_by_words returns them.
    by_match = np.argsort(mi[picked] * 512 + dist[picked], kind="stable")
    chosen_mi = mi[picked][by_match]
    first = np.r_[True, chosen_mi[1:] != chosen_mi[:-1]]
    chosen_mi, chosen_run = chosen_mi[first], runs[by_match][first]
    offsets = np.r_[0, np.cumsum(sizes)]
    bounds = np.searchsorted(chosen_mi, offsets)
    return [(chosen_run[a:b] % n, chosen_mi[a:b] - offsets[i])
            for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]


def _distinct(points: np.ndarray) -> int:
    """Number of distinct pixel positions (ORB finds the same corner at several pyramid levels)."""
    if len(points) == 0:
        return 0
    return len(np.unique(np.round(points).astype(np.int64), axis=0))


def _scale_matrix(s: float) -> np.ndarray:
    return np.diag([s, s, 1.0])


def _flip_matrix(width: int) -> np.ndarray:
    """Original -> flipped-image coordinates (and back: it is its own inverse)."""
    return np.array([[-1.0, 0.0, float(width)], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def _plausible_homography(h: np.ndarray, size: tuple[int, int]) -> bool:
    """Reject homographies that fold, flip or bend the frame implausibly."""
    if not np.all(np.isfinite(h)) or abs(h[2, 2]) < 1e-9:
        return False
    h = h / h[2, 2]
    w, hh = size
    corners = np.array([[0, 0, 1], [w, 0, 1], [w, hh, 1], [0, hh, 1]], dtype=np.float64).T
    denominators = h[2] @ corners
    if np.any(denominators < 0.8) or np.any(denominators > 1.25):
        return False  # strong perspective: copies and photographed prints are nearly frontal
    linear = h[:2, :2]
    det = float(np.linalg.det(linear))
    if det <= 0:
        return False
    scale = math.sqrt(det)
    singular = np.linalg.svd(linear, compute_uv=False)
    return _MIN_SCALE < scale < _MAX_SCALE and singular[0] / max(singular[1], 1e-9) < 3.0


def fit(
    query_points: np.ndarray, match_points: np.ndarray, query_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray] | None:
    """Fit a query->match transform to tentative matches (points already in 640-pixel frames).

    Returns the 3 x 3 transform and the boolean inlier mask, or None.
    """
    import cv2

    if len(query_points) < 4:
        return None
    src = np.ascontiguousarray(query_points, dtype=np.float32)
    dst = np.ascontiguousarray(match_points, dtype=np.float32)
    affine, mask = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=REPROJECTION, maxIters=2000,
        confidence=0.995,
    )
    if affine is None or mask is None:
        return None
    scale = math.sqrt(abs(float(np.linalg.det(affine[:, :2]))))
    if not _MIN_SCALE < scale < _MAX_SCALE:
        return None  # a collapsed fit: many points onto one
    transform = np.vstack([affine, [0.0, 0.0, 1.0]])
    inliers = mask.ravel().astype(bool)
    if inliers.sum() >= 2 * MIN_INLIERS:
        # Photographed copies (an object seen at an angle) need perspective; keep it only when
        # it explains at least as many matches and looks like a real view change.
        h, h_mask = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, REPROJECTION)
        if h is not None and h_mask is not None and h_mask.sum() >= inliers.sum():
            if _plausible_homography(h, query_size):
                transform, inliers = h / h[2, 2], h_mask.ravel().astype(bool)
    return transform, inliers


def _verify_one(
    query: LocalFeatures,
    match: LocalFeatures,
    pairs: tuple[np.ndarray, np.ndarray],
    min_inliers: int | None = None,
) -> Verification | None:
    qi, mi = pairs
    if len(qi) < (MIN_INLIERS if min_inliers is None else min_inliers):
        return None
    sq, sm = query.working_scale, match.working_scale
    q_pts = query.points[qi].astype(np.float64)
    m_pts = match.points[mi].astype(np.float64)
    fitted = fit(q_pts * sq, m_pts * sm, (round(query.size[0] * sq), round(query.size[1] * sq)))
    if fitted is None:
        return None
    transform, inliers = fitted
    # Back to original pixel coordinates: full_q -> frame_q -> frame_m -> full_m.
    transform = _scale_matrix(1 / sm) @ transform @ _scale_matrix(sq)
    q_in, m_in = q_pts[inliers], m_pts[inliers]
    count = min(_distinct(q_in), _distinct(m_in))
    if query.flipped:
        flip = _flip_matrix(query.size[0])
        transform = transform @ flip
        q_in = q_in.copy()
        q_in[:, 0] = query.size[0] - q_in[:, 0]
    return Verification(transform / transform[2, 2], count, len(qi), query.flipped, q_in, m_in)


def verify(
    query: LocalFeatures,
    match: LocalFeatures,
    *,
    query_cells: np.ndarray | None = None,
    mirrored_cells: np.ndarray | None = None,
    match_cells: np.ndarray | None = None,
    mirror: bool = True,
    direct: bool = True,
    min_inliers: int | None = None,
    matched: dict[bool, tuple[np.ndarray, np.ndarray]] | None = None,
) -> Verification | None:
    """Best transform between ``query`` (and its mirror image) and ``match``.

    Parameters
    ----------
    query, match : LocalFeatures
        ``query.mirrored`` is tried too when present and ``mirror`` is true.
    query_cells, mirrored_cells, match_cells : numpy.ndarray, optional
        Vocabulary cells of each descriptor set; when all needed are given, matching is by
        cells (:func:`match_by_words`), else by brute force.
    mirror, direct : bool
        Which orientations to try.
    min_inliers : int, optional
        Acceptance threshold; default ``MIN_INLIERS``.
    matched : dict, optional
        Cell matches already made (:func:`match_by_words_many`), keyed by orientation
        (``False`` as it is, ``True`` mirrored), used in place of matching again.

    Returns
    -------
    Verification or None
        None when no orientation reaches ``min_inliers`` inliers.
    """
    min_inliers = MIN_INLIERS if min_inliers is None else min_inliers
    tries = []
    if direct:
        tries.append((query, query_cells))
    if mirror and query.mirrored is not None:
        tries.append((query.mirrored, mirrored_cells))
    best = None
    for features, cells in tries:
        if matched is not None and features.flipped in matched:
            pairs = matched[features.flipped]
        elif cells is not None and match_cells is not None:
            pairs = match_by_words(features.descriptors, cells, match.descriptors, match_cells)
        else:
            pairs = match_brute_force(features.descriptors, match.descriptors)
        result = _verify_one(features, match, pairs, min_inliers)
        if result is not None and (best is None or result.inliers > best.inliers):
            best = result
    if best is None or best.inliers < min_inliers:
        return None
    return best


def verify_candidate(
    query: LocalFeatures,
    match: LocalFeatures,
    *,
    query_cells: np.ndarray,
    mirrored_cells: np.ndarray | None,
    match_cells: np.ndarray,
    recheck_from: int,
    mirror: bool = True,
    direct: bool = True,
    matched: dict[bool, tuple[np.ndarray, np.ndarray]] | None = None,
) -> tuple[Verification | None, bool]:
    """Verify a candidate an inverted file shortlisted: matched within vocabulary cells, and
    matched again exhaustively when the result is borderline (from ``recheck_from`` to twice
    ``MIN_INLIERS`` inliers), since cell matching misses some true matches across strong
    changes of scale or viewpoint.

    Returns
    -------
    (Verification or None, bool)
        The accepted verification (``MIN_INLIERS`` or more), and whether it was matched twice.
    """
    orientations = {"direct": direct, "mirror": mirror}
    result = verify(query, match, query_cells=query_cells, mirrored_cells=mirrored_cells,
                    match_cells=match_cells, min_inliers=recheck_from, matched=matched,
                    **orientations)
    again = None
    if result is not None and result.inliers < 2 * MIN_INLIERS:
        again = verify(query, match, min_inliers=recheck_from, **orientations)
        if again is not None and again.inliers > result.inliers:
            result = again
    accepted = result if result is not None and result.inliers >= MIN_INLIERS else None
    return accepted, again is not None


# ---- describing a verified match -----------------------------------------------------------

def _rectangle(size: tuple[int, int]) -> np.ndarray:
    w, h = size
    return np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)


def _apply(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    homogeneous = np.c_[points, np.ones(len(points))] @ transform.T
    return homogeneous[:, :2] / homogeneous[:, 2:3]


def _clip_polygon(polygon: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The part of a convex polygon inside the image rectangle (Sutherland-Hodgman)."""
    w, h = size
    edges = [(0, 0.0, 1), (0, float(w), -1), (1, 0.0, 1), (1, float(h), -1)]
    points = [tuple(p) for p in polygon]
    for axis, bound, sign in edges:
        if not points:
            break
        out = []
        for i, current in enumerate(points):
            previous = points[i - 1]
            inside_c = sign * (current[axis] - bound) >= 0
            inside_p = sign * (previous[axis] - bound) >= 0
            if inside_c != inside_p:
                t = (bound - previous[axis]) / (current[axis] - previous[axis])
                out.append(tuple(previous[j] + t * (current[j] - previous[j]) for j in range(2)))
            if inside_c:
                out.append(current)
        points = out
    return np.array(points, dtype=np.float64).reshape(-1, 2)


def _area(polygon: np.ndarray) -> float:
    if len(polygon) < 3:
        return 0.0
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _box(polygon: np.ndarray) -> list[int]:
    if len(polygon) == 0:
        return [0, 0, 0, 0]
    # Rounded first: a corner at 80.0000000001 (float error of an exact transform) is pixel 80.
    x0, y0 = np.floor(np.round(polygon.min(axis=0), 6)).astype(int)
    x1, y1 = np.ceil(np.round(polygon.max(axis=0), 6)).astype(int)
    return [int(x0), int(y0), int(x1), int(y1)]


def _region(
    transform: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]
) -> tuple[np.ndarray, float]:
    """The part of the ``to`` image that the ``from`` image's frame lands on, and its share."""
    landed = _apply(transform, _rectangle(from_size))
    region = _clip_polygon(landed, to_size)
    return region, _area(region) / float(to_size[0] * to_size[1])


def geometry(transform: np.ndarray, query_size: tuple[int, int], mirror: bool) -> dict:
    """Rotation, scale and mirror implied by a query->match transform.

    ``rotation``: degrees counter-clockwise by which the query shows the indexed picture
    turned, in (-180, 180]; with ``mirror`` the query is the picture flipped left-right, then
    turned. ``scale``: how many query pixels one
    indexed pixel became (0.5: the copy is half the size).
    """
    centre = np.array([query_size[0] / 2, query_size[1] / 2])
    t = transform / transform[2, 2]
    # Jacobian of the (possibly projective) map at the query's centre.
    denominator = t[2, 0] * centre[0] + t[2, 1] * centre[1] + t[2, 2]
    mapped = _apply(t, centre[None])[0]
    jacobian = (t[:2, :2] - np.outer(mapped, t[2, :2])) / denominator
    if mirror:
        # query = turn(mirror(match)), so query->match is mirror(turn^-1): undo the mirror.
        jacobian = np.diag([-1.0, 1.0]) @ jacobian
    # In y-down pixel coordinates the query->match Jacobian of a copy turned counter-clockwise
    # by a is the rotation matrix of +a.
    angle = math.degrees(math.atan2(jacobian[1, 0], jacobian[0, 0]))
    scale = 1.0 / math.sqrt(max(abs(float(np.linalg.det(jacobian))), 1e-12))
    rotation = round(angle, 1)
    if rotation <= -180:
        rotation += 360
    return {"rotation": 0.0 if rotation == 0 else rotation, "scale": round(scale, 3),
            "mirror": bool(mirror)}


def score(inliers: int) -> float:
    """Confidence in [0, 1): ``inliers / (inliers + 20)`` (12 inliers 0.38, 60 0.75, 200 0.91)."""
    return round(inliers / (inliers + 20.0), 4)


# A verified match counts as partial when the matched region covers less than this share of
# either image (a crop keeping 50 % of the area, or a copy pasted into a larger scene).
PARTIAL_BELOW = 0.8


def describe(
    verification: Verification, query_size: tuple[int, int], match_size: tuple[int, int]
) -> dict:
    """JSON-ready description of a verified match.

    Returns
    -------
    dict
        ``kind`` ("partial" or "near_duplicate"), ``score``, ``query_box`` and ``match_box``
        ([x0, y0, x1, y1] in each image's original pixels), ``query_overlap`` and
        ``match_overlap`` (share of each image's area in the matched region), ``transform``
        (3 x 3, query -> match), ``rotation``, ``scale``, ``mirror``, ``inliers``.
    """
    out = describe_transform(verification.transform, query_size, match_size,
                             mirror=verification.mirror, score=score(verification.inliers))
    out["inliers"] = int(verification.inliers)
    return out


def describe_transform(
    transform: np.ndarray,
    query_size: tuple[int, int],
    match_size: tuple[int, int],
    *,
    mirror: bool,
    score: float,
) -> dict:
    """The description of :func:`describe` for any query -> match ``transform`` (3 x 3), however
    it was found (keypoints, a framing window, a located crop), without ``inliers``."""
    t = np.asarray(transform, dtype=np.float64)
    query_region, query_overlap = _region(np.linalg.inv(t), match_size, query_size)
    match_region, match_overlap = _region(t, query_size, match_size)
    partial = min(query_overlap, match_overlap) < PARTIAL_BELOW
    out = {
        "kind": "partial" if partial else "near_duplicate",
        "score": round(float(score), 4),
        "query_box": _box(query_region),
        "match_box": _box(match_region),
        "query_overlap": round(query_overlap, 3),
        "match_overlap": round(match_overlap, 3),
        "transform": [[round(float(v), 6) for v in row] for row in t],
    }
    out.update(geometry(t, query_size, mirror))
    return out
