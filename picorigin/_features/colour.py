"""A small colour signature: an image's dominant colours in CIELAB, with their shares.

The image is reduced to at most 64 x 64 pixels, converted from sRGB to CIELAB (D65), and its
distinct colours (5 bits a channel, weighted by pixel count) are clustered with k-means
(k = 5, k-means++ seeded deterministically, at most 12 rounds).
Clusters closer than 10 units of CIE76 delta E are merged and those under 3 % of the pixels
dropped, so a flat image has one colour and a busy one five. CIELAB is used because its
Euclidean distance (delta E) roughly follows perceived difference, which RGB's does not.

A signature is a float32 array of shape (k, 4), rows ``(L, a, b, share)``, most common first,
shares summing to 1. :func:`distance` compares two signatures; :func:`presence` says how much
of an image is close to one named colour (the ``--colour`` filter).
"""

from __future__ import annotations

import re

import numpy as np

from .._errors import SettingError

__all__ = [
    "COLOUR_NAMES",
    "compute",
    "distance",
    "lab_to_rgb",
    "parse_colour",
    "presence",
    "rgb_to_lab",
    "to_json",
]

SIDE = 64
COLOURS = 5
_ROUNDS = 12
_MERGE_DE = 10.0
_MIN_SHARE = 0.03
# presence(): a pixel colour this far (delta E) from the asked colour counts for nothing
PRESENCE_DE = 25.0

# Everyday names for the --colour filter, as sRGB.
COLOUR_NAMES: dict[str, tuple[int, int, int]] = {
    "red": (210, 35, 35),
    "orange": (240, 140, 30),
    "yellow": (245, 215, 50),
    "green": (50, 150, 60),
    "teal": (0, 128, 128),
    "blue": (40, 80, 190),
    "purple": (120, 60, 160),
    "pink": (240, 140, 180),
    "brown": (120, 80, 45),
    "black": (15, 15, 15),
    "grey": (128, 128, 128),
    "gray": (128, 128, 128),
    "white": (245, 245, 245),
}

_WHITE = np.array([0.95047, 1.0, 1.08883], dtype=np.float64)
_RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_LINEAR = np.array([c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
                    for c in np.arange(256) / 255.0])


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB to CIELAB (D65).

    Parameters
    ----------
    rgb : ndarray of uint8, shape (..., 3)

    Returns
    -------
    ndarray of float32, shape (..., 3)
        L in [0, 100], a and b roughly in [-110, 110].
    """
    xyz = _LINEAR[np.asarray(rgb, dtype=np.uint8)] @ _RGB_TO_XYZ.T / _WHITE
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    lab = np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                    200 * (f[..., 1] - f[..., 2])], axis=-1)
    return lab.astype(np.float32)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIELAB (D65) to sRGB, clipped to the gamut.

    Parameters
    ----------
    lab : ndarray, shape (..., 3)

    Returns
    -------
    ndarray of uint8, shape (..., 3)
    """
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    xyz = np.where(f > 6 / 29, f**3, 3 * (6 / 29) ** 2 * (f - 4 / 29)) * _WHITE
    linear = np.clip(xyz @ _XYZ_TO_RGB.T, 0, 1)
    srgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.round(np.clip(srgb, 0, 1) * 255).astype(np.uint8)


