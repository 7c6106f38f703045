"""The search, as a list of steps over one query.

Each step (``exact``, ``fingerprint``, ``local``, ``framed``, ``deep``, ``recheck``) answers
``run(query, found, ask) -> list[Hit]``: it asks its own index, verifies what is doubtful and
returns typed hits; :mod:`picorigin._search.fuse` merges them into one set, one hit per image,
the strongest kind winning. A step sees what earlier steps found (the re-check only looks at
near-certain ``similar`` hits when no copy was found). ``steps_for`` lists the steps a data
folder's stages allow, in order.
"""

from __future__ import annotations

from typing import Any

from .base import Ask, Hit, Step
from .fuse import Found

__all__ = ["Ask", "Found", "Hit", "Step", "run", "steps_for"]


def steps_for(stages: dict[str, Any], catalog: Any) -> list[Step]:
    """The steps, in order, that these open stages support."""
    from .deep import DeepStep
    from .exact import ExactStep
    from .fingerprint import FingerprintStep
    from .framed import FramedStep
    from .local import LocalStep
    from .recheck import RecheckStep

    fingerprint, local, deep = stages["fingerprint"], stages.get("local"), stages.get("deep")
    steps: list[Step] = [ExactStep(catalog), FingerprintStep(fingerprint, catalog)]
    if local is not None:
        steps.append(LocalStep(local))
    steps.append(FramedStep(fingerprint, local, catalog))
    if deep is not None:
        steps.append(DeepStep(deep))
        if local is not None:
            steps.append(RecheckStep(local, catalog))
    return steps


def run(steps: list[Step], query: Any, ask: Ask) -> Found:
    """Run each step that applies to ``ask`` and fuse what they find."""
    active = [step for step in steps if step.applies(ask)]
    for step in active:
        step.prepare(query)
    found = Found()
    for step in active:
        found.merge(step.run(query, found, ask))
    return found
