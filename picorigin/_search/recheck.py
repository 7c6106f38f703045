"""A near-certain ``similar`` match that keypoints also confirm is a copy.

Small pasted-in or screenshotted copies, and tight crops, keep too few of the query's keypoints
at its one scale to pass the local stage's bar (12 inliers), yet the deep stage ranks their
original first with a score near 1. For those few candidates, keypoints are extracted again at
two more scales (3,000 at 1,280 px, 1,000 at 400 px) and matched exhaustively with a bar of 8:
wrong candidates scoring that high reached at most 5-6 inliers on the benchmark, true ones
12-104. A candidate that still fails may be too plain for keypoints: the query is then looked
for, pixel by pixel, as a crop of its thumbnail (``picorigin._crop``).

Only for a query with no copy found yet: once one is, pictures that merely look like it are what
``similar`` means, and re-checking them cost half of a search at scale.
"""

from __future__ import annotations

import io

from PIL import Image

from .. import _crop
from .._features import local as local_features
from .._query import executor
from .base import Ask, Hit, verified_hit
from .framed import CONFIRM_INLIERS

__all__ = ["RecheckStep"]

# Cosine similarity of the deep descriptors from which a candidate is re-checked (what the
# first calibration's score of 0.9 stood for). On the raw cosine, not on the displayed score:
# recalibrating `similar` for people must not change which copies the re-check finds (it
# lost a tight crop at score 0.855 when the trigger followed the score).
CONFIRM_SIMILARITY = 0.2666
CONFIRM_TOP = 3  # ... among the best this many


class RecheckStep:
    name = "recheck"

    def __init__(self, local, catalog) -> None:
        self.local, self.catalog = local, catalog

    def prepare(self, query) -> None:
        pass  # cheap, or needed only sometimes

    def applies(self, ask: Ask) -> bool:
        return not ask.fast and ask.copies_wanted

    def run(self, query, found, ask: Ask) -> list[Hit]:
        if found.has_copy():
            return []
        suspects = sorted((hit.extra["similarity"], hit.id) for hit in found.hits()
                          if hit.kind == "similar"
                          and hit.extra["similarity"] >= CONFIRM_SIMILARITY)[-CONFIRM_TOP:]
        if not suspects:
            return []
        dense = query.decoded(local_features.DENSE_SIDE)
        # The scales side by side on the query pool, the largest first: this is the slowest
        # part of the slowest searches.
        scales = [f"dense:{i}" for i in range(len(local_features.DENSE_SCALES))]
        for i, name in enumerate(scales):
            query.prefetch(name, self._scale(dense.image, query.size, i))
        ids = [image_id for _, image_id in suspects]
        # The crop locator needs no keypoints: it runs beside them, on the core the smaller
        # scale leaves idle, and is used only for the candidates keypoints do not confirm.
        grey = _crop.grey(dense.image)
        located = [executor().submit(self._locate_crop, grey, query.size, image_id)
                   for image_id in ids]
        signal = local_features.merged(*(query.computed(name, self._scale(dense.image,
                                                                          query.size, i))
                                         for i, name in enumerate(scales)))
        confirmed = {hit["id"]: verified_hit(hit)
                     for hit in self.local.confirm(signal, ids, min_inliers=CONFIRM_INLIERS)}
        for image_id, future in zip(ids, located):
            if image_id in confirmed:
                future.cancel()
            elif (hit := future.result()) is not None:
                confirmed[image_id] = hit
        return list(confirmed.values())

    @staticmethod
    def _scale(image, size, scale: int):
        return lambda: local_features.compute_dense_scale(image, size, scale)

    def _locate_crop(self, image, query_size, image_id: int) -> Hit | None:
        # Too plain for keypoints (mist, a defocused background, a night sky): a crop is still
        # the same pixels as a rectangle of the original's thumbnail.
        thumbnail = self.catalog.thumbnail(image_id)
        size = self.catalog.images([image_id]).get(image_id)
        if thumbnail is None or size is None:
            return None
        with Image.open(io.BytesIO(thumbnail)) as opened:
            picture = opened.convert("RGB")
        located = _crop.locate(image, picture)
        if located is None:
            return None
        described = _crop.describe(located, query_size, (size["width"], size["height"]))
        return verified_hit({"id": image_id, **described})
