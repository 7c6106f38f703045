"""Locating a crop by its pixels: for pictures too plain for keypoints.

A crop of a defocused background, a misty landscape or a night sky has too few corners for
ORB, yet its pixels are still those of a rectangle of the original. Normalised cross-correlation
of the query against the indexed picture's thumbnail, over the scales a crop can have, finds
that rectangle: the peak must be near-perfect (the same pixels, recompressed) and *unique*
(a plain gradient correlates as well everywhere along it, and then no place can be claimed).

This runs only on a few candidates the deep stage already ranks near-certain (see
``Engine._confirm_similar``), on 256-pixel thumbnails: a few milliseconds each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CropMatch", "describe", "grey", "locate"]

MIN_CORRELATION = 0.98  # peak normalised cross-correlation of a true crop (p1: 0.992)
MIN_LEAD = 0.04  # ... above the best place farther than a quarter of its size (p5: 0.10)
MIN_WIDTH = 0.25  # crops down to this share of the picture's width (and height) are looked for
SCALE_STEP = 1.06
BLUR = 1.5  # Gaussian sigma, thumbnail pixels
MIN_TEMPLATE = 24  # pixels: smaller templates correlate by chance


@dataclass(frozen=True)
class CropMatch:
    """Where a query lies in a picture, as shares of the picture's size.

    Attributes
    ----------
    box : tuple of float
        ``(left, top, right, bottom)``, each 0-1.
    correlation : float
        Peak normalised cross-correlation (-1 to 1).
    lead : float
        How far the peak stands above the best correlation elsewhere.
    """

    box: tuple[float, float, float, float]
    correlation: float
    lead: float


def grey(image) -> np.ndarray:
    """``image`` as :func:`locate` reads it, shape (h, w), float32: made once, a query can be
    looked for in several pictures without converting it again (a 1,280-pixel query took a
    quarter of each search)."""
    import cv2

    array = np.asarray(image)
    if array.ndim == 2 and array.dtype == np.float32:
        return array
    if array.ndim == 3:
        array = cv2.cvtColor(np.ascontiguousarray(array[..., :3]), cv2.COLOR_RGB2GRAY)
    return array.astype(np.float32)


def _lead(scores: np.ndarray, at: tuple[int, int], radius: tuple[int, int]) -> float:
    """Peak minus the best score outside a ``radius`` (rows, cols) around it."""
    (y, x), (ry, rx) = at, radius
    masked = scores.copy()
    masked[max(0, y - ry) : y + ry + 1, max(0, x - rx) : x + rx + 1] = -1
    return float(scores[y, x] - masked.max())


def _correlate(scene: np.ndarray, query: np.ndarray, width: int, aspect: float):
    """The query at ``width`` pixels (height ``width * aspect``), blurred, slid over ``scene``:
    ``(peak, x, y, width, height, scores)``, or None when it does not fit."""
    import cv2

    sh, sw = scene.shape
    height = round(width * aspect)
    if min(width, height) < MIN_TEMPLATE // 2 or height > sh or width > sw:
        return None
    template = cv2.resize(query, (width, height), interpolation=cv2.INTER_AREA)
    template = cv2.GaussianBlur(template, (0, 0), BLUR)
    scores = cv2.matchTemplate(scene, template, cv2.TM_CCOEFF_NORMED)
    _, peak, _, (x, y) = cv2.minMaxLoc(scores)
    return float(peak), x, y, width, height, scores


def locate(query, picture) -> CropMatch | None:
    """Find ``query`` as an axis-aligned crop of ``picture`` (same orientation, any scale).

    Parameters
    ----------
    query, picture : PIL.Image.Image or numpy.ndarray, shape (h, w[, 3])
        ``picture`` is best a thumbnail (about 256 px); ``query`` any size, or :func:`grey`
        of it.

    Returns
    -------
    CropMatch or None
        None unless the best place correlates at least ``MIN_CORRELATION`` and leads every
        other place by ``MIN_LEAD``.
    """
    import cv2

    scene, query = grey(picture), grey(query)
    ph, pw = scene.shape
    qh, qw = query.shape
    if min(ph, pw, qh, qw) < MIN_TEMPLATE or float(query.std()) < 2.0:
        return None  # too small, or one flat colour that would fit anywhere
    aspect = qh / qw
    if max(qh, qw) > max(ph, pw):  # templates are never larger than the picture: shrink once
        factor = max(ph, pw) / max(qh, qw)
        query = cv2.resize(query, (max(1, round(qw * factor)), max(1, round(qh * factor))),
                           interpolation=cv2.INTER_AREA)
    # Both blurred a little: an error of a pixel in place or of 1 % in scale then costs a
    # textured crop little correlation (unblurred, 2 % cost 0.995 -> 0.78 on grass).
    blurred = cv2.GaussianBlur(scene, (0, 0), BLUR)
    half = cv2.resize(blurred, (pw // 2, ph // 2), interpolation=cv2.INTER_AREA)
    # The crop's width as a share of the picture's: from the largest that fits down in steps
    # of 6 % on the half-size scene; the two best then to the pixel at full size.
    largest = min(1.0, ph * qw / (pw * qh))
    coarse = [largest / SCALE_STEP**i for i in range(64) if largest / SCALE_STEP**i >= MIN_WIDTH]
    found = [(share, hit) for share in coarse
             if (hit := _correlate(half, query, round(share * pw / 2), aspect))]
    if not found:
        return None
    found.sort(key=lambda item: -item[1][0])
    centres = [found[0][0]] + [s for s, _ in found[1:] if abs(np.log(s / found[0][0])) > 0.07][:1]
    widths = {
        width
        for centre in centres
        for width in range(round(centre * pw / SCALE_STEP), round(centre * pw * SCALE_STEP) + 1)
        if width <= largest * pw + 0.5
    }
    # Every other width, then the two beside the best (correlation is smooth in scale).
    hits = [hit for width in sorted(widths)[::2]
            if (hit := _correlate(blurred, query, width, aspect))]
    if not hits:
        return None
    best = max(hits, key=lambda hit: hit[0])
    for width in (best[3] - 1, best[3] + 1):
        hit = _correlate(blurred, query, width, aspect) if width in widths else None
        if hit and hit[0] > best[0]:
            best = hit
    peak, x, y, tw, th, scores = best
    if peak < MIN_CORRELATION:
        return None
    lead = _lead(scores, (y, x), (max(1, th // 4), max(1, tw // 4)))
    if lead < MIN_LEAD:
        return None
    return CropMatch((x / pw, y / ph, (x + tw) / pw, (y + th) / ph), peak, lead)


def describe(match: CropMatch, query_size: tuple[int, int], match_size: tuple[int, int]) -> dict:
    """JSON-ready description of a located crop: as
    :func:`picorigin._verify.describe_transform`, with ``correlation`` as the score and as
    evidence of its own."""
    from . import _verify

    x0, y0, x1, y1 = match.box
    (w, h), (qw, qh) = match_size, query_size
    t = np.array([
        [(x1 - x0) * w / qw, 0.0, x0 * w],
        [0.0, (y1 - y0) * h / qh, y0 * h],
        [0.0, 0.0, 1.0],
    ])
    out = _verify.describe_transform(t, query_size, match_size, mirror=False,
                                     score=match.correlation)
    out["correlation"] = round(float(match.correlation), 4)
    return out
