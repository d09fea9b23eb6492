"""Run a task's unit tests (CWEval layout) against candidate solutions inside the sandbox.

A CWEval task is `<name>_task.<ext>` (the module under test; the candidate replaces it) plus a
sibling `<name>_test.py` pytest module whose parametrized cases are marked `functionality` or
`security`. For C/C++/Go the candidate is compiled inside the sandbox to
`compiled/<name>_task` (where CWEval's tests look for it); JavaScript is run by the tests with
`node`; Python is imported by the tests as module `<name>_task`.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from treeplay.oracle.records import SandboxOutcome, TestCaseOutcome, TestResult
from treeplay.oracle.sandbox.core import Limits, Sandbox, SandboxResult, default_sandbox
from treeplay.tasks.records import Task, language_from_filename

BEGIN_SOLUTION = "BEGIN SOLUTION"
COMPILE_SLACK_S = 30.0  # extra wall time per candidate for the compiler (C/C++/Go)
_DRIVER = "_treeplay_driver.py"
_PLAN = "_treeplay_plan.json"
_OUTPUT_TAIL_BYTES = 8000
_MEMORY_MARKERS = ("MemoryError", "std::bad_alloc", "Cannot allocate memory", "out of memory")

# Libraries CWEval's C/C++ tasks use, linked when the candidate includes their header.
_LINK_FLAGS = (
    ("openssl/", ("-lssl", "-lcrypto")),
    ("sqlite3.h", ("-lsqlite3",)),
    ("libxml/", ("-I/usr/include/libxml2", "-lxml2")),
    ("jwt.h", ("-ljwt",)),
    ("archive.h", ("-larchive",)),
    ("math.h", ("-lm",)),
)


class TaskTestError(ValueError):
    """The task cannot be tested (no tests file, unknown language, missing task file name)."""


@dataclass(frozen=True)
class TestPlan:
    """Where a task's files go in the work dir and how to build/run them."""

    test_file: Path  # the task's *_test.py on the host
    module_file: str  # file name the candidate is written to (e.g. cwe_020_0_task.py)
    language: str


def task_module_name(task: Task) -> str:
    """File name of the module under test (the candidate is written under this name)."""
    task_file = task.meta.get("task_file")
    if task_file:
        return Path(str(task_file)).name
    if task.tests:
        test_name = Path(task.tests).name
        if test_name.endswith("_test.py"):
            ext = {"py": "py", "c": "c", "cpp": "cpp", "js": "js", "go": "go"}.get(task.language)
            if ext:
                return test_name[: -len("_test.py")] + f"_task.{ext}"
    raise TaskTestError(f"task {task.id!r}: cannot tell the task module name (set meta['task_file'])")


def plan_for(task: Task) -> TestPlan:
    if not task.tests:
        raise TaskTestError(f"task {task.id!r} has no tests (Task.tests is empty)")
    test_file = Path(task.tests)
    if not test_file.is_file():
        raise TaskTestError(f"task {task.id!r}: tests file not found: {test_file}")
    module = task_module_name(task)
    language = language_from_filename(module)
    if language not in ("py", "c", "cpp", "js", "go"):
        raise TaskTestError(f"task {task.id!r}: running {language!r} tests is not supported")
    return TestPlan(test_file=test_file, module_file=module, language=language)


def link_flags(code: str) -> list[str]:
    flags: list[str] = []
    for marker, extra in _LINK_FLAGS:
        if re.search(r"#\s*include\s*[<\"]" + re.escape(marker), code):
            flags += [f for f in extra if f not in flags]
    return flags


def compile_command(plan: TestPlan, code: str) -> list[str] | None:
    binary = "compiled/" + plan.module_file.rsplit(".", 1)[0]
    if plan.language == "c":
        return ["gcc", "-O1", "-w", "-o", binary, plan.module_file, *link_flags(code)]
    if plan.language == "cpp":
        return ["g++", "-std=c++17", "-O1", "-w", "-o", binary, plan.module_file, *link_flags(code)]
    if plan.language == "go":
        return ["go", "build", "-o", binary, plan.module_file]
    return None


