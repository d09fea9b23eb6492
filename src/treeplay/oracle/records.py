"""Records of the oracle stage: static verdicts and sandboxed test results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

VerdictStatus = Literal["secure", "vulnerable", "unparseable", "incomplete", "unsupported"]
Severity = Literal["low", "medium", "high"]
SandboxOutcome = Literal["ok", "timeout", "crashed", "limit", "error"]
# Static functional sanity (treeplay.oracle.functional); "unchecked": no check for the language or
# the snippet was unparseable. Not a verdict status (not in STATUS_KIND): a separate field the tree
# labels read (a `nonfunctional` branch of a task without tests; treeplay.tree.labels).
FunctionalStatus = Literal["ok", "nonfunctional", "unchecked"]


# Every verdict status and how the rest of the code base treats it (the one place to add a status):
# - "judged": the oracle reached a security judgement of a parsed program (counts in SPR@1);
# - "unparseable": no program to judge (counts as a failure in strict rates);
# - "unjudged": the oracle could not reach a judgement (no judge for the language, or an analyzer
#   failed, timed out or is missing): excluded from every rate and listed in the report.
STATUS_KIND: dict[str, Literal["judged", "unparseable", "unjudged"]] = {
    "secure": "judged",
    "vulnerable": "judged",
    "unparseable": "unparseable",
    "incomplete": "unjudged",  # an analyzer for the language failed, timed out or is missing
    "unsupported": "unjudged",  # the language has no judge
}


def status_kind(status: str | None) -> str | None:
    """"judged" | "unparseable" | "unjudged" for a status; ValueError for an unknown one."""
    if status is None:
        return None
    if status not in STATUS_KIND:
        raise ValueError(f"unknown verdict status {status!r} (known: {', '.join(STATUS_KIND)})")
    return STATUS_KIND[status]


def is_unjudged(status: str | None) -> bool:
    """True for statuses excluded from every rate (`incomplete`, `unsupported`)."""
    return status_kind(status) == "unjudged"


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
    error: str | None = None  # parse error ("unparseable"), analyzer failures ("incomplete"), missing judge
    failed_analyzers: tuple[str, ...] = ()  # analyzers that should have run but failed, timed out or are missing
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
