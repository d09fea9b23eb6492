"""Run a task's `unittest` file (SALLM layout) against candidate solutions inside the sandbox.

A SALLM task folder holds `<module>.py` (the candidate replaces it), `test_<module>.py` (a
`unittest` module that does `from <module> import ...`) and fixture folders (`static/`,
`assets/`, `templates/`, `Database/`). Every candidate runs in a sandbox start of its own, so each
gets a fresh private work dir holding: the fixture folders, the candidate as `<module>.py`, the
test file and a small standalone runner. Outcomes per test: `test_vulnerability` -> `security`,
every other test -> `functionality`.

Faults: a requirement of the task that the sandbox's Python cannot import -> outcome `error`
(neither pass nor fail); a test that needed the network (off in the sandbox) fails with a message
saying so; hangs -> `timeout`, CPU/file-size/memory/output limits -> `limit`; a test file that does
not parse -> `TaskTestError` naming the file and line.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from treeplay.oracle.records import TestResult
from treeplay.oracle.sandbox._unittest_driver import NETWORK_MARKERS
from treeplay.oracle.sandbox.core import Limits, Sandbox, default_sandbox
from treeplay.oracle.sandbox.runner import TaskTestError, build_result, default_limits
from treeplay.tasks.records import Task
from treeplay.tasks.sallm import IMPORT_NAMES

RUNNER = "_treeplay_unittest.py"
TESTS_JSON = "_treeplay_tests.json"
SECURITY_METHODS = ("test_vulnerability",)
FIXTURE_CAP_BYTES = 32 * 1024 * 1024
_SKIP_NAMES = {"__pycache__", ".DS_Store"}
NETWORK_NOTE = "needs the network"  # the in-sandbox runner's words for a test's network error
NETWORK_HEADER = "tests needing the network"  # first line of the output tail when any test needed it


def is_unittest_task(task: Task) -> bool:
    return task.meta.get("test_framework") == "unittest"


def static_tests(test_file: Path) -> list[tuple[str, str]]:
    """('Class.test_x', kind) for every test method of the file, read without running it."""
    try:
        tree = ast.parse(test_file.read_text(encoding="utf-8"), filename=str(test_file))
    except SyntaxError as exc:
        raise TaskTestError(f"{test_file}:{exc.lineno}: broken test file: {exc.msg}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskTestError(f"{test_file}: cannot read test file: {exc}") from None
    tests = [
        (f"{node.name}.{item.name}", "security" if item.name in SECURITY_METHODS else "functionality")
        for node in tree.body
        if isinstance(node, ast.ClassDef)
        for item in node.body
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name.startswith("test")
    ]
    if not tests:
        raise TaskTestError(f"{test_file}: no unittest test methods (test_*) found")
    return tests


def requirement_modules(task: Task) -> dict[str, str]:
    """Top-level module name -> the pinned requirement naming it."""
    modules: dict[str, str] = {}
    for requirement in task.meta.get("requirements") or []:
        dist = str(requirement).split("==")[0].strip().lower()
        modules[IMPORT_NAMES.get(dist, dist.replace("-", "_"))] = str(requirement)
    return modules


def missing_dependencies(task: Task) -> list[str]:
    """Requirements the sandbox's interpreter (this one, `sys.executable`) cannot import."""
    return [
        req for module, req in requirement_modules(task).items() if importlib.util.find_spec(module) is None
    ]


def fixture_files(task_dir: Path) -> dict[str, bytes]:
    """Every file under the task folder's sub-folders (the fixtures), by relative path."""
    files: dict[str, bytes] = {}
    total = 0
    for sub in sorted(p for p in task_dir.iterdir() if p.is_dir() and p.name not in _SKIP_NAMES):
        for path in sorted(sub.rglob("*")):
            if not path.is_file() or path.is_symlink() or _SKIP_NAMES & set(path.parts):
                continue
            data = path.read_bytes()
            total += len(data)
            if total > FIXTURE_CAP_BYTES:
                raise TaskTestError(f"{task_dir}: fixtures larger than {FIXTURE_CAP_BYTES} bytes")
            files[path.relative_to(task_dir).as_posix()] = data
    return files


