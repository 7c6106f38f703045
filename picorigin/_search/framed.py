"""Pictures framed inside the query (pasted in, screenshotted): window fingerprints.

A hit the local stage can also verify (a bar of 8 inliers: the fingerprint already vouches for
it) takes that stage's finer geometry; otherwise the window is the box.
"""

from __future__ import annotations

from .. import _framed
from .base import Ask, Hit, verified_hit
from .fingerprint import fingerprint_hits

__all__ = ["FramedStep"]

# Inliers that confirm a candidate another signal already vouches for (see RecheckStep).
CONFIRM_INLIERS = 8


class FramedStep:
    name = "framed"

    def __init__(self, fingerprint, local, catalog) -> None:
        self.fingerprint, self.local, self.catalog = fingerprint, local, catalog

    def applies(self, ask: Ask) -> bool:
        return not ask.fast and ask.copies_wanted

    def prepare(self, query) -> None:
        query.prefetch("windows", self._windows(query))

    def _windows(self, query):
        return lambda: _framed.window_probes(query.decoded(self.fingerprint.query_side).image)

    def run(self, query, found, ask: Ask) -> list[Hit]:
        boxes, probes = query.computed("windows", self._windows(query))
        radius = int(ask.settings.near_duplicate_distance)
        best = fingerprint_hits(self.fingerprint, self.catalog,
                                [(g, code) for _, g, code in probes], radius, ask.position)
        best = {i: hit for i, hit in best.items() if i not in found}
        if not best:
            return []
        verified: dict[int, Hit] = {}
        if self.local is not None:
            signal = query.signal(self.local)
            for hit in self.local.confirm(signal, list(best), min_inliers=CONFIRM_INLIERS):
                verified[hit["id"]] = verified_hit(hit)
        sizes = self.catalog.images(best)
        hits = []
        for image_id, (distance, orientation, row) in sorted(best.items()):
            if image_id not in sizes:
                continue
            hit = verified.get(image_id)
            if hit is None:
                x0, y0, x1, y1 = boxes[probes[row][0]]
                box = [x0 * query.width, y0 * query.height, x1 * query.width, y1 * query.height]
                record = sizes[image_id]
                hit = verified_hit({"id": image_id, **_framed.describe(
                    box, query.size, (record["width"], record["height"]), orientation,
                    distance)})
                hit.orientation = orientation
            hit.distance = distance
            hits.append(hit)
        return hits
