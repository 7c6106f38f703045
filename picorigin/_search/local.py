"""Partial copies by local features: crops, pasted-in and screenshotted copies, rotations, with
where they match (``picorigin._stages.local``)."""

from __future__ import annotations

from .base import Ask, Hit, verified_hit

__all__ = ["LocalStep"]


class LocalStep:
    name = "local"

    def __init__(self, stage) -> None:
        self.stage = stage

    def applies(self, ask: Ask) -> bool:
        return not ask.fast and ask.copies_wanted

    def prepare(self, query) -> None:
        # Keypoints, then their visual words, in one task on the query pool: the words are
        # then ready when the step runs instead of being looked up while the other cores wait.
        query.prefetch("local:words", self._words(query))

    def _words(self, query):
        return lambda: self.stage.quantize(query.signal(self.stage))

    def run(self, query, found, ask: Ask) -> list[Hit]:
        signal = query.signal(self.stage)
        words = query.computed("local:words", self._words(query))
        hits = self.stage.search(signal, max(ask.k, 10), position=ask.position, words=words)
        return [verified_hit(hit) for hit in hits]