def _error_result(reason: str) -> TestResult:
    return TestResult(functional_pass=False, security_pass=False, outcome="error", output_tail=reason)


def _candidate_files(
    task: Task, tests: list[tuple[str, str]], code: str, timeout_s: float
) -> dict[str, str | bytes]:
    test_file = Path(str(task.tests))
    module = str(task.meta["module"])
    files: dict[str, str | bytes] = {
        f"c0/{k}": v for k, v in fixture_files(Path(str(task.meta["task_dir"]))).items()
    }
    files.update({
        f"c0/{module}.py": code,
        f"c0/{test_file.name}": test_file.read_bytes(),
        f"c0/{RUNNER}": (Path(__file__).parent / "_unittest_driver.py").read_text(encoding="utf-8"),
        f"c0/{TESTS_JSON}": json.dumps({"tests": [list(t) for t in tests]}),
        "_treeplay_plan.json": json.dumps({"candidates": [{
            "dir": "c0", "compile": None, "timeout_s": timeout_s,
            "test": [sys.executable, RUNNER, test_file.stem, TESTS_JSON],
        }]}),
        "_treeplay_driver.py": (Path(__file__).parent / "_driver.py").read_text(encoding="utf-8"),
    })  # fmt: skip
    return files


def classify(task: Task, result: TestResult) -> TestResult:
    """Missing requirement -> `error`; name the tests that needed the network; unittest wording."""
    texts = [result.output_tail, *(t.message for t in result.tests)]
    for module, requirement in requirement_modules(task).items():
        if any(f"missing module '{module}'" in text for text in texts):
            return _error_result(
                f"missing dependency {requirement} in the sandbox's Python (run scripts/install.sh)"
            )
    network = [t.name for t in result.tests if NETWORK_NOTE in t.message]
    if not network and NETWORK_NOTE in result.output_tail:
        network = ["the test module's import"]
    if not network and any(marker in result.output_tail for marker in NETWORK_MARKERS):
        network = ["the program under test (a network error in its log)"]
    tail = result.output_tail.replace("pytest exit code", "test exit code").replace(
        "pytest killed", "test killed"
    )
    if network:
        tail = f"{NETWORK_HEADER} (off in the sandbox; counted as not passed): {', '.join(network)}\n{tail}"
    return TestResult(result.functional_pass, result.security_pass, result.outcome, result.tests,
                      result.duration_s, tail)  # fmt: skip


def run_unittest_candidates(
    task: Task,
    solutions: Sequence[str],
    *,
    timeout_s: float = 30.0,
    sandbox: Sandbox | None = None,
    limits: Limits | None = None,
) -> list[TestResult]:
    """Test each candidate (the full `<module>.py`) in a fresh sandbox of its own."""
    if not task.tests or not Path(task.tests).is_file():
        raise TaskTestError(f"task {task.id!r}: tests file not found: {task.tests}")
    if not task.meta.get("module") or not task.meta.get("task_dir"):
        raise TaskTestError(f"task {task.id!r}: meta needs 'module' and 'task_dir' for a unittest task")
    tests = static_tests(Path(task.tests))
    missing = missing_dependencies(task)
    if missing:
        reason = f"missing dependencies {', '.join(missing)} in the sandbox's Python (run scripts/install.sh)"
        return [_error_result(reason) for _ in solutions]
    box = sandbox or default_sandbox()
    base = limits or default_limits("py", timeout_s)
    results = []
    for code in solutions:
        files = _candidate_files(task, tests, code, timeout_s)
        run_limits = Limits(
            wall_s=timeout_s + 15.0, cpu_s=base.cpu_s, memory_mb=base.memory_mb, file_size_mb=base.file_size_mb,
            processes=base.processes, open_files=base.open_files, output_bytes=base.output_bytes,
        )  # fmt: skip
        run = box.run(
            [sys.executable, "_treeplay_driver.py", "_treeplay_plan.json"], files, run_limits,
            collect=["c0/_treeplay_result.json", "c0/_treeplay_report.jsonl"],
            collect_tail=["c0/_treeplay_output.txt"], collect_cap=2_000_000,
        )  # fmt: skip
        results.append(classify(task, build_result(run.files, "c0/", run, run.duration_s)))
    return results
