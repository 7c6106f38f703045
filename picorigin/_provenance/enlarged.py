"""Was a picture enlarged from a smaller copy? The traces an enlargement leaves in the pixels.

How much detail a picture holds cannot tell an enlargement from a soft photograph: a macro shot
with a defocused background, or a portrait, carries as little fine detail as a copy enlarged
from a quarter of its size, and an absolute measure of detail called such originals upscales.
This module looks instead for what enlarging leaves behind, and for which factor.

The block grid of a smaller JPEG
--------------------------------
Nearly every picture worth enlarging was a JPEG: compressed in 8x8 blocks, whose edges leave
faint steps (the quantisation of each block's mean and slopes). Enlarging by ``u`` stretches
that grid to a period of ``8u`` pixels, and resampling, sharpening and recompressing keep it.
A genuine photograph has no grid there: its own blocks have a period of 8, and a reduction
shrinks any grid below 8. So for a larger copy B of a smaller copy A, the question "is B an
enlargement of a picture of A's size?" becomes "does B carry a grid of period
``8 * side(B) / side(A)``?", one period known in advance, looked up in B's own pixels.

:func:`measure` finds the grids: for each column, the mean over rows of the absolute second
difference, clipped so that the edges of the picture weigh no more than the faint steps between
blocks; the same for rows. In each half of the image and each direction (four profiles, whose
noise shrinks when averaged while a grid runs through all), the power spectrum of the profile;
at every period from 8.8 to 128 pixels (enlargements by 1.1 to 16), the power at that frequency
over the geometric mean of its neighbourhood (+-3 % to 15 %), as log10, averaged over the four;
where the second harmonic lies above a period of 8.7, the lower of the two. Peaks of that score
over :data:`GRID_FLOOR` are kept as (period, score): a handful of numbers per image, stored at
ingest, so that a search can ask about any factor without the file.

Two readings are kept. The *sharp* one (clip 4 grey levels) hears a grid best. But a reduction
of a JPEG holds that JPEG's grid shrunk below 8 px, and the clipped absolute value (a
nonlinearity) makes it beat against the reduction's own 8-px grid into false lines at longer
periods: the 1333-px reduction of a 2000-px JPEG showed a 16-px line, the period a 2x
enlargement of a 666-px copy leaves. The *smoothed* reading (a Gaussian of sigma 1 px first,
removing both fine grids before the nonlinearity; clip 0.3) hears fewer beats and fewer grids.
A pair is judged on the smoothed reading, or on the sharp one from a bar above every beat seen
(:data:`GRID_SHARP_BAR`); where the sizes of the copies at hand predict a beat at the period in
question, on the smoothed reading alone (``origin.is_upscale``).

Nearest-neighbour enlargements
------------------------------
Enlarging by an integer ``u`` with the nearest neighbour repeats each pixel ``u`` times: all but
one in ``u`` differences between neighbours are zero (or near it, after JPEG). The mean
difference at the busiest of those ``u - 1`` quiet phases, over the mean of all, is under
:data:`NEAREST_BAR` only for such a copy.

The bars were set on the validation half of ``bench/upscale.py`` (camera-like originals made
soft, noisy and compressed, their reductions, and enlargements of their small copies, sharpened
and recompressed among them) and are reported there on the other half. What this cannot see: an
enlargement made from a lossless (PNG) source, or by a model that invents detail, leaves no
grid: it reads as genuine, so it is not called an upscale and, when it has more pixels than
the query, it is called larger (the bench counts how often). A grid too faint to pass the bars
(a source saved at quality 95 or more, a re-save at low quality over it) is missed the same
way.
"""

from __future__ import annotations

from typing import Any, Mapping

import cv2
import numpy as np

__all__ = ["GRID_BAR", "GRID_BEAT_BAR", "GRID_FLOOR", "GRID_SELF_BAR", "MAX_SIDE", "NEAREST_BAR",
           "grid_score", "measure", "source_side"]

MAX_SIDE = 4096
"""Longer side above which nothing is measured (the full-size decode would cost too much)."""

GRID_FLOOR = 0.5
"""Grid peaks scoring under this (log10 of power over its neighbourhood) are not kept."""

GRID_BAR = 0.8
"""The smoothed reading of a grid at the period a pair's sizes predict: this or more marks an
enlargement."""

GRID_BEAT_BAR = 0.9
"""The same where a larger copy at hand could have left a beat at that period (see
``origin.is_upscale``)."""

