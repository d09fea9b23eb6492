"""Runs inside the sandbox (standalone: no treeplay imports): one `unittest` test module, per-test report.

Usage: python _treeplay_unittest.py <test module> <tests.json>

tests.json = {"tests": [["Class.test_x", "functionality" | "security"], ...]} (from a static read of
the test file, so a module that fails to import still lists its tests as not run).

Appends JSON lines to `_treeplay_report.jsonl` in the format the pytest plugin writes
(`collected`, `test`, `collect_error` events), so the host parses both alike. A test whose error
shows the network was needed is reported failed with a message starting `needs the network`; an
import of a missing module is reported as `missing module '<name>'`.
Exit code: 0 all passed, 1 some failed, 2 the test module could not be imported.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
import unittest
from typing import Any

REPORT = os.path.abspath("_treeplay_report.jsonl")
NETWORK_MARKERS = (
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "NewConnectionError",
    "Failed to establish a new connection",
    "socket.gaierror",
    "gaierror",
    "Max retries exceeded",
    "ConnectionRefusedError",
    "Connection refused",
    "NoValidConnectionsError",
    "Unable to connect to port",
    "NameResolutionError",
    "Failed to resolve",
)
SECURITY_METHODS = ("test_vulnerability",)


def emit(record: dict[str, Any]) -> None:
    with open(REPORT, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def kind_of(method: str) -> str:
    return "security" if method in SECURITY_METHODS else "functionality"


def test_name(test: unittest.TestCase) -> str:
    return f"{type(test).__name__}.{test._testMethodName}"


def describe(err: Any) -> str:
    exc_type, exc, tb = err
    text = "".join(traceback.format_exception(exc_type, exc, tb))[-1500:]
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return f"missing module '{exc.name.split('.')[0]}': {text}"
    if any(marker in text for marker in NETWORK_MARKERS):
        return f"needs the network (off in the sandbox): {text}"
    return text


class Recorder(unittest.TestResult):
    """Emits one `test` event per finished test (a killed run keeps the tests that finished)."""

    def __init__(self) -> None:
        super().__init__()
        self.state: dict[str, Any] = {}
        self.any_failed = False

    def startTest(self, test: unittest.TestCase) -> None:
        super().startTest(test)
        self.state = {"passed": True, "message": ""}

    def _fail(self, verb: str, err: Any) -> None:
        self.state = {"passed": False, "message": f"{verb}: {describe(err)}"}

    def addError(self, test: Any, err: Any) -> None:
        super().addError(test, err)
        self._fail("error", err)

    def addFailure(self, test: Any, err: Any) -> None:
        super().addFailure(test, err)
        self._fail("failed", err)

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._fail(f"subtest {subtest._subDescription()} failed", err)

    def addSkip(self, test: Any, reason: str) -> None:
        super().addSkip(test, reason)
        self.state = {"passed": False, "message": f"skipped: {reason}"}

    def addUnexpectedSuccess(self, test: Any) -> None:
        super().addUnexpectedSuccess(test)
        self.state = {"passed": False, "message": "unexpected success of an expected failure"}

    def stopTest(self, test: unittest.TestCase) -> None:
        super().stopTest(test)
        name = test_name(test) if isinstance(test, unittest.TestCase) else str(test)
        method = getattr(test, "_testMethodName", "")
        self.any_failed |= not self.state["passed"]
        emit({"event": "test", "nodeid": name, "kind": kind_of(method), **self.state})


def flatten(suite: unittest.TestSuite) -> list[unittest.TestCase]:
    cases: list[unittest.TestCase] = []
    for item in suite:
        cases.extend(flatten(item) if isinstance(item, unittest.TestSuite) else [item])  # type: ignore[list-item]
    return cases


def main() -> int:
    module_name, tests_json = sys.argv[1], sys.argv[2]
    with open(tests_json, encoding="utf-8") as fh:
        emit({"event": "collected", "tests": json.load(fh)["tests"]})
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
        suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    except BaseException:
        emit({"event": "collect_error", "where": module_name, "message": describe(sys.exc_info())})
        return 2
    cases = flatten(suite)
    emit({"event": "collected", "tests": [[test_name(c), kind_of(c._testMethodName)] for c in cases]})
    recorder = Recorder()
    suite.run(recorder)  # as a suite, so class/module fixtures (setUpClass...) run too
    return 1 if recorder.any_failed else 0


if __name__ == "__main__":
    sys.exit(main())
