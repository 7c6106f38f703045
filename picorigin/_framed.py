"""Copies framed inside a query: a picture pasted into another, or shown in a screenshot.

The query is searched window by window (``picorigin._features.windows`` finds rectangles with
long straight sides): the global fingerprint of a window that *is* an indexed picture matches
it as closely as a resized copy would, however little texture the picture has or however small
it is in the query, which is where local features give out. A hit is described as a local-stage
match is: boxes, overlaps, a 3 x 3 query->match transform and the rotation/scale/mirror it
implies.
"""

from __future__ import annotations

import numpy as np

from . import _verify
from ._features import fingerprint, windows

__all__ = ["describe", "window_probes"]

# Corners of an image as (x, y) shares of its size: top-left, top-right, bottom-left, bottom-right.
_CORNERS = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])


def window_probes(image) -> tuple[np.ndarray, list[tuple[int, fingerprint.Dihedral, np.ndarray]]]:
    """Windows of ``image`` and the fingerprint probes to search each with.

    Parameters
    ----------
    image : PIL.Image.Image
        The decoded query (any size).

    Returns
    -------
    boxes : numpy.ndarray, shape (n, 4)
        ``(left, top, right, bottom)`` of each window, as shares of the image's size.
    probes : list of (int, Dihedral, numpy.ndarray of uint8, shape (32,))
        ``(window, orientation probed, code)``.
    """
    boxes = windows.compute(image)
    if not len(boxes):
        return boxes, []
    # Luma once; each window is a slice of it (what cropping, then converting, would give).
    luma = np.asarray(image.convert("L") if image.mode != "L" else image)
    h, w = luma.shape
    out = []
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        crop = luma[round(y0 * h) : round(y1 * h), round(x0 * w) : round(x1 * w)]
        coeffs = fingerprint.coefficients(crop)
        if fingerprint.informative(coeffs):  # a blank panel of a screenshot frames nothing
            out.extend((i, g, code) for g, code in fingerprint.probes(coeffs))
    return boxes, out


def _transform(box: list[float], match_size: tuple[int, int], orientation: str) -> np.ndarray:
    """The query->match map taking the window ``box`` onto the whole indexed picture, which the
    window shows turned/mirrored by ``orientation`` (how the copy looks next to the original)."""
    import cv2

    element = next(g for g in fingerprint.ORIENTATIONS
                   if fingerprint.orientation_name(g) == orientation)
    # Which original corner shows at each of the window's corners.
    labels = fingerprint.apply_spatial(np.arange(4).reshape(2, 2), element)
    x0, y0, x1, y1 = box
    source = np.float32([[x0, y0], [x1, y0], [x0, y1]])
    target = np.float32([_CORNERS[labels[0, 0]], _CORNERS[labels[0, 1]], _CORNERS[labels[1, 0]]])
    target *= np.float32(match_size)
    return np.vstack([cv2.getAffineTransform(source, target), [0.0, 0.0, 1.0]])


def describe(
    box: list[float],
    query_size: tuple[int, int],
    match_size: tuple[int, int],
    orientation: str,
    distance: int,
) -> dict:
    """JSON-ready description of a window that matched an indexed picture.

    Parameters
    ----------
    box : list of float
        The window ``[x0, y0, x1, y1]`` in the query's original pixels.
    query_size, match_size : tuple of int
        ``(width, height)`` of the query and of the indexed picture.
    orientation : str
        How the window shows the picture (``"identity"``, ``"mirror_rot90"``, ...).
    distance : int
        Hamming distance of the window's fingerprint to the picture's.

    Returns
    -------
    dict
        As :func:`picorigin._verify.describe_transform`: ``query_box`` is the window,
        ``match_box`` the whole picture, ``score`` comes from ``distance`` as a near-duplicate's
        does.
    """
    t = _transform(box, match_size, orientation)
    return _verify.describe_transform(t, query_size, match_size,
                                      mirror=orientation.startswith("mirror"),
                                      score=fingerprint.similarity(distance))
