"""Framed pictures: rectangles in an image bounded by long straight edges.

A photo pasted into another, shown in a screenshot or laid out on a page keeps its own
rectangle, and the rectangle's sides are long, straight, axis-aligned steps in colour that
natural texture rarely draws. Each such rectangle is a *window* the query can be searched with
as if it were the whole image: the global fingerprint of a window finds the indexed original
even when the window is too small, or too plain, for local features.

The search is cheap (about 7 ms at 480 pixels): colour steps across rows and columns,
gap-tolerant straight runs of them, and every rectangle those runs (or the image's frame) can
bound, scored by how much of its perimeter lies on a step.
"""

from __future__ import annotations

import numpy as np

__all__ = ["compute"]

SIDE = 480  # working size: boundaries are found to about 2 px in it, which the fingerprint absorbs
STEP = 18.0  # a colour step (0-255, any channel, across 2 px) that counts as an edge
MIN_RUN = 0.15  # a boundary line runs at least this share of the image's width (or height)
MIN_SIDE = 0.2  # a window is at least this share of the image in each direction ...
MAX_AREA = 0.9  # ... and smaller than this share of its area (the image itself is searched anyway)
MIN_SUPPORT = 0.7  # mean share of a window's sides that lies on a step ...
WEAKEST = 0.35  # ... with none below this
LINES = 8  # best boundary lines kept per direction
MAX_WINDOWS = 6


def _gap_filled(flags: np.ndarray, gap: int) -> np.ndarray:
    """``flags`` (rows of bool) with runs of False no longer than ``gap`` set True."""
    import cv2

    kernel = np.ones((1, gap + 1), np.uint8)
    return cv2.morphologyEx(flags.astype(np.uint8), cv2.MORPH_CLOSE, kernel).astype(bool)


def _lines(step: np.ndarray, min_run: int) -> list[tuple[int, int, int]]:
    """Straight boundary lines along rows of ``step`` (bool, shape (h, w)).

    Returns ``(row, start, end)`` of runs at least ``min_run`` long that stand out from the
    rows 4 away (a boundary, not a stripe of texture), longest first, one per boundary.
    """
    h, w = step.shape
    filled = _gap_filled(step, 6)
    padded = np.zeros((h, w + 2), np.int8)
    padded[:, 1:-1] = filled
    edges = np.diff(padded, axis=1)
    rows_s, starts = np.nonzero(edges == 1)
    _, ends = np.nonzero(edges == -1)
    keep = (ends - starts) >= min_run
    runs = sorted(zip((ends - starts)[keep], rows_s[keep], starts[keep], ends[keep]), reverse=True)
    sums = np.zeros((h, w + 1), np.int32)
    np.cumsum(step, axis=1, dtype=np.int32, out=sums[:, 1:])
    found: list[tuple[int, int, int]] = []
    for length, row, start, end in runs:
        on = (sums[row, end] - sums[row, start]) / length
        around = [
            (sums[r, end] - sums[r, start]) / length for r in (row - 4, row + 4) if 0 <= r < h
        ]
        # A boundary has at most one textured side; a stripe of texture has two.
        if around and on - min(around) < 0.3:
            continue
        # A boundary's 2-px step shows on the two rows beside it: one line.
        if any(abs(row - r) <= 1 and start < e and s < end for r, s, e in found):
            continue
        found.append((int(row), int(start), int(end)))
        if len(found) == LINES:
            break
    return found