GRID_SHARP_BAR = 1.25
"""The sharp reading of a grid at that period (a JPEG, no beat predicted): this or more marks
an enlargement; above every beat seen on the validation split."""

GRID_SELF_BAR = 1.2
"""A grid at any period whose smoothed reading is this or more marks an enlargement from the
size it implies, whatever the copies at hand."""

NEAREST_BAR = 0.7
"""Share of neighbour difference left at the quiet phases (:func:`nearest_shares`) under which
pixels are repeats."""

# (Gaussian sigma in px applied first, clip of |second difference| in grey levels) per reading.
_READINGS = {"jpeg_grids": (0.0, 4.0), "jpeg_grids_smooth": (1.0, 0.3)}
_N = 1 << 16                # FFT length: one frequency grid whatever the image size
_PERIODS = (8.8, 128.0)     # enlargements by 1.1 to 16
_OWN_GRID = 8.7             # harmonics with a shorter period meet the image's own 8-px grid
_TOLERANCE = 0.01           # a grid within 1 % of the expected period is that grid
_MAX_PEAKS = 32
_CROP = 2048


def _luma(image: "PIL.Image.Image") -> np.ndarray:  # noqa: F821 - PIL imported by the caller
    return np.asarray(image.convert("L"), np.float32)


def measure(image: "PIL.Image.Image") -> dict[str, Any]:  # noqa: F821
    """The enlargement traces of one image at full resolution.

    Parameters
    ----------
    image : PIL.Image.Image
        The image as stored (not reduced), any mode.

    Returns
    -------
    dict
        ``{"jpeg_grids": [[period, score], ...], "jpeg_grids_smooth": [...]}`` (the sharp and
        the smoothed reading; strongest first, periods in pixels) and, for a nearest-neighbour
        enlargement, ``"nearest_factor": u``. Empty for an image under 48 pixels a side or
        over :data:`MAX_SIDE`.
    """
    if min(image.size) < 48 or max(image.size) > MAX_SIDE:
        return {}
    luma = _luma(image)
    # A grid runs through the whole picture: its middle, at most _CROP a side, holds it as well
    # and bounds the cost (~70 ms for 2000x1250 on one core).
    rows, cols = luma.shape
    top, left = max(0, (rows - _CROP) // 2), max(0, (cols - _CROP) // 2)
    luma = luma[top:top + _CROP, left:left + _CROP]
    facts: dict[str, Any] = {name: _grid_peaks(luma, *reading)
                             for name, reading in _READINGS.items()}
    factor = _nearest_factor(luma)
    if factor:
        facts["nearest_factor"] = factor
    return facts


def _profile(luma: np.ndarray, axis: int, clip: float) -> np.ndarray:
    """Mean clipped |second difference| across ``axis``, per position along the other one."""
    if axis == 1:
        second = luma[:, :-2] - 2 * luma[:, 1:-1] + luma[:, 2:]
    else:
        second = luma[:-2] - 2 * luma[1:-1] + luma[2:]
    profile = np.minimum(np.abs(second), clip).mean(axis=1 - axis)
    # The image's own 8-px block grid is far stronger than any other: its exact pattern is
    # removed, and a Hann window keeps what is left of it from leaking to nearby periods.
    usable = len(profile) // 8 * 8
    own = profile[:usable].reshape(-1, 8).mean(axis=0)
    profile = profile - np.resize(own, len(profile))
    return (profile - profile.mean()) * np.hanning(len(profile))


def _log_ratios(profile: np.ndarray, bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log10 of the power at ``bins`` and at ``2 * bins`` (the most within 3 bins) over the
    geometric mean of each one's neighbourhood."""
    log_power = np.log10(np.abs(np.fft.rfft(profile, _N)) ** 2 + 1e-12)
    total = np.concatenate([[0.0], np.cumsum(log_power)])
    windows = np.lib.stride_tricks.sliding_window_view(log_power, 7)
    out = []
    for at in (bins, 2 * bins):
        lo, near_lo = (at * 0.85).astype(int), (at * 0.97).astype(int)
        near_hi, hi = (at * 1.03).astype(int), (at * 1.15).astype(int)
        reference = ((total[near_lo] - total[lo]) + (total[hi] - total[near_hi])) / (
            (near_lo - lo) + (hi - near_hi))
        out.append(windows[at - 3].max(axis=1) - reference)
    return out[0], out[1]


def _scores(luma: np.ndarray, bins: np.ndarray, clip: float) -> np.ndarray:
    """Grid score at each frequency bin: the mean over both directions and both halves of the
    image (four spectra: the noise of a ratio of powers shrinks as more are averaged, a grid
    runs through all of them); where the second harmonic's period is over 8.7, the lower of the
    two (a grid has both; a line at half the period alone, such as a grid of half the period
    or its JPEG's 16-px chroma blocks, is no grid of this one)."""
    halves = [(luma[: len(luma) // 2], 1), (luma[len(luma) // 2:], 1),
              (luma[:, : luma.shape[1] // 2], 0), (luma[:, luma.shape[1] // 2:], 0)]
    ratios = [_log_ratios(_profile(part, axis, clip), bins) for part, axis in halves]
    fundamental = np.mean([first for first, _ in ratios], axis=0)
    second = np.mean([harmonic for _, harmonic in ratios], axis=0)
    return np.where(_N / (2 * bins) >= _OWN_GRID, np.minimum(fundamental, second), fundamental)


def _grid_peaks(luma: np.ndarray, smooth: float, clip: float) -> list[list[float]]:
    """The (period, score) peaks of one reading, strongest first."""
    if max(luma.shape) > _N // 2:
        return []
    if smooth:
        luma = cv2.GaussianBlur(luma, (0, 0), smooth)
    bins = np.arange(int(_N / _PERIODS[1]), int(_N / _PERIODS[0]) + 1)
    score = _scores(luma, bins, clip)
    # Local maxima over +-8 bins (a line is wider than that for any image up to MAX_SIDE).
    padded = np.pad(score, 8, constant_values=-np.inf)
    top = np.lib.stride_tricks.sliding_window_view(padded, 17).max(axis=1)
    keep = np.flatnonzero((score >= top) & (score >= GRID_FLOOR))
    keep = keep[np.argsort(score[keep])[::-1][:_MAX_PEAKS]]
    return [[round(_N / float(bins[i]), 2), round(float(score[i]), 2)] for i in keep]


def nearest_shares(luma: np.ndarray) -> dict[int, float]:
    """For u in 2, 3, 4: the mean neighbour difference at the busiest of the u - 1 quietest
    phases (folding by u), over the mean of all; the geometric mean of both directions. Empty
    for an image too small or flat to tell."""
    profiles = [np.abs(np.diff(luma, axis=axis)).mean(axis=1 - axis) for axis in (1, 0)]
    if min(len(p) for p in profiles) < 32 or min(p.mean() for p in profiles) < 0.5:
        return {}
    shares = {}
    for factor in (2, 3, 4):
        found = []
        for steps in profiles:
            usable = len(steps) // factor * factor
            # All but one of the u phases quiet (folding a 2x enlargement by 4 leaves two).
            phases = np.sort(steps[:usable].reshape(-1, factor).mean(axis=0))
            found.append(phases[-2] / float(steps.mean()))
        shares[factor] = float(np.sqrt(found[0] * found[1]))
    return shares


def _nearest_factor(luma: np.ndarray) -> int | None:
    """The largest u whose share (:func:`nearest_shares`) is under :data:`NEAREST_BAR`."""
    return max((u for u, share in nearest_shares(luma).items() if share < NEAREST_BAR),
               default=None)


def grid_score(facts: Mapping[str, Any], factor: float,
               reading: str = "jpeg_grids_smooth") -> float | None:
    """Score of the grid an enlargement by ``factor`` would leave (None: not measured).

    Parameters
    ----------
    facts : dict
        :func:`measure`'s output for the larger image.
    factor : float
        Its side over the smaller copy's.
    reading : str
        ``"jpeg_grids_smooth"`` (the default) or ``"jpeg_grids"`` (sharp).
    """
    grids = facts.get(reading)
    if grids is None:
        return None
    period = 8.0 * factor
    near = [score for p, score in grids if abs(p / period - 1.0) <= _TOLERANCE]
    return max(near, default=0.0)


def source_side(facts: Mapping[str, Any], side: int) -> float | None:
    """The longer side of the picture this one was enlarged from, as its own pixels show, or
    None when they show no enlargement (a strong smoothed grid of any period, or
    nearest-neighbour repeats)."""
    sides = [side * 8.0 / period for period, score in facts.get("jpeg_grids_smooth") or ()
             if score >= GRID_SELF_BAR]
    if facts.get("nearest_factor"):
        sides.append(side / float(facts["nearest_factor"]))
    return min(sides, default=None)
