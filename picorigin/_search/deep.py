"""Similar images by the deep descriptor; labels and palette for the query and every match;
the ``--label`` / ``--colour`` filters (``picorigin._stages.deep``)."""

from __future__ import annotations

from .base import Ask, Hit

__all__ = ["DeepStep"]


class DeepStep:
    name = "deep"

    def __init__(self, stage) -> None:
        self.stage = stage

    def applies(self, ask: Ask) -> bool:
        return not ask.fast

    def prepare(self, query) -> None:
        query.prefetch_signal(self.stage)

    def describe_query(self, query) -> dict:
        """The query's own labels and palette."""
        return self.stage.describe(query.signal(self.stage))

    def run(self, query, found, ask: Ask) -> list[Hit]:
        stage, signal = self.stage, query.signal(self.stage)
        hits: list[Hit] = []
        copies = list(found)
        if copies and (ask.label or ask.colour):
            kept = {h["id"] for h in stage.search(signal, len(copies), candidates=copies,
                                                  label=ask.label, colour=ask.colour,
                                                  position=ask.position)}
            hits += [Hit(i, None, drop=True) for i in copies if i not in kept]
        hits += [Hit(i, None, extra=facts) for i, facts in stage.details(copies).items()]
        if "similar" not in ask.kinds:
            return hits
        # A label or colour filter is itself the criterion: rank what passes it by likeness.
        minimum = 0.0 if (ask.label or ask.colour) else float(ask.settings.similar_min_score)
        for hit in stage.search(signal, ask.k + len(found), label=ask.label, colour=ask.colour,
                                min_score=minimum, position=ask.position):
            image_id, kind, score = hit.pop("id"), hit.pop("kind"), hit.pop("score")
            if image_id not in found:
                hits.append(Hit(image_id, kind, score, extra=hit))
        return hits
