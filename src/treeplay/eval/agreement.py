"""Static verdict vs executed security test: the 2x2 agreement table of one evaluation.

Only generations the table can speak for are counted: the oracle reached `secure` or `vulnerable`
on a non-empty completion, and the security test actually ran (sandbox outcome `ok`, every
security test executed). Everything else is counted under `excluded` with its reason, so a bench
whose tests mostly crash cannot look like perfect agreement. The same table restricted to the
generations that pass their functional tests is reported as `functional_pass` (an insecure
program only matters when it works).

Cells (`oracle` x `test`): `secure_pass`, `secure_fail` (the oracle's blind spot: called secure,
the attack succeeded), `vulnerable_pass` (flagged, the attack failed), `vulnerable_fail`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from treeplay.eval.empty import is_empty_completion
from treeplay.eval.records import Generation
from treeplay.oracle.records import TestResult

CELLS = ("secure_pass", "secure_fail", "vulnerable_pass", "vulnerable_fail")


def _security_ran(tests: TestResult) -> bool | None:
    """True: every security test ran; False: some did not; None: the run has no security test."""
    security = [t for t in tests.tests if t.kind == "security"]
    if not security:
        return None
    return tests.outcome == "ok" and not any(t.message.startswith("did not run") for t in security)


def _exclusion(record: Generation) -> str | None:
    """Why a generation is left out of the table (None: it is counted)."""
    tests = record.tests
    status = record.status
    if tests is None:
        return "no tests"
    ran = _security_ran(tests)
    if ran is None:
        return "no security test"
    if status not in ("secure", "vulnerable"):
        return f"oracle {status or 'not run'}"
    if is_empty_completion(record.completion):
        return "empty completion"
    if tests.outcome != "ok":
        return f"test {tests.outcome}"
    if not ran:
        return "security test did not run"
    return None


def _table(cells: Counter[str]) -> dict[str, Any]:
    total = sum(cells[c] for c in CELLS)
    agree = cells["secure_pass"] + cells["vulnerable_fail"]
    failed = cells["secure_fail"] + cells["vulnerable_fail"]
    return {
        **{c: cells[c] for c in CELLS},
        "total": total,
        "agreement": agree / total if total else None,
        # Of the programs whose security test failed, the share the oracle called secure.
        "oracle_secure_given_test_fail": cells["secure_fail"] / failed if failed else None,
    }


def oracle_vs_tests(records: Iterable[Generation]) -> dict[str, Any] | None:
    """The agreement tables of a list of generation records; None when no record has a security test."""
    everything: Counter[str] = Counter()
    working: Counter[str] = Counter()
    excluded: Counter[str] = Counter()
    seen_security = False
    for record in records:
        reason = _exclusion(record)
        seen_security |= reason not in ("no tests", "no security test")
        if reason is not None:
            excluded[reason] += 1
            continue
        tests = record.tests
        assert tests is not None  # _exclusion left out the generations without tests
        cell = f"{record.status}_{'pass' if tests.security_pass else 'fail'}"
        everything[cell] += 1
        if tests.functional_pass:
            working[cell] += 1
    if not seen_security:
        return None
    return {"all": _table(everything), "functional_pass": _table(working), "excluded": dict(excluded)}


def agreement_rows(tables: Iterable[tuple[str, Mapping[str, Any]]]) -> tuple[list[str], list[list[str]]]:
    """Report table (headers, rows) from (label, `oracle_vs_test` dict) pairs; counts as written."""
    headers = ["Method", "subset", "oracle secure / test pass", "oracle secure / test FAIL",
               "oracle vulnerable / test pass", "oracle vulnerable / test fail", "agreement %", "excluded"]  # fmt: skip
    rows: list[list[str]] = []
    for label, table in tables:
        excluded = ", ".join(f"{k}: {v}" for k, v in sorted((table.get("excluded") or {}).items())) or "0"
        for subset in ("all", "functional_pass"):
            part = table.get(subset) or {}
            agreement = part.get("agreement")
            rows.append([label, subset.replace("_", " ")] + [str(part.get(c, 0)) for c in CELLS]
                        + ["–" if agreement is None else f"{100 * agreement:.1f}", excluded if subset == "all" else ""])  # fmt: skip
    return headers, rows
