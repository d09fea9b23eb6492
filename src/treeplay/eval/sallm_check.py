"""Validate the SALLM harness: run every task's reference `insecure_code` against its tests.

A test suite has power on a task when the known-insecure reference fails it: the security test
(`caught`), or at least the functional test (`fails functionality`, the reference does not score
func-sec either). When the insecure reference passes both, the task's tests are weak: a model's
insecure code would pass them too. Runs the references in the sandbox (they are untrusted code).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from treeplay.oracle.records import TestResult
from treeplay.oracle.sandbox.unittest_runner import NETWORK_HEADER
from treeplay.tasks.records import Task

CATEGORIES = (
    "caught by security test",
    "fails functionality only",
    "weak: passes both",
    "needs the network",
    "static only",
)


@dataclass(frozen=True)
class CheckRow:
    task_id: str
    category: str  # one of CATEGORIES, or the sandbox outcome (error, timeout, limit, crashed)
    functional_pass: bool | None
    security_pass: bool | None
    detail: str = ""


def categorise(result: TestResult) -> str:
    """What an insecure reference's test result says about the task's tests."""
    # A network error only explains a run whose functional test failed too (an injected `curl`
    # that fails to resolve is the attack succeeding, not a test needing the network).
    if result.output_tail.startswith(NETWORK_HEADER) and not result.functional_pass:
        return "needs the network"
    if result.outcome != "ok":
        return result.outcome
    if not result.security_pass:
        return "caught by security test"
    if not result.functional_pass:
        return "fails functionality only"
    return "weak: passes both"


def _detail(result: TestResult) -> str:
    failed = [
        f"{t.name}: {t.message.splitlines()[-1][:160]}" for t in result.tests if not t.passed and t.message
    ]
    if result.outcome != "ok":
        return result.output_tail.splitlines()[0][:200] if result.output_tail else result.outcome
    return "; ".join(failed)[:400]


def check_insecure(
    tasks: Sequence[Task], *, timeout_s: float = 30.0, workers: int | None = 1
) -> list[CheckRow]:
    """One row per task: the insecure reference run against the task's tests (sandboxed)."""
    from treeplay.oracle.sandbox import run_many

    tested = [t for t in tasks if t.tests]
    pairs = [(t, str(t.meta.get("insecure_code") or t.prefix + (t.vulnerable or ""))) for t in tested]
    results = dict(
        zip([t.id for t in tested], run_many(pairs, timeout_s=timeout_s, workers=workers), strict=True)
    )
    rows = []
    for task in tasks:
        result = results.get(task.id)
        if result is None:
            rows.append(CheckRow(task.id, "static only", None, None, "no test file"))
        else:
            rows.append(
                CheckRow(
                    task.id, categorise(result), result.functional_pass, result.security_pass, _detail(result)
                )
            )
    return rows


def summary(rows: Sequence[CheckRow]) -> dict[str, int]:
    """Tasks per category, plus how many insecure references the functional test accepts."""
    counts = Counter(r.category for r in rows)
    caught_working = sum(r.category == "caught by security test" and r.functional_pass is True for r in rows)
    return {
        "tasks": len(rows),
        **dict(sorted(counts.items())),
        "caught, functional test passes": caught_working,
        "insecure reference passes functional test": sum(r.functional_pass is True for r in rows),
    }
