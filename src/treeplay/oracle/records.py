"""Records of the oracle stage: static verdicts and sandboxed test results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

VerdictStatus = Literal["secure", "vulnerable", "unparseable"]
Severity = Literal["low", "medium", "high"]
SandboxOutcome = Literal["ok", "timeout", "crashed", "limit", "error"]
# Static functional sanity (treeplay.oracle.functional); "unchecked": no check for the language or
# the snippet was unparseable.
FunctionalStatus = Literal["ok", "nonfunctional", "unchecked"]


@dataclass(frozen=True)
class Finding:
    cwe: str | None  # normalised "CWE-89", None when the rule has no CWE
    line: int  # 1-based, in the judged code
    end_line: int
    analyzer: str  # "bandit", "semgrep", "cppcheck", ...
    rule: str
    severity: Severity
    message: str


@dataclass(frozen=True)
class Verdict:
    status: VerdictStatus
    findings: tuple[Finding, ...] = ()
    analyzers_run: tuple[str, ...] = ()
    elapsed_s: float = 0.0
    target_hit: bool | None = None  # a finding matches the task's CWE (None: task has no CWE)
    error: str | None = None  # parse error message for "unparseable"
    functional: FunctionalStatus = "unchecked"  # "nonfunctional": unknown import, undefined name...
    functional_error: str | None = None  # why it is nonfunctional (line and name)

    @property
    def first_flagged_line(self) -> int | None:
        lines = [f.line for f in self.findings if f.line > 0]
        return min(lines) if lines else None


@dataclass(frozen=True)
class TestCaseOutcome:
    name: str
    kind: Literal["functionality", "security", "other"]
    passed: bool
    message: str = ""


@dataclass(frozen=True)
class TestResult:
    functional_pass: bool
    security_pass: bool
    outcome: SandboxOutcome
    tests: tuple[TestCaseOutcome, ...] = field(default_factory=tuple)
    duration_s: float = 0.0
    output_tail: str = ""
