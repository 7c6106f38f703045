"""Near-duplicates: fingerprints within ``near_duplicate_distance``, in every orientation that
can matter (see ``picorigin._features.fingerprint``)."""

from __future__ import annotations

import numpy as np

from .._features import fingerprint
from .base import Ask, Hit

__all__ = ["FingerprintStep", "fingerprint_hits"]


def fingerprint_hits(stage, catalog, probes, radius: int,
                     position: int) -> dict[int, tuple[int, str, int]]:
    """Indexed images within ``radius`` bits of a probe ``(element, code)``.

    Returns ``{id: (distance, orientation, probe)}``: the closest probe's distance, how the
    query shows the indexed image (``"identity"``, ``"rot90"``, ...) and the probe's index.
    """
    if not probes:
        return {}
    best: dict[int, tuple[int, int]] = {}
    codes = np.stack([code for _, code in probes])
    for row, image_id, distance in stage.search(codes, radius, position):
        if image_id not in best or distance < best[image_id][0]:
            best[image_id] = (distance, row)
    stored = catalog.orientations(best) if best else {}
    out = {}
    for image_id, (distance, row) in best.items():
        if image_id in stored:  # not removed meanwhile
            # The probe took the query, and the stored orientation took the indexed image,
            # to the same canonical form: query = probe^-1(stored(indexed)).
            element = fingerprint.compose(
                fingerprint.ORIENTATIONS[stored[image_id]], fingerprint.inverse(probes[row][0]))
            out[image_id] = (distance, fingerprint.orientation_name(element), row)
    return out


class FingerprintStep:
    name = "fingerprint"

    def __init__(self, stage, catalog) -> None:
        self.stage, self.catalog = stage, catalog

    def prepare(self, query) -> None:
        pass  # cheap, or needed only sometimes

    def applies(self, ask: Ask) -> bool:
        return True

    def run(self, query, found, ask: Ask) -> list[Hit]:
        radius = int(ask.settings.near_duplicate_distance)
        image = query.decoded(self.stage.query_side).image
        # A blank or near-uniform query has no picture to be a copy of (exact bytes or
        # pixels still are: the exact step finds those).
        variants = [coeffs for coeffs in fingerprint.query_coefficients(image)
                    if fingerprint.informative(coeffs)]
        first = [fingerprint.probes(coeffs) for coeffs in variants]
        probes = [probe for of_variant in first for probe in of_variant]
        best = fingerprint_hits(self.stage, self.catalog, probes, radius, ask.position)
        if not best:
            # The canonical orientation can be misjudged on a heavily edited copy (0.5 % of the
            # benchmark's): before answering "no copy", try every other orientation.
            probes = [(g, code) for coeffs, tried in zip(variants, first)
                      for g, code in fingerprint.probes(coeffs, exhaustive=True)
                      if g not in {element for element, _ in tried}]
            best = fingerprint_hits(self.stage, self.catalog, probes, radius, ask.position)
        return [Hit(i, "near_duplicate", fingerprint.similarity(d), distance=d, orientation=o)
                for i, (d, o, _) in sorted(best.items()) if i not in found]