def go_env(home: str) -> dict[str, str]:
    return {
        "GOCACHE": f"{home}/.gocache",
        "GOPATH": f"{home}/.gopath",
        "GOTOOLCHAIN": "local",
        "GOFLAGS": "-mod=mod",
        "GOPROXY": "off",
        "GOSUMDB": "off",
        "GO111MODULE": "auto",
        "CGO_ENABLED": "0",
    }


def default_limits(language: str, timeout_s: float) -> Limits:
    """Per-candidate limits; Go's toolchain needs a larger address space."""
    memory = 4096 if language == "go" else 2048
    return Limits(wall_s=timeout_s, cpu_s=max(1, int(timeout_s)), memory_mb=memory)


# --------------------------------------------------------------------------- results


def _parse_report(data: bytes) -> tuple[list[tuple[str, str]], dict[str, dict[str, Any]], list[str]]:
    collected: list[tuple[str, str]] = []
    results: dict[str, dict[str, Any]] = {}
    collect_errors: list[str] = []
    for line in data.decode("utf-8", "replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(record, dict):
            continue
        event = record.get("event")
        if event == "collected" and isinstance(record.get("tests"), list):
            collected = [(str(t[0]), str(t[1])) for t in record["tests"] if isinstance(t, list) and len(t) == 2]
        elif event == "test" and isinstance(record.get("nodeid"), str):
            results[record["nodeid"]] = record
        elif event == "collect_error":
            collect_errors.append(str(record.get("message", ""))[-1500:])
    return collected, results, collect_errors


def _kind(value: str) -> Any:
    return value if value in ("functionality", "security") else "other"


def _signal_outcome(rc: int | None) -> SandboxOutcome | None:
    if rc is None:
        return None
    if rc < 0 or rc > 128:
        signum = -rc if rc < 0 else rc - 128
        return "limit" if signum in (24, 25) else "crashed"  # SIGXCPU, SIGXFSZ
    return None


def build_result(
    files: dict[str, bytes], prefix: str, sandbox: SandboxResult | None, duration_hint: float
) -> TestResult:
    """Turn one candidate's driver result + pytest report into a `TestResult`."""
    raw = files.get(f"{prefix}_treeplay_result.json")
    output = files.get(f"{prefix}_treeplay_output.txt", b"").decode("utf-8", "replace")
    collected, results, collect_errors = _parse_report(files.get(f"{prefix}_treeplay_report.jsonl", b""))
    driver: dict[str, Any] = {}
    if raw:
        try:
            loaded = json.loads(raw)
            driver = loaded if isinstance(loaded, dict) else {}
        except json.JSONDecodeError:
            driver = {}
    reason = ""
    outcome: SandboxOutcome
    if not driver:
        # The driver never finished this candidate: the whole sandbox was stopped.
        outcome = sandbox.outcome if sandbox and sandbox.outcome != "ok" else "crashed"
        if outcome == "ok":
            outcome = "crashed"
        reason = (sandbox.reason if sandbox else "") or "the test driver was killed"
    elif driver.get("timed_out"):
        outcome, reason = "timeout", f"timed out during {driver.get('stage', 'test')}"
    elif driver.get("stage") == "compile":
        outcome = _signal_outcome(driver.get("compile_rc")) or "crashed"
        reason = f"compilation failed (exit {driver.get('compile_rc')})"
    else:
        rc = driver.get("test_rc")
        signal_outcome = _signal_outcome(rc)
        if signal_outcome:
            outcome, reason = signal_outcome, f"pytest killed (exit {rc})"
        elif rc in (0, 1):
            outcome = "ok"
        else:
            outcome, reason = "crashed", f"pytest exit code {rc}" + ("; collection error" if collect_errors else "")
    tests: list[TestCaseOutcome] = []
    for nodeid, kind in collected:
        record = results.get(nodeid)
        if record is None:
            tests.append(TestCaseOutcome(nodeid, _kind(kind), False, f"did not run ({outcome})"))
        else:
            tests.append(
                TestCaseOutcome(nodeid, _kind(str(record.get("kind"))), record.get("passed") is True,
                                str(record.get("message", ""))[:2000])
            )
    if outcome == "ok" and any(
        marker in t.message for t in tests if not t.passed for marker in _MEMORY_MARKERS
    ):
        outcome, reason = "limit", "a test ran out of memory"
    ran = bool(tests) and not collect_errors and outcome != "crashed"
    functional_pass = ran and all(t.passed for t in tests if t.kind != "security")
    security_pass = ran and all(t.passed for t in tests if t.kind == "security")
    if outcome in ("ok", "crashed") and any(
        "File too large" in text for text in [*collect_errors, *(t.message for t in tests)]
    ):
        outcome, reason = "limit", "the file-size/output limit was hit"
        functional_pass = security_pass = False
    head = "\n".join(x for x in (reason, "\n".join(collect_errors)[-2000:]) if x)
    tail = (head + "\n" + output[-max(0, _OUTPUT_TAIL_BYTES - len(head)) :]).strip()
    duration = float(driver.get("duration_s", duration_hint) or duration_hint)
    return TestResult(
        functional_pass=functional_pass,
        security_pass=security_pass,
        outcome=outcome,
        tests=tuple(tests),
        duration_s=duration,
        output_tail=tail,
    )


# --------------------------------------------------------------------------- running


def _candidate_files(plan: TestPlan, code: str, prefix: str) -> dict[str, str | bytes]:
    plugin = (Path(__file__).parent / "_pytest_plugin.py").read_text(encoding="utf-8")
    return {
        f"{prefix}{plan.test_file.name}": plan.test_file.read_bytes(),
        f"{prefix}{plan.module_file}": code,
        f"{prefix}conftest.py": plugin,
    }


def _pytest_command(plan: TestPlan) -> list[str]:
    return [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--no-header",
        "-o", "addopts=", "-o", "python_files=*_test.py", "--rootdir=.", plan.test_file.name,
    ]


def run_candidates(
    task: Task,
    solutions: Sequence[str],
    *,
    timeout_s: float = 30.0,
    sandbox: Sandbox | None = None,
    limits: Limits | None = None,
) -> list[TestResult]:
    """Test several candidate solutions of one task in ONE sandbox start (one work dir each).

    Candidates run one after another, each with its own `timeout_s`; between candidates the
    driver kills everything the previous one left running. If a candidate brings the whole
    sandbox down, the candidates after it are retried each in a sandbox of its own.
    """
    if not solutions:
        return []
    if task.meta.get("test_framework") == "unittest":  # SALLM layout: see unittest_runner
        from treeplay.oracle.sandbox.unittest_runner import run_unittest_candidates

        return run_unittest_candidates(task, solutions, timeout_s=timeout_s, sandbox=sandbox, limits=limits)
    plan = plan_for(task)
    box = sandbox or default_sandbox()
    inside = box.workdir_inside()
    per_candidate = timeout_s + (COMPILE_SLACK_S if plan.language in ("c", "cpp", "go") else 0.0)
    files: dict[str, str | bytes] = {}
    specs = []
    for i, code in enumerate(solutions):
        prefix = f"c{i}/"
        files.update(_candidate_files(plan, code, prefix))
        specs.append(
            {"dir": f"c{i}", "compile": compile_command(plan, code), "test": _pytest_command(plan),
             "timeout_s": per_candidate}
        )
    files[_PLAN] = json.dumps({"candidates": specs})
    files[_DRIVER] = (Path(__file__).parent / "_driver.py").read_text(encoding="utf-8")
    base = limits or default_limits(plan.language, per_candidate)
    wall = per_candidate * len(solutions) + 15.0
    run_limits = Limits(
        wall_s=wall, cpu_s=base.cpu_s, memory_mb=base.memory_mb, file_size_mb=base.file_size_mb,
        processes=base.processes, open_files=base.open_files, output_bytes=base.output_bytes,
    )
    env = {"TREEPLAY_REPORT": "_treeplay_report.jsonl", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    if plan.language == "go":
        env.update(go_env(inside or "{workdir}"))
    collect = [f"c{i}/{name}" for i in range(len(solutions)) for name in ("_treeplay_result.json", "_treeplay_report.jsonl")]
    tails = [f"c{i}/_treeplay_output.txt" for i in range(len(solutions))]
    result = box.run(
        [sys.executable, _DRIVER, _PLAN], files, run_limits, env=env, collect=collect, collect_tail=tails,
        collect_cap=2_000_000,
    )
    out: list[TestResult] = []
    for i in range(len(solutions)):
        prefix = f"c{i}/"
        finished = f"{prefix}_treeplay_result.json" in result.files
        if not finished and len(solutions) > 1 and result.outcome != "timeout":
            # Something killed the whole batch: retry this candidate alone.
            out.append(run_candidates(task, [solutions[i]], timeout_s=timeout_s, sandbox=box, limits=limits)[0])
            continue
        out.append(build_result(result.files, prefix, result, result.duration_s / len(solutions)))
    return out


def run_task_tests(
    task: Task, solution_code: str, *, timeout_s: float = 30.0, sandbox: Sandbox | None = None
) -> TestResult:
    """Run `task`'s tests against `solution_code` (the full content of the task module) in the sandbox."""
    return run_candidates(task, [solution_code], timeout_s=timeout_s, sandbox=sandbox)[0]


def run_many(
    items: Sequence[tuple[Task, str]],
    *,
    timeout_s: float = 30.0,
    workers: int | None = None,
    batch: bool = True,
    sandbox: Sandbox | None = None,
) -> list[TestResult]:
    """Test many (task, solution) pairs; results in input order.

    With `batch`, all candidates of one task share one sandbox start (per-candidate work dirs);
    different tasks run in parallel, up to `workers` (default: number of cores).
    """
    box = sandbox or default_sandbox()
    groups: dict[int, list[int]] = {}
    by_task: dict[int, Task] = {}
    for index, (task, _) in enumerate(items):
        key = id(task) if batch else index
        groups.setdefault(key, []).append(index)
        by_task[key] = task
    results: list[TestResult | None] = [None] * len(items)

    def run_group(key: int) -> None:
        indices = groups[key]
        codes = [items[i][1] for i in indices]
        for i, res in zip(indices, run_candidates(by_task[key], codes, timeout_s=timeout_s, sandbox=box), strict=True):
            results[i] = res

    max_workers = max(1, min(workers or os.cpu_count() or 1, len(groups)))
    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        list(pool.map(run_group, list(groups)))
    return [r for r in results if r is not None]


# --------------------------------------------------------------------------- CWEval task files


def split_solution(text: str) -> tuple[str, str]:
    """Split a CWEval task file into (prefix incl. the BEGIN SOLUTION line, reference solution)."""
    index = text.find(BEGIN_SOLUTION)
    if index < 0:
        return text, ""
    line_end = text.find("\n", index)
    cut = len(text) if line_end < 0 else line_end + 1
    return text[:cut], text[cut:]


def task_from_file(task_file: str | Path) -> Task:
    """Build a `Task` from a CWEval `*_task.<ext>` file and its sibling `*_test.py`."""
    path = Path(task_file)
    if not path.is_file():
        raise TaskTestError(f"task file not found: {path}")
    match = re.match(r"^(cwe_(\d+)_\d+(?:_[a-z]+)?)_task\.[a-z]+$", path.name)
    if not match:
        raise TaskTestError(f"{path}: not a CWEval task file name (expected cwe_XXX_N[_lang]_task.<ext>)")
    test_file = path.with_name(match.group(1) + "_test.py")
    if not test_file.is_file():
        raise TaskTestError(f"{path}: sibling tests file {test_file.name} not found")
    text = path.read_text(encoding="utf-8")
    prefix, golden = split_solution(text)
    return Task(
        id=f"cweval/{path.parent.name}/{match.group(1)}",
        language=language_from_filename(path.name),
        cwe=(f"CWE-{int(match.group(2))}",),
        instruction="",
        prefix=prefix,
        golden=golden,
        tests=str(test_file),
        source="cweval",
        meta={"task_file": str(path)},
    )