def _kmeans(points: np.ndarray, weights: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Weighted Lloyd k-means, k-means++ seeded from a fixed seed.

    Returns the centres, shape (k', 3) with k' <= k, and each centre's share of the weight.
    """
    rng = np.random.default_rng(0)
    centres = [points[rng.choice(len(points), p=weights)]]
    nearest = ((points - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        mass = nearest * weights
        if mass.sum() <= 1e-9:
            break  # fewer distinct colours than k
        centres.append(points[rng.choice(len(points), p=mass / mass.sum())])
        nearest = np.minimum(nearest, ((points - centres[-1]) ** 2).sum(1))
    centres = np.array(centres)
    norms = (points**2).sum(1)[:, None]
    for _ in range(_ROUNDS):
        labels = (norms - 2 * points @ centres.T + (centres**2).sum(1)).argmin(1)
        mass = np.bincount(labels, weights, minlength=len(centres))
        sums = np.stack([np.bincount(labels, weights * points[:, j], minlength=len(centres))
                         for j in range(3)], axis=1)
        moved = np.where(mass[:, None] > 0, sums / np.maximum(mass, 1e-12)[:, None], centres)
        done = np.abs(moved - centres).max() < 0.05
        centres = moved
        if done:
            break
    labels = (norms - 2 * points @ centres.T + (centres**2).sum(1)).argmin(1)
    return centres, np.bincount(labels, weights, minlength=len(centres))


def compute(image) -> np.ndarray:
    """The dominant colours of an image.

    Parameters
    ----------
    image : PIL.Image.Image
        Any mode; converted to RGB.

    Returns
    -------
    ndarray of float32, shape (k, 4), 1 <= k <= 5
        Rows ``(L, a, b, share)``, largest share first; shares sum to 1.
    """
    from PIL import Image

    small = image if image.mode == "RGB" else image.convert("RGB")
    if max(small.size) > SIDE:
        scale = SIDE / max(small.size)
        size = (max(1, round(small.width * scale)), max(1, round(small.height * scale)))
        small = small.resize(size, Image.Resampling.BOX)
    # cluster distinct colours (5 bits a channel) weighted by their pixel counts: far fewer
    # points than pixels, same answer to within the quantisation
    rgb = np.asarray(small).reshape(-1, 3).astype(np.int32) >> 3
    keys, counts = np.unique((rgb[:, 0] << 10) | (rgb[:, 1] << 5) | rgb[:, 2], return_counts=True)
    colours = np.stack([keys >> 10, (keys >> 5) & 31, keys & 31], axis=1) * 8 + 4
    points = rgb_to_lab(colours.astype(np.uint8)).astype(np.float64)
    centres, shares = _kmeans(points, counts / counts.sum(), COLOURS)
    # merge near-identical clusters (a k too large for a plain image), largest first
    kept: list[list] = []
    for i in np.argsort(-shares):
        if shares[i] <= 0:
            continue
        for entry in kept:
            if np.linalg.norm(entry[0] - centres[i]) < _MERGE_DE:
                total = entry[1] + shares[i]
                entry[0] = (entry[0] * entry[1] + centres[i] * shares[i]) / total
                entry[1] = total
                break
        else:
            kept.append([centres[i].copy(), shares[i]])
    kept = [entry for entry in kept if entry[1] >= _MIN_SHARE] or kept[:1]
    kept.sort(key=lambda entry: -entry[1])
    total = sum(entry[1] for entry in kept)
    return np.array([[*entry[0], entry[1] / total] for entry in kept], dtype=np.float32)


def distance(first: np.ndarray, second: np.ndarray) -> float:
    """How different two palettes look, in delta E units (0 for the same palette).

    Each colour of one palette is matched to its nearest colour in the other; the distances are
    averaged weighted by share, in both directions, and the two directions averaged.

    Parameters
    ----------
    first, second : ndarray of float32, shape (k, 4)
        Signatures from :func:`compute`.

    Returns
    -------
    float
    """
    gaps = np.linalg.norm(first[:, None, :3] - second[None, :, :3], axis=2)
    there = float((gaps.min(1) * first[:, 3]).sum())
    back = float((gaps.min(0) * second[:, 3]).sum())
    return (there + back) / 2


def presence(palette: np.ndarray, lab: np.ndarray) -> float:
    """How much of the image is close to one colour, in [0, 1].

    Parameters
    ----------
    palette : ndarray of float32, shape (k, 4)
    lab : ndarray, shape (3,)
        The colour asked for (see :func:`parse_colour`).

    Returns
    -------
    float
        Sum over the palette of ``share * max(0, 1 - deltaE / 25)``.
    """
    gaps = np.linalg.norm(palette[:, :3] - np.asarray(lab, dtype=np.float32), axis=1)
    return float((palette[:, 3] * np.clip(1 - gaps / PRESENCE_DE, 0, 1)).sum())


def parse_colour(text: str) -> np.ndarray:
    """A colour name (``red``, ``blue``, ...) or ``#rrggbb`` as CIELAB, shape (3,).

    Raises
    ------
    SettingError
        If ``text`` is neither a known name nor a hex colour.
    """
    cleaned = text.strip().lower()
    if cleaned in COLOUR_NAMES:
        rgb = COLOUR_NAMES[cleaned]
    elif re.fullmatch(r"#?[0-9a-f]{6}", cleaned):
        digits = cleaned.lstrip("#")
        rgb = tuple(int(digits[i:i + 2], 16) for i in (0, 2, 4))
    else:
        names = ", ".join(sorted(COLOUR_NAMES))
        raise SettingError(f"unknown colour {text!r}: use #rrggbb or one of {names}")
    return rgb_to_lab(np.array(rgb, dtype=np.uint8))


def to_json(palette: np.ndarray) -> list[dict]:
    """A signature as ``[{"hex": "#rrggbb", "share": 0.42}, ...]``."""
    rgb = lab_to_rgb(palette[:, :3])
    return [{"hex": "#%02x%02x%02x" % tuple(int(c) for c in colour), "share": round(float(s), 3)}
            for colour, s in zip(rgb, palette[:, 3])]
