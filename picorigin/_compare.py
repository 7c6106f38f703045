"""What changed between two matched images: alignment, crop, rotation, scale, mirror, colour, edits.

:func:`compare` fits the transform between two pictures with local features (as the search's
geometric verification does), warps the second onto the first, evens out a global colour
change, and reports the regions whose content still differs: a caption or a logo added, an
object pasted in or removed. Boxes are in each image's original pixels.

Differences are measured on both pictures reduced to ``SIDE`` pixels, blurred a little so that
resampling and JPEG noise do not count, and thresholded at ``max(MIN_DIFFERENCE, median + 6 *
MAD)`` of the per-pixel colour distance; regions smaller than ``MIN_REGION`` of the overlap are
dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import _verify
from ._features.local import compute_array

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

__all__ = ["compare"]

SIDE = 1024  # working size of the comparison (longer side)
FEATURES = 2000
MIN_DIFFERENCE = 40.0  # colour distance (0-255 scale, max over channels) that counts as changed
MIN_REGION = 0.002  # smallest changed region, as a share of the overlap
_BLUR_SIGMA = 2.0


def _rgb(image) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return np.ascontiguousarray(array[:, :, :3], dtype=np.uint8)


def _working(array: np.ndarray) -> tuple[np.ndarray, float]:
    """The array reduced so its longer side is at most SIDE, and the factor applied."""
    import cv2

    h, w = array.shape[:2]
    scale = min(1.0, SIDE / max(h, w))
    if scale < 1.0:
        array = cv2.resize(array, (round(w * scale), round(h * scale)),
                           interpolation=cv2.INTER_AREA)
    return array, scale


def _box_to_full(box: tuple[int, int, int, int], factor: float, size) -> list[int]:
    x0, y0, x1, y1 = box
    w, h = size
    return [max(0, int(x0 / factor)), max(0, int(y0 / factor)),
            min(w, int(np.ceil(x1 / factor))), min(h, int(np.ceil(y1 / factor)))]


def _map_box(transform: np.ndarray, box: list[int], size) -> list[int]:
    x0, y0, x1, y1 = box
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
    mapped = _verify._apply(transform, corners)
    w, h = size
    lo = np.clip(np.floor(mapped.min(axis=0)), 0, [w, h]).astype(int)
    hi = np.clip(np.ceil(mapped.max(axis=0)), 0, [w, h]).astype(int)
    return [int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1])]


def compare(
    image_a: "Image.Image | np.ndarray",
    image_b: "Image.Image | np.ndarray",
    *,
    size_a: tuple[int, int] | None = None,
    size_b: tuple[int, int] | None = None,
    diff_path: str | Path | None = None,
) -> dict:
    """Compare two pictures of the same scene or photo.

    Parameters
    ----------
    image_a, image_b : PIL.Image.Image or numpy.ndarray, shape (h, w[, 3])
        Decoded images (RGB); they may be reduced from larger originals.
    size_a, size_b : tuple of int, optional
        Original ``(width, height)`` of each, when the images given are reduced: every box is
        reported in original pixels. Default: the images' own sizes.
    diff_path : str or Path, optional
        Also write a PNG showing A, B aligned onto A, and the differences, boxed.

    Returns
    -------
    dict
        ``matched`` (bool) and ``inliers``; when matched also ``kind``, ``transform`` (3 x 3,
        A -> B pixels), ``rotation``, ``scale``, ``mirror`` (how A shows B: see
        ``picorigin._verify.geometry``), ``a_box`` / ``b_box`` (the common region in each
        image: B's crop box is ``b_box``), ``a_overlap`` / ``b_overlap``, ``colour_shift``
        (``mean``: A minus B per RGB channel, 0-255; ``gain``: contrast ratio A / B per
        channel; ``changed``: whether either is noticeable), ``changed`` (regions whose
        content differs: ``a_box``, ``b_box``, ``share`` of the overlap, ``difference``: mean
        colour distance) and ``changed_share`` (their total share of the overlap).
    """
    import cv2

    a_full, b_full = _rgb(image_a), _rgb(image_b)
    size_a = tuple(size_a) if size_a else (a_full.shape[1], a_full.shape[0])
    size_b = tuple(size_b) if size_b else (b_full.shape[1], b_full.shape[0])
    features_a = compute_array(a_full, size_a, n_features=FEATURES, mirror=True)
    features_b = compute_array(b_full, size_b, n_features=FEATURES)
    verification = _verify.verify(features_a, features_b)
    if verification is None:
        return {"matched": False, "inliers": 0}
    described = _verify.describe(verification, size_a, size_b)
    result = {
        "matched": True,
        "inliers": described["inliers"],
        "kind": described["kind"],
        "transform": described["transform"],
        "rotation": described["rotation"],
        "scale": described["scale"],
        "mirror": described["mirror"],
        "a_box": described["query_box"],
        "b_box": described["match_box"],
        "a_overlap": described["query_overlap"],
        "b_overlap": described["match_overlap"],
    }

    # Align B onto A in working resolution: work_a -> full_a -> full_b -> work_b.
    a_work, fa = _working(a_full)
    b_work, fb = _working(b_full)
    to_full_a = np.diag([size_a[0] / a_full.shape[1] / fa, size_a[1] / a_full.shape[0] / fa, 1.0])
    to_work_b = np.diag([fb * b_full.shape[1] / size_b[0], fb * b_full.shape[0] / size_b[1], 1.0])
    a_to_b = to_work_b @ verification.transform @ to_full_a
    h, w = a_work.shape[:2]
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    aligned = cv2.warpPerspective(b_work, a_to_b, (w, h), flags=flags)
    valid = cv2.warpPerspective(np.full(b_work.shape[:2], 255, np.uint8), a_to_b, (w, h),
                                flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)
    # Stay clear of the overlap's edge, where interpolation mixes in the black outside.
    valid = cv2.erode(valid, np.ones((5, 5), np.uint8)) > 0

    a_f = cv2.GaussianBlur(a_work.astype(np.float32), (0, 0), _BLUR_SIGMA)
    b_f = cv2.GaussianBlur(aligned.astype(np.float32), (0, 0), _BLUR_SIGMA)
    if valid.sum() < 100:
        result.update({"colour_shift": None, "changed": [], "changed_share": 0.0})
        return result
    pa, pb = a_f[valid], b_f[valid]
    mean_a, mean_b = pa.mean(axis=0), pb.mean(axis=0)
    gain = (pa.std(axis=0) + 1.0) / (pb.std(axis=0) + 1.0)
    shift = mean_a - mean_b
    result["colour_shift"] = {
        "mean": [round(float(v), 1) for v in shift],
        "gain": [round(float(v), 3) for v in gain],
        "changed": bool(np.abs(shift).max() > 8 or np.abs(gain - 1).max() > 0.1),
    }
    # Even out the global colour change so that only local edits remain.
    corrected = (b_f - mean_b) * gain + mean_a
    distance = np.abs(a_f - corrected).max(axis=2)
    distance[~valid] = 0
    values = distance[valid]
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median))) + 1e-6
    threshold = max(MIN_DIFFERENCE, median + 6 * 1.4826 * mad)
    changed = ((distance > threshold) & valid).astype(np.uint8)
    changed = cv2.morphologyEx(changed, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    close = max(3, round(max(h, w) / 60)) | 1
    changed = cv2.morphologyEx(changed, cv2.MORPH_CLOSE, np.ones((close, close), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(changed, connectivity=8)
    overlap = float(valid.sum())
    regions = []
    for label in range(1, count):
        x, y, bw, bh, area = stats[label]
        if area < MIN_REGION * overlap:
            continue
        box_work = (int(x), int(y), int(x + bw), int(y + bh))
        a_box = _box_to_full(box_work, fa * a_full.shape[1] / size_a[0], size_a)
        regions.append({
            "a_box": a_box,
            "b_box": _map_box(verification.transform, a_box, size_b),
            "share": round(float(area) / overlap, 4),
            "difference": round(float(distance[labels == label].mean()), 1),
            "_work": box_work,
        })
    regions.sort(key=lambda r: -r["share"])
    result["changed_share"] = round(sum(r["share"] for r in regions), 4)
    if diff_path is not None:
        _write_diff(Path(diff_path), a_work, aligned, valid, distance, threshold, regions)
    for region in regions:
        del region["_work"]
    result["changed"] = regions
    return result


def _write_diff(path: Path, a: np.ndarray, aligned: np.ndarray, valid: np.ndarray,
                distance: np.ndarray, threshold: float, regions: list[dict]) -> None:
    """A | B aligned onto A | differences (red: above threshold), changed regions boxed."""
    from PIL import Image, ImageDraw

    heat = np.clip(distance / max(threshold, 1.0) * 128, 0, 255).astype(np.uint8)
    heat_rgb = np.stack([heat, heat // 3, heat // 3], axis=2)
    heat_rgb[~valid] = (40, 40, 90)
    h, w = a.shape[:2]
    panel = Image.new("RGB", (3 * w + 20, h), "white")
    for i, array in enumerate((a, aligned, heat_rgb)):
        panel.paste(Image.fromarray(np.ascontiguousarray(array)), (i * (w + 10), 0))
    draw = ImageDraw.Draw(panel)
    for region in regions:
        x0, y0, x1, y1 = region["_work"]
        for i in range(3):
            offset = i * (w + 10)
            draw.rectangle((x0 + offset, y0, x1 + offset, y1), outline=(255, 30, 30), width=3)
    path.parent.mkdir(parents=True, exist_ok=True)
    panel.save(path, "PNG")
