"""Retrieval metrics for the copy-detection benchmark: pure functions over plain Python data.

A benchmark run is a list of queries. For each query the caller supplies

- ``ranked``: the ids the system returned, best first (already filtered to the kinds that count,
  e.g. copy kinds only), a ``list[int]``;
- ``truth``: the id (``int``) or ids (``set[int]``) that are correct answers. A query whose truth
  is ``None`` or an empty set is a *negative* query: nothing in the index is a copy of it.

Recall and average precision are averaged over positive queries only; the false-positive rate is
taken over negative queries only, so one list of queries can hold both.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Union

__all__ = [
    "average_precision_at_k",
    "best_threshold",
    "false_positive_rate",
    "mean_average_precision",
    "recall_at_k",
    "recall_at_k_by_group",
    "true_positive_rate_at",
]

Truth = Union[int, set, frozenset, None]


def _relevant(truth: Truth) -> set[int]:
    """The set of correct ids for one query (empty for a negative query)."""
    if truth is None:
        return set()
    if isinstance(truth, (set, frozenset)):
        return set(truth)
    return {truth}


def _check(ranked: Sequence[Sequence[int]], truth: Sequence[Truth], k: int) -> None:
    # Argument errors are programming mistakes in the caller, hence plain ValueError.
    if len(ranked) != len(truth):
        raise ValueError(f"ranked has {len(ranked)} queries but truth has {len(truth)}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")


def recall_at_k(ranked: Sequence[Sequence[int]], truth: Sequence[Truth], k: int) -> float:
    """Fraction of positive queries with at least one correct id among their first ``k`` results.

    Parameters
    ----------
    ranked : sequence of sequence of int, shape (n_queries, <=any)
        Returned ids per query, best first.
    truth : sequence of int or set of int or None, shape (n_queries,)
        Correct id(s) per query; ``None`` or an empty set marks a negative query, which is skipped.
    k : int
        Cut-off rank, at least 1.

    Returns
    -------
    float
        Recall@k in [0, 1]; ``nan`` when there is no positive query.

    Examples
    --------
    >>> recall_at_k([[3, 1], [2, 5], [9]], [1, 5, 4], k=1)
    0.0
    >>> recall_at_k([[3, 1], [2, 5], [9]], [1, 5, 4], k=2)
    0.6666666666666666
    """
    _check(ranked, truth, k)
    hits = positives = 0
    for returned, answer in zip(ranked, truth):
        relevant = _relevant(answer)
        if not relevant:
            continue
        positives += 1
        hits += any(item in relevant for item in list(returned)[:k])
    return hits / positives if positives else math.nan


def recall_at_k_by_group(
    ranked: Sequence[Sequence[int]],
    truth: Sequence[Truth],
    groups: Sequence[Hashable],
    k: int,
) -> dict[Hashable, float]:
    """Recall@k computed separately for each group of queries (e.g. each edit family).

    Parameters
    ----------
    ranked : sequence of sequence of int, shape (n_queries, <=any)
        Returned ids per query, best first.
    truth : sequence of int or set of int or None, shape (n_queries,)
        Correct id(s) per query; negative queries are skipped.
    groups : sequence of hashable, shape (n_queries,)
        Group label of each query.
    k : int
        Cut-off rank, at least 1.

    Returns
    -------
    dict
        ``{group: recall@k}`` in first-seen order, for every group that has a positive query.
    """
    _check(ranked, truth, k)
    if len(groups) != len(truth):
        raise ValueError(f"groups has {len(groups)} labels but truth has {len(truth)}")
    members: dict[Hashable, list[int]] = {}
    for index, (group, answer) in enumerate(zip(groups, truth)):
        if _relevant(answer):
            members.setdefault(group, []).append(index)
    return {
        group: recall_at_k([ranked[i] for i in idx], [truth[i] for i in idx], k)
        for group, idx in members.items()
    }


def average_precision_at_k(returned: Sequence[int], truth: Truth, k: int) -> float:
    """Average precision of one ranked list, truncated at ``k``.

    ``AP@k = sum_{i<=k} P@i * rel_i / min(|relevant|, k)``, where ``rel_i`` is 1 when the i-th
    result is correct and has not already been counted (a repeated id scores once).

    Parameters
    ----------
    returned : sequence of int, shape (<=any,)
        Returned ids, best first.
    truth : int or set of int
        Correct id(s); must not be empty.
    k : int
        Cut-off rank, at least 1.

    Returns
    -------
    float
        AP@k in [0, 1].

    Examples
    --------
    >>> average_precision_at_k([7, 1, 2], {1, 2}, k=3)  # (1/2 + 2/3) / 2
    0.5833333333333333
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    relevant = _relevant(truth)
    if not relevant:
        raise ValueError("average precision needs at least one correct id")
    found: set[int] = set()
    total = 0.0
    for rank, item in enumerate(list(returned)[:k], start=1):
        if item in relevant and item not in found:
            found.add(item)
            total += len(found) / rank
    return total / min(len(relevant), k)


