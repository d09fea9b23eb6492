"""benchmarks/oracle_vs_tests.py: the like-for-like (task CWE) view and the table cells, by hand."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from treeplay.eval.records import Generation
from treeplay.oracle import records as oracle  # (its Test* names are not test classes)
from treeplay.oracle.records import Finding, Verdict

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "oracle_vs_tests.py"
_SPEC = importlib.util.spec_from_file_location("oracle_vs_tests", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)


def _record(status: str, finding_cwe: str | None, security_pass: bool, functional_pass: bool = True) -> Generation:
    findings = [Finding(finding_cwe, 3, 3, "semgrep", "rule", "high", "m")] if finding_cwe else []
    completion = "    return open(path).read()\n"
    tests = oracle.TestResult(functional_pass, security_pass, "ok", (oracle.TestCaseOutcome("t", "security", security_pass),))
    return Generation("t", "py", ("CWE-22",), "sallm", "m", 0, completion, completion, "stop", 1,
                      Verdict(status, tuple(findings)), tests)  # fmt: skip


def test_a_flag_of_another_cwe_is_not_a_flag_of_the_task_cwe() -> None:
    other = _record("vulnerable", "CWE-79", security_pass=False)
    assert bench.task_cwe_only(other).status == "secure"
    same = _record("vulnerable", "CWE-22", security_pass=False)
    assert bench.task_cwe_only(same).status == "vulnerable"
    # CWE-23 (relative path traversal) is a child of CWE-22 in the oracle's equivalence table
    child = _record("vulnerable", "CWE-23", security_pass=False)
    assert bench.task_cwe_only(child).status == "vulnerable"


def test_table_row_counts_flagged_given_fail_and_given_pass() -> None:
    from treeplay.eval.agreement import oracle_vs_tests

    records = [
        _record("vulnerable", "CWE-22", security_pass=False),  # flagged, attack worked
        _record("secure", None, security_pass=False),  # blind spot
        _record("secure", None, security_pass=False, functional_pass=False),  # blind spot, not working
        _record("vulnerable", "CWE-79", security_pass=True),  # flagged, attack failed
    ]
    row = bench.table_row("arm", oracle_vs_tests(records))
    # all: 1 of 3 failing flagged, 1 of 1 passing flagged; functional pass: 1 of 2, 1 of 1; 0 excluded
    assert row == ("| arm |  33.3% (1/3) | 100.0% (1/1) |  50.0% (1/2) | 100.0% (1/1) | 0 |")
    like_for_like = bench.table_row("arm", oracle_vs_tests([bench.task_cwe_only(r) for r in records]))
    assert like_for_like == "| arm |  33.3% (1/3) |   0.0% (0/1) |  50.0% (1/2) |   0.0% (0/1) | 0 |"
