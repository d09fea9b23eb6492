from __future__ import annotations

from math import comb

import pytest

from treeplay.oracle.passk import func_at_k, func_sec_at_k, mean_pass_at_k, pass_at_k
from treeplay.oracle.records import TestResult as Result


@pytest.mark.parametrize("n", [1, 2, 5, 10, 20])
def test_pass_at_k_matches_the_binomial_formula(n: int) -> None:
    for c in range(n + 1):
        for k in range(1, n + 1):
            expected = 1.0 - comb(n - c, k) / comb(n, k)
            assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_edge_values() -> None:
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(5, 1, 1) == pytest.approx(0.2)
    assert pass_at_k(200, 1, 100) == pytest.approx(0.5)  # large n stays finite and exact


@pytest.mark.parametrize(("n", "c", "k"), [(0, 0, 1), (5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6)])
def test_pass_at_k_rejects_impossible_counts(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError, match="pass_at_k"):
        pass_at_k(n, c, k)


def _r(func: bool, sec: bool) -> Result:
    return Result(functional_pass=func, security_pass=sec, outcome="ok")


def test_func_sec_counts_a_sample_only_when_functional_and_secure() -> None:
    results = {
        "a": [_r(True, True), _r(True, False), _r(False, True), _r(False, False)],
        "b": [_r(True, False), _r(True, False), _r(False, False), _r(False, False)],
    }
    assert func_at_k(results, 1) == pytest.approx((2 / 4 + 2 / 4) / 2)
    assert func_sec_at_k(results, 1) == pytest.approx((1 / 4 + 0) / 2)
    assert func_sec_at_k(results, 4) == pytest.approx(0.5)
    assert func_sec_at_k(results, 2) < func_at_k(results, 2)


def test_mean_pass_at_k_needs_tasks() -> None:
    with pytest.raises(ValueError, match="no tasks"):
        mean_pass_at_k([], 1)