def mean_average_precision(
    ranked: Sequence[Sequence[int]], truth: Sequence[Truth], k: int
) -> float:
    """Mean of :func:`average_precision_at_k` over the positive queries (mAP@k).

    Parameters
    ----------
    ranked : sequence of sequence of int, shape (n_queries, <=any)
        Returned ids per query, best first.
    truth : sequence of int or set of int or None, shape (n_queries,)
        Correct id(s) per query; negative queries are skipped.
    k : int
        Cut-off rank, at least 1.

    Returns
    -------
    float
        mAP@k in [0, 1]; ``nan`` when there is no positive query.
    """
    _check(ranked, truth, k)
    scores = [
        average_precision_at_k(returned, answer, k)
        for returned, answer in zip(ranked, truth)
        if _relevant(answer)
    ]
    return sum(scores) / len(scores) if scores else math.nan


def false_positive_rate(ranked: Sequence[Sequence[int]], truth: Sequence[Truth]) -> float:
    """Fraction of negative queries that got any result at all.

    The caller filters each list to the results that claim a copy (e.g. kinds exact,
    near_duplicate and partial), so any id left for a negative query is a false claim.

    Parameters
    ----------
    ranked : sequence of sequence of int, shape (n_queries, <=any)
        Returned ids per query.
    truth : sequence of int or set of int or None, shape (n_queries,)
        Correct id(s) per query; only the negative ones (``None`` or empty) are counted.

    Returns
    -------
    float
        False-positive rate in [0, 1]; ``nan`` when there is no negative query.

    Examples
    --------
    >>> false_positive_rate([[4], [], [2, 3]], [None, None, 2])
    0.5
    """
    _check(ranked, truth, 1)
    flagged = [len(got) > 0 for got, answer in zip(ranked, truth) if not _relevant(answer)]
    return sum(flagged) / len(flagged) if flagged else math.nan


def true_positive_rate_at(distances: Sequence[float], threshold: float) -> float:
    """Fraction of ``distances`` at or below ``threshold`` (``nan`` for an empty sequence).

    Used both ways: on positives' distances it is a recall, on negatives' a false-positive rate.
    A positive whose nearest neighbour was the wrong image should be passed as ``math.inf``.
    """
    if not distances:
        return math.nan
    return sum(d <= threshold for d in distances) / len(distances)


def best_threshold(
    positive: Sequence[float], negative: Sequence[float]
) -> tuple[float, float, float]:
    """Distance threshold that maximises balanced accuracy, ``(recall + (1 - FP rate)) / 2``.

    A nearest-neighbour system with a distance cut-off finds a positive query when its nearest
    indexed image is the right one *and* lies within the cut-off, and raises a false alarm on a
    negative query when its nearest image lies within the cut-off. Pass, per positive query, the
    nearest distance if that neighbour is correct and ``math.inf`` otherwise; per negative query,
    the nearest distance.

    Parameters
    ----------
    positive : sequence of float, shape (n_positive,)
        Distances of the correct nearest neighbours (``inf`` where the neighbour was wrong).
    negative : sequence of float, shape (n_negative,)
        Nearest-neighbour distances of the negative queries.

    Returns
    -------
    threshold : float
        The best cut-off among the observed finite distances (ties go to the stricter one);
        ``-inf`` when no cut-off beats accepting nothing (balanced accuracy 0.5).
    recall : float
        Fraction of positives found at that cut-off.
    fp_rate : float
        Fraction of negatives flagged at that cut-off.

    Examples
    --------
    >>> best_threshold([1, 2, 9], [5, 8])
    (2, 0.6666666666666666, 0.0)
    """
    if not positive or not negative:
        raise ValueError("best_threshold needs at least one positive and one negative distance")
    candidates = sorted({d for d in list(positive) + list(negative) if math.isfinite(d)})
    best = (0.5, -math.inf, 0.0, 0.0)  # accepting nothing: recall 0, no false alarm
    for threshold in candidates:
        recall = true_positive_rate_at(positive, threshold)
        fp_rate = true_positive_rate_at(negative, threshold)
        balanced = (recall + 1.0 - fp_rate) / 2
        if balanced > best[0]:
            best = (balanced, threshold, recall, fp_rate)
    return best[1], best[2], best[3]