def _support(sums: np.ndarray, lines: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Share of each line ``lines[i]`` between ``a[j]`` and ``b[k]`` lying on a step.

    ``sums`` holds per-line cumulative step counts, shape (n_lines_total, length + 1); the
    result has shape (len(lines), len(a), len(b)).
    """
    rows = sums[lines]  # (L, length + 1)
    span = (b[None, :] - a[:, None]).astype(np.float64)  # (A, B)
    on = rows[:, None, b] - rows[:, a, None]  # (L, A, B)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(span[None] > 0, on / np.maximum(span[None], 1), 0.0)


def compute(image) -> np.ndarray:
    """Rectangles in ``image`` that may frame a whole picture, most convincing first.

    Parameters
    ----------
    image : PIL.Image.Image or numpy.ndarray, shape (h, w[, 3])

    Returns
    -------
    numpy.ndarray, shape (n, 4), float64
        ``(left, top, right, bottom)`` of each window as shares of the image's width and
        height (0-1), so they apply to the image at any size; n <= 6, possibly 0.
    """
    import cv2

    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    array = array[:, :, :3]
    h0, w0 = array.shape[:2]
    scale = SIDE / max(h0, w0)
    size = (max(8, round(w0 * scale)), max(8, round(h0 * scale)))
    small = cv2.resize(np.ascontiguousarray(array), size, interpolation=cv2.INTER_AREA)
    if small.ndim == 2:
        small = small[:, :, None]
    small = small.astype(np.int16)
    h, w = small.shape[:2]
    # A step between rows y-1 and y+1 (2 px, so a boundary that falls between pixels after
    # resampling still counts), in whichever channel steps most: hue boundaries count too.
    dy = np.zeros((h, w), np.int16)
    dx = np.zeros((h, w), np.int16)
    for c in range(small.shape[2]):  # (a per-channel loop: max over a length-3 axis is slow)
        channel = small[:, :, c]
        np.maximum(dy[1:-1], np.abs(channel[2:] - channel[:-2]), out=dy[1:-1])
        np.maximum(dx[:, 1:-1], np.abs(channel[:, 2:] - channel[:, :-2]), out=dx[:, 1:-1])
    # Only steps across the line's direction count: busy texture (foliage) steps every way.
    across_rows = (dy > STEP) & (dy > 2 * dx)
    across_cols = (dx > STEP) & (dx > 2 * dy)
    horizontal = _lines(across_rows, round(MIN_RUN * w))
    vertical = _lines(across_cols.T, round(MIN_RUN * h))
    if not horizontal and not vertical:
        return np.zeros((0, 4))
    # A side may sit a pixel off the row its step was found on.
    across_rows = across_rows | np.roll(across_rows, 1, 0) | np.roll(across_rows, -1, 0)
    across_cols = across_cols | np.roll(across_cols, 1, 1) | np.roll(across_cols, -1, 1)
    # Sides come from boundary lines, or from the frame (a picture may touch the image's edge).
    # A line's ends say where the perpendicular sides are, when those are too weak to be found
    # as lines themselves (a picture's lower edge against grass).
    tops = np.array(sorted({0, *[r for r, _, _ in horizontal], *[s for _, s, _ in vertical]}))
    bottoms = np.array(sorted({h - 1, *[r for r, _, _ in horizontal],
                               *[min(e, h - 1) for _, _, e in vertical]}))
    lefts = np.array(sorted({0, *[c for c, _, _ in vertical], *[s for _, s, _ in horizontal]}))
    rights = np.array(sorted({w - 1, *[c for c, _, _ in vertical],
                              *[min(e, w - 1) for _, _, e in horizontal]}))

    row_sums = np.zeros((h, w + 1), np.int32)
    np.cumsum(across_rows, axis=1, dtype=np.int32, out=row_sums[:, 1:])
    col_sums = np.zeros((w, h + 1), np.int32)
    np.cumsum(across_cols.T, axis=1, dtype=np.int32, out=col_sums[:, 1:])
    row_sums[0] = row_sums[h - 1] = np.arange(w + 1)  # the frame counts as a full side
    col_sums[0] = col_sums[w - 1] = np.arange(h + 1)
    top_s = _support(row_sums, tops, lefts, rights)  # (T, L, R)
    bottom_s = _support(row_sums, bottoms, lefts, rights)  # (B, L, R)
    left_s = _support(col_sums, lefts, tops, bottoms)  # (L, T, B)
    right_s = _support(col_sums, rights, tops, bottoms)  # (R, T, B)
    # support[t, b, l, r]: the mean of the four sides, none below WEAKEST (one side may lie
    # against texture as busy as the picture's own edge).
    sides = np.broadcast_arrays(
        top_s[:, None, :, :], bottom_s[None, :, :, :],
        left_s.transpose(1, 2, 0)[:, :, :, None], right_s.transpose(1, 2, 0)[:, :, None, :],
    )
    support = np.where(np.minimum.reduce(sides) >= WEAKEST, sum(sides) / 4, 0.0)
    t, b, l, r = np.meshgrid(tops, bottoms, lefts, rights, indexing="ij")
    width, height = r - l, b - t
    frame_sides = (t == 0).astype(int) + (b == h - 1) + (l == 0) + (r == w - 1)
    ok = (
        (support >= MIN_SUPPORT)
        & (width >= MIN_SIDE * w)
        & (height >= MIN_SIDE * h)
        & (width * height < MAX_AREA * w * h)
        & (frame_sides < 4)
    )
    candidates = np.argwhere(ok)
    if not len(candidates):
        return np.zeros((0, 4))
    boxes = np.stack([l[ok], t[ok], r[ok] + 1, b[ok] + 1], axis=1).astype(np.float64)
    # Ranked by the support of the sides that are lines, not the frame (which supports any
    # rectangle touching it); among equals, by more such sides, then the larger (a picture,
    # not a panel inside it).
    on_frame = [t == 0, b == h - 1, l == 0, r == w - 1]
    lines = sum(~frame for frame in on_frame)
    evidence = sum(np.where(frame, 0.0, side) for side, frame in zip(sides, on_frame))
    mean_line = np.round(evidence / np.maximum(lines, 1), 1)
    order = np.lexsort((-(width[ok] * height[ok]), -lines[ok], -mean_line[ok]))
    chosen: list[np.ndarray] = []
    for box in boxes[order]:
        if all(_iou(box, other) < 0.8 for other in chosen):
            chosen.append(box)
            if len(chosen) == MAX_WINDOWS:
                break
    out = np.array(chosen)
    out[:, [0, 2]] /= w
    out[:, [1, 3]] /= h
    return np.clip(out, 0.0, 1.0)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
