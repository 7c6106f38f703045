"""Tests for picorigin._evaluation, against values computed by hand."""

from __future__ import annotations

import math

import pytest

from picorigin._evaluation import (
    average_precision_at_k,
    best_threshold,
    false_positive_rate,
    mean_average_precision,
    recall_at_k,
    recall_at_k_by_group,
    true_positive_rate_at,
)

# Five queries: three positives with one correct id, one with two correct ids, one negative.
RANKED = [[1, 2, 3], [9, 2, 7], [5, 6, 8], [4, 3, 1], [6, 2]]
TRUTH = [1, 2, 4, {3, 1}, None]


def test_recall_at_1_counts_only_top_result():
    # hits at rank 1: query 0 only; query 3's first result (4) is not among {3, 1}
    assert recall_at_k(RANKED, TRUTH, k=1) == pytest.approx(1 / 4)


def test_recall_grows_with_k_and_skips_negatives():
    # k=2: queries 0, 1, 3 hit (query 3 through id 3); query 2 never does; query 4 is negative
    assert recall_at_k(RANKED, TRUTH, k=2) == pytest.approx(3 / 4)
    assert recall_at_k(RANKED, TRUTH, k=10) == pytest.approx(3 / 4)


def test_recall_empty_result_lists_and_no_positive():
    assert recall_at_k([[], [1]], [1, 1], k=1) == pytest.approx(0.5)
    assert math.isnan(recall_at_k([[1]], [None], k=1))


def test_recall_by_group():
    groups = ["jpeg", "jpeg", "crop", "crop", "jpeg"]
    assert recall_at_k_by_group(RANKED, TRUTH, groups, k=1) == {"jpeg": 0.5, "crop": 0.0}
    assert recall_at_k_by_group(RANKED, TRUTH, groups, k=2) == {"jpeg": 1.0, "crop": 0.5}


def test_recall_by_group_leaves_out_groups_with_only_negatives():
    assert recall_at_k_by_group([[1], [2]], [1, None], ["a", "b"], k=1) == {"a": 1.0}


def test_average_precision_known_values():
    assert average_precision_at_k([1, 2, 3], 1, k=3) == pytest.approx(1.0)
    assert average_precision_at_k([9, 2, 7], 2, k=3) == pytest.approx(1 / 2)
    assert average_precision_at_k([5, 6, 8], 4, k=3) == 0.0
    # relevant {3, 1} at ranks 2 and 3: (1/2 + 2/3) / 2
    assert average_precision_at_k([4, 3, 1], {3, 1}, k=3) == pytest.approx(7 / 12)
    # truncated at k=2: only rank 2 counts, divided by min(2, 2)
    assert average_precision_at_k([4, 3, 1], {3, 1}, k=2) == pytest.approx(1 / 4)


def test_average_precision_counts_repeated_id_once():
    assert average_precision_at_k([1, 1, 1], 1, k=3) == pytest.approx(1.0)
    assert average_precision_at_k([7, 1, 1], {1, 2}, k=3) == pytest.approx((1 / 2) / 2)


def test_average_precision_divides_by_k_when_more_relevant_than_k():
    # 3 relevant, k=2, both results relevant: perfect
    assert average_precision_at_k([1, 2], {1, 2, 3}, k=2) == pytest.approx(1.0)


def test_mean_average_precision():
    expected = (1.0 + 0.5 + 0.0 + 7 / 12) / 4
    assert mean_average_precision(RANKED, TRUTH, k=3) == pytest.approx(expected)
    assert mean_average_precision(RANKED, TRUTH, k=1) == pytest.approx(1 / 4)


def test_false_positive_rate_counts_negatives_with_any_result():
    assert false_positive_rate(RANKED, TRUTH) == 1.0
    assert false_positive_rate([[], [3], [], [1]], [None, set(), None, 1]) == pytest.approx(1 / 3)
    assert math.isnan(false_positive_rate([[1]], [1]))


def test_argument_errors():
    with pytest.raises(ValueError):
        recall_at_k([[1]], [1, 2], k=1)
    with pytest.raises(ValueError):
        recall_at_k([[1]], [1], k=0)
    with pytest.raises(ValueError):
        average_precision_at_k([1], set(), k=1)
    with pytest.raises(ValueError):
        recall_at_k_by_group([[1]], [1], ["a", "b"], k=1)
    with pytest.raises(ValueError):
        best_threshold([], [1.0])


def test_true_positive_rate_at():
    assert true_positive_rate_at([1, 5, math.inf, 10], 5) == pytest.approx(0.5)
    assert math.isnan(true_positive_rate_at([], 5))


def test_best_threshold_separable():
    # cut-off 4 finds every positive and no negative
    assert best_threshold([0, 2, 4], [9, 12]) == (4, 1.0, 0.0)


def test_best_threshold_trades_recall_for_false_alarms():
    # at 3: recall 3/4 (inf is never found), FP 0 -> 0.875; at 6: recall 3/4, FP 1/2 -> 0.625
    assert best_threshold([1, 2, 3, math.inf], [6, 20]) == (3, 0.75, 0.0)
    # overlap: at 10 recall 1, FP 1/3 -> 0.833; at 2 recall 1/3, FP 0 -> 0.667
    threshold, recall, fp = best_threshold([2, 8, 10], [5, 30, 40])
    assert (threshold, recall, fp) == (10, 1.0, pytest.approx(1 / 3))


def test_best_threshold_nothing_findable():
    # no cut-off finds anything, any finite one raises a false alarm: accept nothing
    assert best_threshold([math.inf], [3]) == (-math.inf, 0.0, 0.0)
