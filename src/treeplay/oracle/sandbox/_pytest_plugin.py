"""pytest plugin copied into every sandboxed test run as `conftest.py` (standalone: no treeplay imports).

Registers CWEval's `functionality` / `security` markers, drops CWEval's self-tests of its own
`*_unsafe` reference files, and appends one JSON line per test to $TREEPLAY_REPORT as soon as the
test finishes (so a run killed half-way still reports the tests that did run).
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

_REPORT = os.path.abspath(os.environ.get("TREEPLAY_REPORT", "_treeplay_report.jsonl"))
_KINDS: dict[str, str] = {}
_STATE: dict[str, dict[str, Any]] = {}


def _emit(record: dict[str, Any]) -> None:
    with open(_REPORT, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "functionality: a functional test of the code under test")
    config.addinivalue_line("markers", "security: a test that an attack input does not succeed")


def _kind(item: pytest.Item) -> str:
    names = {m.name for m in item.iter_markers()}
    if "security" in names:
        return "security"
    if "functionality" in names:
        return "functionality"
    return "other"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        name = getattr(item, "originalname", None) or item.name
        (drop if "unsafe" in name.lower() else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    for item in keep:
        _KINDS[item.nodeid] = _kind(item)
    _emit({"event": "collected", "tests": [[i.nodeid, _KINDS[i.nodeid]] for i in keep]})


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        _emit({"event": "collect_error", "where": report.nodeid, "message": str(report.longrepr)[-3000:]})


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    state = _STATE.setdefault(report.nodeid, {"passed": True, "ran": False, "message": ""})
    if report.when == "call":
        state["ran"] = True
    if report.failed or (report.skipped and report.when != "teardown"):
        state["passed"] = False
        verb = "skipped" if report.skipped else f"failed in {report.when}"
        state["message"] = f"{verb}: {str(report.longrepr)[-1500:]}"


def pytest_runtest_logfinish(nodeid: str, location: Any) -> None:
    state = _STATE.get(nodeid, {"passed": False, "ran": False, "message": "no report"})
    passed = bool(state["passed"] and state["ran"])
    _emit(
        {
            "event": "test",
            "nodeid": nodeid,
            "kind": _KINDS.get(nodeid, "other"),
            "passed": passed,
            "message": state["message"],
        }
    )
