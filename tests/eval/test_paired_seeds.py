"""The two-level (seeds and tasks resampled) paired bootstrap and its report columns.

Score tables are written by hand; every expected number is worked out in the comments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from generation_fixtures import generation_json

from treeplay.eval.paired import (
    paired_bootstrap_ci,
    paired_difference,
    seed_task_diffs,
    two_level_bootstrap_ci,
    two_level_ci,
)
from treeplay.eval.report import write_report
from treeplay.eval.report_paired import SEEDS_HEADERS, flipped, paired_row, seed_resampling_note
from treeplay.jsonl import write_jsonl

TASKS = [f"t{i:02d}" for i in range(20)]


def scores(value: float, tasks: list[str] = TASKS) -> dict[str, float]:
    return dict.fromkeys(tasks, value)


def test_seed_variance_is_seen_only_by_the_two_level_ci() -> None:
    # 20 tasks, 3 seeds. d = arm - ref per seed:
    #   seed 0: arm 1, ref 0 everywhere                     -> d = +1 on all 20 tasks
    #   seed 1: arm 0, ref 1 everywhere                     -> d = -1 on all 20 tasks
    #   seed 2: arm 1, ref 0 on t00..t17; both 0 on t18, t19 -> d = +1 on 18 tasks, 0 on 2
    # Mean over seeds per task: t00..t17 arm 2/3 - ref 1/3 = 1/3; t18, t19 1/3 - 1/3 = 0
    # -> mean 18/20 * 1/3 = 0.3 = +30 pp. Per seed: +100, -100, +90 pp.
    # Task level: a resample's mean is (20 - Z)/20 * 1/3, Z ~ Bin(20, 0.1) the draws of t18/t19;
    # Z's 2.5% quantile is 0 (P(Z = 0) = 12%), its 97.5% one 5 (P(Z <= 4) = 0.957, P(Z <= 5) = 0.989)
    # -> CI about [25.0, 33.3] pp: excludes 0, although seed 1 alone says the opposite.
    # Two level: a resample drawing seed 1 three times (1/27 = 3.7% > 2.5%) is exactly -1 and
    # nothing is lower -> low = -100 pp; drawing only seeds 0 and 2 (8/27) gives (c0 + c2 * m2) / 3
    # with m2 (seed 2 on the drawn tasks) about 0.9 -> high between +90 and +100 pp.
    arm = {0: scores(1.0), 1: scores(0.0), 2: {**scores(1.0, TASKS[:18]), **scores(0.0, TASKS[18:])}}
    ref = {0: scores(0.0), 1: scores(1.0), 2: scores(0.0)}
    diff = paired_difference("sallm", "func_sec", "tsp", "sft", arm, ref)
    assert diff is not None
    assert diff.mean_pp == pytest.approx(30.0)
    assert [s for s, _ in diff.per_seed_pp] == [0, 1, 2]
    assert [v for _, v in diff.per_seed_pp] == pytest.approx([100.0, -100.0, 90.0])
    assert 20.0 <= diff.ci_low_pp <= 26.7  # Z = 6, 5 or 4 at the 97.5% point of 2000 resamples
    assert diff.ci_high_pp == pytest.approx(100 / 3)
    assert diff.better is True  # the task-level CI claims a win
    two = diff.two_level
    assert two is not None
    assert (two.seeds, two.excluded) == ((0, 1, 2), ())
    assert two.low_pp == pytest.approx(-100.0)
    assert 90.0 <= two.high_pp <= 100.0
    assert two.low_pp < 0 < two.high_pp and diff.better_two_level is None
    row = paired_row(diff, seeds=True)
    assert len(row) == len(SEEDS_HEADERS)
    assert row[-3] == f"[-100.0, {two.high_pp:+.1f}]"
    assert row[-2:] == ["* better", ""]  # only the task-level column is marked


def test_two_seeds_opposite_signs_task_ci_is_zero_two_level_spans_both() -> None:
    # seed 0: d = +1 on every task, seed 1: d = -1. Mean over seeds: 0 on every task, so the
    # task-level CI is [0, 0]. Two level: seed multisets {0,0} -> +1 (1/4 of resamples),
    # {0,1} -> 0 (1/2), {1,1} -> -1 (1/4); the task draw changes nothing -> CI [-100, +100] exactly.
    arm = {0: scores(1.0), 1: scores(0.0)}
    ref = {0: scores(0.0), 1: scores(1.0)}
    diff = paired_difference("humaneval", "pass", "tsp", "sft", arm, ref)
    assert diff is not None
    assert (diff.mean_pp, diff.ci_low_pp, diff.ci_high_pp) == (0.0, 0.0, 0.0)
    assert diff.two_level is not None
    assert (diff.two_level.low_pp, diff.two_level.high_pp) == (-100.0, 100.0)


# 30 tasks with varied differences d: 10 x +1, 8 x 0, 7 x -1, 5 x +0.5 (arm, ref scores below)
_PATTERN = [(1.0, 0.0)] * 10 + [(0.5, 0.5)] * 8 + [(0.0, 1.0)] * 7 + [(1.0, 0.5)] * 5
_TASKS30 = [f"u{i:02d}" for i in range(30)]


def test_no_seed_variance_both_cis_agree() -> None:
    # Three seeds with the same per-task scores: resampling seeds changes nothing, so the two-level
    # CI is the task-level one. Its task draw is shared by the seeds and comes first from the same
    # RNG: equal up to float rounding. A task draw of its own per seed would average three
    # independent task means and shrink the CI by about 1/sqrt(3).
    arm0 = {t: a for t, (a, _) in zip(_TASKS30, _PATTERN, strict=True)}
    ref0 = {t: r for t, (_, r) in zip(_TASKS30, _PATTERN, strict=True)}
    arm = {s: dict(arm0) for s in (0, 1, 2)}
    ref = {s: dict(ref0) for s in (0, 1, 2)}
    diff = paired_difference("sallm", "func", "tsp", "sft", arm, ref)
    assert diff is not None and diff.two_level is not None
    # mean: (10 - 7 + 2.5) / 30 = 5.5 / 30
    assert diff.mean_pp == pytest.approx(100 * 5.5 / 30)
    assert (diff.two_level.low_pp, diff.two_level.high_pp) == pytest.approx(
        (diff.ci_low_pp, diff.ci_high_pp), abs=1e-9
    )
    assert diff.ci_high_pp - diff.ci_low_pp > 30.0  # a real width: d has sd about 0.7 over 30 tasks
    # Another bootstrap RNG seed: equal within the bootstrap's own error (about 1 pp here).
    other = two_level_ci("tsp", "sft", arm, ref, seed=7)
    assert other is not None
    assert other.low_pp == pytest.approx(diff.ci_low_pp, abs=3.0)
    assert other.high_pp == pytest.approx(diff.ci_high_pp, abs=3.0)


def test_one_seed_two_level_equals_task_level() -> None:
    d = np.array([1.0, 0.0, -1.0, 0.5, 0.5, 0.0, 1.0, -0.5, 0.0, 1.0, 0.25])
    for rng_seed in (0, 3):
        task = paired_bootstrap_ci(d, seed=rng_seed)
        two = two_level_bootstrap_ci(d[None, :], seed=rng_seed)
        assert two == pytest.approx(task, abs=1e-12)
    assert paired_bootstrap_ci(d, seed=0) != paired_bootstrap_ci(d, seed=3)  # the comparison has teeth
    # through the score tables: one seed, tasks a..c with d = +1, 0, -0.5
    ci = two_level_ci("tsp", "sft", {0: {"a": 1.0, "b": 0.5, "c": 0.0}}, {0: {"a": 0.0, "b": 0.5, "c": 0.5}})
    assert ci is not None
    low, high = paired_bootstrap_ci([1.0, 0.0, -0.5])
    assert (ci.low_pp, ci.high_pp) == pytest.approx((100 * low, 100 * high), abs=1e-9)


def test_two_level_is_deterministic_under_a_fixed_rng_seed() -> None:
    rng = np.random.default_rng(42)
    matrix = rng.choice([-1.0, 0.0, 0.5, 1.0], size=(3, 40))
    first = two_level_bootstrap_ci(matrix, seed=5)
    assert two_level_bootstrap_ci(matrix, seed=5) == first
    assert two_level_bootstrap_ci(matrix.copy(), seed=5) == first
    assert two_level_bootstrap_ci(matrix, seed=6) != first  # the seed is what fixes it


def test_seed_task_matrix_pairs_within_a_seed_and_names_unpaired_seeds() -> None:
    # tsp has seeds 0, 1, 2; sft only 0 and 1; sft seed 1 does not score task b; task c only in seed 0.
    arm = {0: {"a": 1.0, "b": 0.5, "c": 1.0}, 1: {"a": 0.0, "b": 1.0}, 2: {"a": 1.0, "b": 1.0}}
    ref = {0: {"a": 0.0, "b": 0.5, "c": 0.0}, 1: {"a": 1.0}}
    seeds, matrix, excluded = seed_task_diffs("tsp", "sft", arm, ref)
    assert seeds == (0, 1)
    assert excluded == (("tsp", 2),)
    expected = np.array([[1.0, 0.0, 1.0], [-1.0, np.nan, np.nan]])  # columns a, b, c
    np.testing.assert_array_equal(matrix, expected)
    ci = two_level_ci("tsp", "sft", arm, ref)
    assert ci is not None and ci.excluded == (("tsp", 2),)
    # the CI is the one of seeds 0 and 1 alone: seed 2 of tsp plays no part
    alone = two_level_ci("tsp", "sft", {0: arm[0], 1: arm[1]}, ref)
    assert alone is not None and (ci.low_pp, ci.high_pp) == (alone.low_pp, alone.high_pp)
    diff = paired_difference("sallm", "func", "tsp", "sft", arm, ref)
    assert diff is not None
    assert paired_row(diff, seeds=True)[-3].endswith(" without s2 (only tsp)")
    # a reference seed the arm lacks is named with the reference's name
    assert seed_task_diffs("tsp", "base", {0: {"a": 1.0}}, {0: {"a": 0.0}, 3: {"a": 0.0}})[2] == (
        ("base", 3),
    )


def test_two_level_rejects_a_matrix_without_values() -> None:
    with pytest.raises(ValueError, match=r"seeds x tasks matrix with a value, got shape \(0,\)"):
        two_level_bootstrap_ci(np.array([]))
    with pytest.raises(ValueError, match=r"got shape \(2, 2\)"):
        two_level_bootstrap_ci(np.full((2, 2), np.nan))
    # no seed that both arms have: no two-level CI
    assert two_level_ci("tsp", "sft", {0: {"a": 1.0}}, {1: {"a": 0.0}}) is None


def test_flipped_negates_the_two_level_ci() -> None:
    arm = {0: scores(1.0), 1: {**scores(1.0, TASKS[:10]), **scores(0.0, TASKS[10:])}}
    ref = {0: scores(0.0), 1: scores(0.0)}
    diff = paired_difference("sallm", "func", "sft", "base", arm, ref)
    assert diff is not None and diff.two_level is not None
    back = flipped(diff).two_level
    assert back is not None
    assert (back.low_pp, back.high_pp) == (-diff.two_level.high_pp, -diff.two_level.low_pp)
    assert diff.better_two_level is True and flipped(diff).better_two_level is False


def test_seed_resampling_note_by_hand() -> None:
    # 3 seeds drawn 3 times with replacement: C(5, 3) = 10 multisets; {0,0,0}, {1,1,1}, {2,2,2}
    # each 1/27 -> 3/27 = 11%; bootstrap variance of a mean of 3 = (2/3) s^2/3.
    note = seed_resampling_note(3)
    assert "only 10 distinct seed multisets" in note
    assert "3/27 = 11%" in note
    assert "(3-1)/3 = 0.67" in note
    assert "only 3 distinct seed multisets" in seed_resampling_note(2)  # {0,0}, {0,1}, {1,1}


def _he(task: str, passed: bool) -> dict[str, Any]:
    tests = {"outcome": "ok", "functional_pass": passed, "security_pass": False}
    return generation_json(
        task, cwe=["CWE-20"], bench="humaneval", completion="x = 1\n", verdict=None, tests=tests
    )


def test_report_shows_both_cis_for_a_two_seed_run(tmp_path: Path) -> None:
    # HumanEval h1..h4, 1 sample. seed 0: tsp passes all, sft none (d = +1); seed 1 the opposite.
    # Mean over seeds 0.5 vs 0.5 -> d = 0 on each task: task CI [+0.0, +0.0]; two level [-100, +100]
    # (as in the two-seed test above).
    for seed, tsp_pass in ((0, True), (1, False)):
        for arm, passed in (("tsp", tsp_pass), ("sft", not tsp_pass)):
            path = tmp_path / f"seed-{seed}" / arm / "eval" / "humaneval" / "generations.jsonl"
            write_jsonl(path, [_he(f"h{i}", passed) for i in range(1, 5)])
    md = write_report(tmp_path)[0].read_text()
    assert "| " + " | ".join(SEEDS_HEADERS) + " |" in md
    assert "| tsp vs sft | humaneval | pass | +0.0 | [+0.0, +0.0] | 4 | 0 / 0 | s0: +100.0, s1: -100.0 | " \
           "[-100.0, +100.0] |  |  |" in md  # fmt: skip
    assert "only 3 distinct seed multisets" in md
