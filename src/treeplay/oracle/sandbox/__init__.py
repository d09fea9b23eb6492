"""Sandboxed execution of untrusted (model-written) code and its tests.

Public API:
    run_task_tests(task, solution_code, *, timeout_s=30) -> TestResult
    run_candidates(task, solutions, *, timeout_s=30) -> list[TestResult]   (one sandbox start)
    run_many([(task, solution), ...], *, timeout_s=30, workers=None) -> list[TestResult]
    run_sandboxed(cmd, files, limits) -> SandboxResult
    Sandbox, Limits, SandboxResult, SandboxUnavailable
    task_from_file(path) -> Task   (a CWEval *_task.<ext> file with its sibling *_test.py)
"""

from treeplay.oracle.sandbox.core import (
    Limits,
    Sandbox,
    SandboxResult,
    SandboxUnavailable,
    default_sandbox,
    run_sandboxed,
)
from treeplay.oracle.sandbox.runner import (
    TaskTestError,
    run_candidates,
    run_many,
    run_task_tests,
    split_solution,
    task_from_file,
)

__all__ = [
    "Limits",
    "Sandbox",
    "SandboxResult",
    "SandboxUnavailable",
    "TaskTestError",
    "default_sandbox",
    "run_candidates",
    "run_many",
    "run_sandboxed",
    "run_task_tests",
    "split_solution",
    "task_from_file",
]
