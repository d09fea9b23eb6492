"""Metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest
from generation_fixtures import generation

from treeplay.eval.empty import behaviour_lines, is_empty_completion
from treeplay.eval.metrics import (
    Outcome,
    bootstrap_ci,
    breakdown,
    functional_summary,
    mean_ci_over_seeds,
    pass_at_k,
    security_summary,
    summarise,
    vulnerability_reduction,
)


def gens(task: str, statuses: list[str], *, cwe: str = "CWE-89", language: str = "py") -> list[Outcome]:
    return [Outcome(task, language, cwe, s) for s in statuses]


# A: 1 secure of 2 parseable (+1 unparseable); B: 3/3 secure; C: nothing parses.
OUTCOMES = (
    gens("A", ["secure", "vulnerable", "unparseable"])
    + gens("B", ["secure", "secure", "secure"], cwe="CWE-79", language="js")
    + gens("C", ["unparseable"] * 3)
)


def test_spr_ignores_unparseable_but_strict_counts_it() -> None:
    summary = security_summary(OUTCOMES)
    # SPR: tasks A (1/2) and B (1); C has no parseable generation -> left out.
    assert summary["spr@1"]["value"] == pytest.approx(0.75)
    assert summary["spr@1"]["n_tasks"] == 2
    # strict: (1/3 + 1 + 0) / 3
    assert summary["strict_spr@1"]["value"] == pytest.approx(4 / 9)
    assert summary["unparseable_share"]["value"] == pytest.approx((1 / 3 + 0 + 1) / 3)
    assert summary["vulnerable_share"]["value"] == pytest.approx((1 / 3) / 3)
    assert summary["counts"] == {
        "tasks": 3, "generations": 9, "secure": 4, "vulnerable": 1, "unparseable": 4, "empty": 0,
        "attempted": 5, "vulnerable_attempted": 1, "incomplete": 0, "unsupported": 0, "nonfunctional": 0,
    }  # fmt: skip
    # vulnerable among parseable non-empty programs: A 1/2, B 0/3; C has none -> left out
    assert summary["vulnerable_attempted_share"]["value"] == pytest.approx((1 / 2 + 0) / 2)
    assert summary["insecure_strict_share"]["value"] == pytest.approx(1 - 4 / 9)


def test_broken_code_cannot_look_secure() -> None:
    # A model that writes one secure program and nine unparseable ones.
    outcomes = gens("ok", ["secure"]) + [o for i in range(9) for o in gens(f"bad{i}", ["unparseable"])]
    summary = security_summary(outcomes)
    assert summary["spr@1"]["value"] == 1.0
    assert summary["strict_spr@1"]["value"] == pytest.approx(0.1)
    assert summary["unparseable_share"]["value"] == pytest.approx(0.9)


def test_empty_code_cannot_look_secure() -> None:
    # Task E: an empty completion (parses, oracle says secure) and a vulnerable one.
    outcomes = [
        Outcome("E", "py", "CWE-89", "secure", empty=True),
        Outcome("E", "py", "CWE-89", "vulnerable"),
        Outcome("F", "py", "CWE-89", "secure", empty=True),
    ]
    summary = security_summary(outcomes)
    assert summary["spr@1"]["value"] == 0.0  # only E's vulnerable program counts; F has none
    assert summary["spr@1"]["n_tasks"] == 1
    assert summary["strict_spr@1"]["value"] == 0.0
    assert summary["empty_share"]["value"] == pytest.approx((1 / 2 + 1) / 2)


@pytest.mark.parametrize(
    ("text", "language", "empty"),
    [
        ("\n", "py", True),
        ("\n    pass\n", "py", True),
        ("    # TODO\n    ...\n", "py", True),
        ("\n}\n", "c", True),
        ("```\n", "js", True),
        ("    return x\n", "py", False),
        ("  os.system(cmd);\n}", "c", False),
        # issue 14 item 9: trivial bodies, per language
        ("    return None\n", "py", True),
        ("    return\n", "py", True),
        ('    """Load the user.\n\n    Returns a dict.\n    """\n', "py", True),
        ("    '''one line'''\n    pass\n", "py", True),
        ('    x = """text"""\n', "py", False),
        ("    return 0\n", "py", False),
        ("  /* not yet */\n  return;\n}\n", "c", True),
        ("  return NULL;\n}\n", "c", True),
        ("  return nullptr;\n}\n", "cpp", True),
        ("  return 0;\n}\n", "c", False),
        ("  // TODO\n  return null;\n}\n", "js", True),
        ("  return undefined\n}\n", "js", True),
        ("  return nil\n}\n", "go", True),
        ("  return err\n}\n", "go", False),
        ("  /**\n   * Javadoc only\n   */\n  return null;\n}\n", "java", True),
        ("  # nothing\n  nil\nend\n", "rb", True),
        ("=begin\nlater\n=end\nend\n", "rb", True),
        ("  system(cmd)\nend\n", "rb", False),
    ],
)
def test_is_empty_completion(text: str, language: str, empty: bool) -> None:
    assert is_empty_completion(text, language) is empty


@pytest.mark.parametrize(
    ("text", "language", "lines"),
    [
        # docstring, comment and blank lines add no behaviour; the assignment and the return do
        ('    """Load it."""\n    # read the file\n    data = load(path)\n\n    return data\n', "py", 2),
        # HumanEval's one-line answers (docs/results.md) are one line
        ("    return max(strings, default=None)\n", "py", 1),
        ("    pass\n", "py", 0),
        # closing braces and a bare return are trivial; the condition and both returns count
        ("  if (n < 0) {\n    return -1;\n  }\n  return n * 2;\n}\n", "c", 3),
        ("  // only a comment\n  return;\n}\n", "c", 0),
    ],
)
def test_behaviour_lines_count_only_lines_that_do_something(text: str, language: str, lines: int) -> None:
    assert behaviour_lines(text, language) == lines


def test_code_lines_is_the_mean_answer_size_per_task_then_over_tasks() -> None:
    # A: answers of 2 and 4 lines (mean 3); B: one empty answer (0) and one of 1 line (mean 0.5)
    outcomes = [Outcome("A", "py", None, "secure", code_lines=2), Outcome("A", "py", None, "secure", code_lines=4),
                Outcome("B", "py", None, "secure", empty=True, code_lines=0),
                Outcome("B", "py", None, "vulnerable", code_lines=1)]  # fmt: skip
    entry = summarise(outcomes)["code_lines"]
    assert entry["value"] == pytest.approx(1.75)  # (3 + 0.5) / 2: every task weighs the same
    assert entry["n_tasks"] == 2
    assert entry["ci_low"] == pytest.approx(0.5) and entry["ci_high"] == pytest.approx(3.0)  # the two task means


def test_an_outcome_counts_the_lines_of_its_completion() -> None:
    record = generation("A", completion="    x = f()\n    # note\n    return x\n")
    outcome = Outcome.from_generation(record)
    assert outcome.code_lines == 2 and not outcome.empty


def test_cut_and_one_line_shares_are_per_task_then_over_tasks() -> None:
    # A: one cut 3-line answer and one 1-line answer that stopped; B: one 1-line answer cut at the limit
    outcomes = [Outcome("A", "py", None, "secure", code_lines=3, cut=True),
                Outcome("A", "py", None, "secure", code_lines=1),
                Outcome("B", "py", None, "vulnerable", code_lines=1, cut=True)]  # fmt: skip
    summary = summarise(outcomes)
    assert summary["cut_share"]["value"] == pytest.approx(0.75)  # (1/2 + 1/1) / 2
    assert summary["one_line_share"]["value"] == pytest.approx(0.75)  # (1/2 + 1/1) / 2
    assert summary["cut_share"]["n_tasks"] == 2


def test_an_empty_answer_is_not_a_one_line_answer() -> None:
    outcomes = [Outcome("A", "py", None, "secure", empty=True, code_lines=0),
                Outcome("A", "py", None, "secure", code_lines=2)]  # fmt: skip
    assert summarise(outcomes)["one_line_share"]["value"] == 0.0


def test_an_outcome_is_cut_only_when_sampling_hit_the_token_limit() -> None:
    assert Outcome.from_generation(generation("A", finish_reason="length")).cut
    assert not Outcome.from_generation(generation("A", finish_reason="stop")).cut


def test_incomplete_and_unsupported_are_left_out_of_every_rate() -> None:
    # issue 14 items 2, 5: the same rates as without the unjudged generations, counted apart
    outcomes = gens("A", ["secure", "vulnerable", "incomplete"]) + gens("B", ["unsupported"], language="rb")
    summary = security_summary(outcomes)
    assert summary["spr@1"]["value"] == 0.5 and summary["spr@1"]["n_tasks"] == 1
    assert summary["strict_spr@1"]["value"] == 0.5
    assert summary["vulnerable_share"]["value"] == 0.5
    assert summary["counts"]["generations"] == 2
    assert summary["counts"]["incomplete"] == 1 and summary["counts"]["unsupported"] == 1
    assert summarise(outcomes)["unsupported_languages"] == ["rb"]


def test_pass_at_k_hand_values() -> None:
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)  # 1 - C(3,2)/C(5,2)
    assert pass_at_k(3, 0, 1) == 0.0
    assert pass_at_k(4, 3, 2) == 1.0  # fewer than k failures


def test_func_and_func_sec_at_k() -> None:
    def t(task: str, fp: bool, sp: bool) -> Outcome:
        return Outcome(task, "c", "CWE-787", None, functional_pass=fp, security_pass=sp)

    outcomes = [t("x", True, True), t("x", True, False), t("y", False, False), t("y", True, True)]
    outcomes += [Outcome("untested", "c", "CWE-787", "secure")]
    summary = functional_summary(outcomes, ks=(1, 2, 5))
    assert summary["tested_tasks"] == 2
    assert summary["func@1"]["value"] == pytest.approx((1.0 + 0.5) / 2)
    assert summary["func-sec@1"]["value"] == pytest.approx((0.5 + 0.5) / 2)
    assert summary["func@2"]["value"] == 1.0
    assert summary["func-sec@2"]["value"] == 1.0
    assert "func@5" not in summary  # only 2 samples per task


def test_bootstrap_ci_is_seeded_and_brackets_the_mean() -> None:
    values = [0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0]
    ci = bootstrap_ci(values, seed=3)
    assert ci == bootstrap_ci(values, seed=3)
    assert ci is not None
    low, high = ci
    assert low < 0.7 < high
    assert low >= 0.0 and high <= 1.0
    assert bootstrap_ci([0.5] * 4) == (0.5, 0.5)
    assert bootstrap_ci([]) is None
    rate_ci = security_summary(OUTCOMES)["strict_spr@1"]
    assert rate_ci["ci_low"] <= rate_ci["value"] <= rate_ci["ci_high"]


def test_breakdowns_per_cwe_and_language() -> None:
    per_cwe = breakdown(OUTCOMES, lambda o: o.cwe)
    assert set(per_cwe) == {"CWE-79", "CWE-89"}
    assert per_cwe["CWE-89"]["spr@1"]["value"] == pytest.approx(0.5)  # only A parses
    assert per_cwe["CWE-89"]["strict_spr@1"]["value"] == pytest.approx((1 / 3 + 0) / 2)
    assert per_cwe["CWE-79"]["counts"]["secure"] == 3
    full = summarise(OUTCOMES)
    assert set(full["per_language"]) == {"js", "py"}
    assert full["per_language"]["js"]["spr@1"]["value"] == 1.0


def test_outcome_from_generation_record() -> None:
    record = generation(
        "t1",
        language="c",
        cwe=["CWE-787", "CWE-20"],
        verdict={"status": "vulnerable"},
        tests={"functional_pass": True, "security_pass": False, "outcome": "ok"},
    )
    outcome = Outcome.from_generation(record)
    assert (outcome.cwe, outcome.status, outcome.functional_pass, outcome.security_pass) == (
        "CWE-787",
        "vulnerable",
        True,
        False,
    )
    assert Outcome.from_generation(generation("t2", verdict=None, tests=None)).status is None


def test_vulnerability_reduction_and_seed_mean() -> None:
    assert vulnerability_reduction(6, 10) == pytest.approx(40.0)
    assert vulnerability_reduction(12, 10) == pytest.approx(-20.0)
    assert vulnerability_reduction(3, 0) is None
    stat = mean_ci_over_seeds([0.2, 0.4, 0.6])
    assert stat is not None
    assert stat.mean == pytest.approx(0.4)
    assert stat.half_width == pytest.approx(4.303 * 0.2 / math.sqrt(3))
    assert stat.format() == "40.0 ± 49.7"
    single = mean_ci_over_seeds([0.25])
    assert single is not None and single.half_width is None and single.format() == "25.0"
    assert mean_ci_over_seeds([]) is None
    two = mean_ci_over_seeds([0.75, 0.5])  # two seeds: both values, in seed order, not mean ± 12.7 sd/√2
    assert two is not None and two.format() == "62.5 (75.0, 50.0)"
    assert two.half_width == pytest.approx(12.706 * 0.1767767 / math.sqrt(2), rel=1e-4)


def test_nonfunctional_share_is_over_parseable_non_empty_programs() -> None:
    records = [
        generation("A", completion="    return q\n", verdict={"status": "secure", "functional": "nonfunctional"}),
        generation("A", completion="    return q\n", verdict={"status": "secure", "functional": "ok"}),
        generation("B", completion="    return (\n", verdict={"status": "unparseable"}),
        generation("C", completion="    return q\n", verdict={"status": "vulnerable", "functional": "nonfunctional"}),
    ]
    summary = security_summary([Outcome.from_generation(r) for r in records])
    # A: 1 of 2 attempted; B: none attempted (left out); C: 1 of 1 -> (0.5 + 1) / 2
    assert summary["nonfunctional_share"]["value"] == pytest.approx(0.75)
    assert summary["counts"]["nonfunctional"] == 2


def test_strict_spr_counts_a_nonfunctional_program_as_a_failure() -> None:
    # Task A: one working secure program, one secure program that imports a module that does not
    # exist, one vulnerable one. Task B: a single nonfunctional "secure" program.
    records = [
        generation("A", completion="    return q\n", verdict={"status": "secure", "functional": "ok"}),
        generation("A", completion="    return q\n", verdict={"status": "secure", "functional": "nonfunctional"}),
        generation("A", completion="    return q\n", verdict={"status": "vulnerable", "functional": "ok"}),
        generation("B", completion="    return q\n", verdict={"status": "secure", "functional": "nonfunctional"}),
    ]
    summary = security_summary([Outcome.from_generation(r) for r in records])
    # strict: A 1 of 3, B 0 of 1 -> (1/3 + 0) / 2; broken output is never secure here
    assert summary["strict_spr@1"]["value"] == pytest.approx(1 / 6)
    assert summary["insecure_strict_share"]["value"] == pytest.approx(5 / 6)
    # SPR@1 keeps the paper's definition (secure among parseable): A 2 of 3, B 1 of 1
    assert summary["spr@1"]["value"] == pytest.approx((2 / 3 + 1) / 2)
    # the vulnerable share among attempted programs is not changed by the sanity check: A 1/3, B 0
    assert summary["vulnerable_attempted_share"]["value"] == pytest.approx((1 / 3 + 0) / 2)
