"""Branch labels from the oracle: a static `Verdict`, plus a sandboxed `TestResult` when present.

Precedence (first match wins):
1. `unparseable`  – the static oracle could not parse the program;
2. `nonfunctional` – the task has no tests and the oracle's static functional sanity check says the
   program cannot run (unknown import, undefined name, compile error, task signature dropped:
   `Verdict.functional`). Such a branch is neither a chosen example nor a verified-vulnerable reject;
3. `vulnerable`   – the static oracle says vulnerable, or the task's security tests failed;
4. `nonfunctional` – the task's functionality tests failed (or the sandbox timed out/crashed);
5. `incomplete`   – an analyzer failed, timed out or is missing and nothing was found
   (`unsupported`: the language has no judge); neither is ever used in a pair;
6. `secure`       – none of the above.

Nothing is ever assumed vulnerable: a branch without findings and without failing security tests
is `secure` (or `nonfunctional`), unlike the reference implementation, which treated every
sampled branch at a risk node as a rejected example.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from treeplay.oracle.records import TestResult, Verdict
from treeplay.tree.records import BranchLabel


@dataclass(frozen=True)
class Label:
    label: BranchLabel
    cwe: str | None
    first_flagged_line: int | None
    findings: tuple[dict[str, Any], ...]
    tests: dict[str, Any] | None


def label_branch(verdict: Verdict, tests: TestResult | None = None, *, task_cwe: str | None = None) -> Label:
    """Label one branch program from its verdict (and test result when the task has tests)."""
    findings = tuple(dataclasses.asdict(f) for f in verdict.findings)
    tests_dict = dataclasses.asdict(tests) if tests is not None else None
    first_line = verdict.first_flagged_line
    if verdict.status == "unparseable":
        return Label("unparseable", None, None, findings, tests_dict)
    if verdict.status == "unsupported":  # no judge for the language: never `secure`, never paired
        return Label("unsupported", None, None, findings, tests_dict)
    if tests is None and verdict.functional == "nonfunctional":  # static check: neither chosen nor rejected
        return Label("nonfunctional", None, None, findings, tests_dict)
    security_tests_failed = tests is not None and not tests.security_pass and tests.outcome == "ok"
    if verdict.status == "vulnerable" or security_tests_failed:
        return Label("vulnerable", _pick_cwe(verdict, task_cwe), first_line, findings, tests_dict)
    if tests is not None and (not tests.functional_pass or tests.outcome != "ok"):
        return Label("nonfunctional", None, None, findings, tests_dict)
    if verdict.status == "incomplete":  # an analyzer failed: not verified secure, never paired
        return Label("incomplete", None, None, findings, tests_dict)
    return Label("secure", None, None, findings, tests_dict)


def _pick_cwe(verdict: Verdict, task_cwe: str | None) -> str | None:
    """The task's CWE when a finding hits it, else the CWE of the first flagged finding."""
    cwes = [f.cwe for f in sorted(verdict.findings, key=lambda f: (f.line, f.cwe or "")) if f.cwe]
    if task_cwe and task_cwe in cwes:
        return task_cwe
    if cwes:
        return cwes[0]
    return task_cwe
