from __future__ import annotations

from treeplay.oracle import records as oracle_records
from treeplay.oracle.records import Finding, Verdict
from treeplay.tree.labels import label_branch

SQL = Finding("CWE-89", 5, 5, "bandit", "B608", "medium", "sql injection")
OTHER = Finding("CWE-703", 3, 3, "bandit", "B101", "low", "assert used")


def _tests(functional: bool, security: bool, outcome: str = "ok") -> oracle_records.TestResult:
    return oracle_records.TestResult(
        functional_pass=functional,
        security_pass=security,
        outcome=outcome,  # type: ignore[arg-type]
        tests=(oracle_records.TestCaseOutcome("t", "functionality", functional),),
    )


def test_unparseable_wins() -> None:
    label = label_branch(Verdict("unparseable", error="invalid syntax"), _tests(False, False))
    assert label.label == "unparseable" and label.cwe is None


def test_vulnerable_keeps_task_cwe_and_first_line() -> None:
    label = label_branch(Verdict("vulnerable", (SQL, OTHER)), task_cwe="CWE-89")
    assert label.label == "vulnerable"
    assert label.cwe == "CWE-89"
    assert label.first_flagged_line == 3
    assert {f["rule"] for f in label.findings} == {"B608", "B101"}


def test_vulnerable_without_task_cwe_hit_uses_earliest_finding() -> None:
    label = label_branch(Verdict("vulnerable", (SQL, OTHER)), task_cwe="CWE-78")
    assert label.cwe == "CWE-703"


def test_secure_is_never_assumed_vulnerable() -> None:
    assert label_branch(Verdict("secure")).label == "secure"
    assert label_branch(Verdict("secure"), _tests(True, True)).label == "secure"


def test_failing_security_tests_make_it_vulnerable() -> None:
    label = label_branch(Verdict("secure"), _tests(True, False), task_cwe="CWE-22")
    assert label.label == "vulnerable" and label.cwe == "CWE-22"
    assert label.tests is not None and label.tests["security_pass"] is False


def test_nonfunctional_when_functionality_fails_or_sandbox_times_out() -> None:
    assert label_branch(Verdict("secure"), _tests(False, True)).label == "nonfunctional"
    assert label_branch(Verdict("secure"), _tests(False, False, "timeout")).label == "nonfunctional"


def test_incomplete_and_unsupported_verdicts_are_never_secure() -> None:
    # issue 14 items 2 and 5: a branch the oracle could not fully judge is not labelled secure
    incomplete = Verdict("incomplete", analyzers_run=("bandit",), failed_analyzers=("semgrep",))
    assert label_branch(incomplete).label == "incomplete"
    assert label_branch(incomplete, _tests(True, True)).label == "incomplete"
    assert label_branch(Verdict("unsupported", error="no judge")).label == "unsupported"
    # failing security tests still make it vulnerable
    assert label_branch(incomplete, _tests(True, False)).label == "vulnerable"


def test_static_nonfunctional_is_neither_chosen_nor_vulnerable_without_tests() -> None:
    broken = Verdict("vulnerable", (SQL,), functional="nonfunctional",
                     functional_error="line 1: import of unknown module 'fastdb'")
    assert label_branch(broken, task_cwe="CWE-89").label == "nonfunctional"
    assert label_branch(Verdict("secure", functional="nonfunctional")).label == "nonfunctional"
    assert label_branch(Verdict("secure", functional="ok")).label == "secure"
    # an incomplete verdict of a statically nonfunctional program: still neither chosen nor rejected
    assert label_branch(Verdict("incomplete", functional="nonfunctional", failed_analyzers=("semgrep",))
                        ).label == "nonfunctional"
    # when the task's tests ran, they decide functionality (security tests failed: vulnerable)
    assert label_branch(Verdict("secure", functional="nonfunctional"), _tests(True, False)).label == "vulnerable"
