"""The baselines picorigin is measured against, each used the way its users use it.

- pHash (``imagehash.phash``): 64-bit DCT hash, Hamming distance; a match at distance <= 10,
  the usual rule of thumb among imagehash users (0 identical, 1-10 similar).
- Goldberg signature (``image_match.goldberg.ImageSignature``, Goldberg et al. 2002, as used by
  image-match): 648 values in {-2..2}, ``normalized_distance``; a match below its default 0.4.
- PDQ (``pdqhash``, Facebook's): 256 bits; distance <= 31 is PDQ's standard match threshold.
  Queries are hashed in all 8 dihedral orientations (``compute_dihedral``) and the smallest
  distance counts ("PDQ-8"); PDQ derives the 8 hashes from one DCT, so this costs little.

Codes are numpy arrays so a query is compared against every original at once.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

PHASH_THRESHOLD = 10
GOLDBERG_THRESHOLD = 0.4
PDQ_THRESHOLD = 31

_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint16)


def phash(image: Image.Image) -> np.ndarray:
    """imagehash pHash of ``image``, packed, shape (8,) uint8."""
    import imagehash

    return np.packbits(imagehash.phash(image).hash.ravel())


def _image_signature():
    from image_match.goldberg import ImageSignature

    return ImageSignature()


def goldberg(array: np.ndarray) -> np.ndarray:
    """image-match's Goldberg signature of an RGB array (h, w, 3), shape (648,) int8.

    image-match 1.1.2 predates numpy 2 and scikit-image 0.2x; on the paths used here (an RGB
    ndarray in, default parameters) it runs unpatched. A grey 2-D array would break
    ``skimage.color.rgb2gray`` in new scikit-image, so the input is always 3-channel.
    """
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return _image_signature().generate_signature(np.ascontiguousarray(array[..., :3]))


def pdq(array: np.ndarray) -> np.ndarray:
    """PDQ hash of an RGB array, packed, shape (32,) uint8."""
    import pdqhash

    bits, _quality = pdqhash.compute(np.ascontiguousarray(array))
    return np.packbits(bits.astype(np.uint8))


def pdq_dihedral(array: np.ndarray) -> np.ndarray:
    """PDQ hashes of the 8 dihedral orientations of an RGB array, packed, shape (8, 32) uint8."""
    import pdqhash

    hashes, _qualities = pdqhash.compute_dihedral(np.ascontiguousarray(array))
    return np.stack([np.packbits(np.asarray(h).astype(np.uint8)) for h in hashes])


def hamming_to_all(query: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Hamming distances from packed ``query`` (b,) or (probes, b) to ``codes`` (n, b).

    Returns
    -------
    ndarray of int, shape (n,)
        With several probes, the smallest distance over them.
    """
    query = np.atleast_2d(query)
    distances = _POPCOUNT[np.bitwise_xor(query[:, None, :], codes[None, :, :])].sum(axis=2)
    return distances.min(axis=0)


def goldberg_to_all(query: np.ndarray, signatures: np.ndarray) -> np.ndarray:
    """image-match's ``normalized_distance`` from one signature (648,) to many (n, 648).

    ``||b - a|| / (||a|| + ||b||)``, exactly as ``ImageSignature.normalized_distance``.
    """
    a = signatures.astype(np.float64)
    b = query.astype(np.float64)
    norm_diff = np.linalg.norm(a - b, axis=1)
    return norm_diff / (np.linalg.norm(a, axis=1) + np.linalg.norm(b))
