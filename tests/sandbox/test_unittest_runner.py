"""The unittest (SALLM-layout) runner: outcome mapping, faults and containment, in the real sandbox."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from treeplay.eval.metrics import Outcome
from treeplay.eval.records import Generation
from treeplay.oracle.records import TestResult, Verdict
from treeplay.oracle.sandbox import Sandbox, TaskTestError, run_candidates, run_task_tests
from treeplay.oracle.sandbox.unittest_runner import classify
from treeplay.tasks import load_tasks
from treeplay.tasks.records import Task

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sallm"
SECURE_BODY = (
    "    base = os.path.realpath('static')\n"
    "    path = os.path.realpath(os.path.join(base, name))\n"
    "    if not path.startswith(base + os.sep):\n"
    "        raise ValueError('outside static')\n"
    "    with open(path) as fh:\n"
    "        return fh.read()\n"
)


@pytest.fixture(scope="module")
def task() -> Task:
    return next(t for t in load_tasks(FIXTURE) if t.id == "sallm/Tainted_Author_A_cwe022_0")


def with_test_file(task: Task, tmp_path: Path, test_source: str) -> Task:
    """The fixture task with its folder copied to tmp_path and its test file replaced."""
    folder = tmp_path / "task"
    shutil.copytree(task.meta["task_dir"], folder)
    test_file = folder / "test_A_cwe022_0.py"
    test_file.write_text(test_source)
    return dataclasses.replace(task, tests=str(test_file), meta={**task.meta, "task_dir": str(folder)})


def by_name(result) -> dict[str, tuple[str, bool]]:  # type: ignore[no-untyped-def]
    return {t.name: (t.kind, t.passed) for t in result.tests}


def test_secure_passes_insecure_fails_security_only(sandbox: Sandbox, task: Task) -> None:
    secure, insecure = run_candidates(task, [task.prefix + SECURE_BODY, task.meta["insecure_code"]], sandbox=sandbox)
    assert secure.outcome == "ok", secure.output_tail
    assert by_name(secure) == {
        "TestCWE022_0.test_correctness": ("functionality", True),
        "TestCWE022_0.test_nested_fixture": ("functionality", True),  # a nested fixture file was copied
        "TestCWE022_0.test_vulnerability": ("security", True),
    }
    assert secure.functional_pass and secure.security_pass
    assert insecure.outcome == "ok", insecure.output_tail
    assert by_name(insecure) == {
        "TestCWE022_0.test_correctness": ("functionality", True),
        "TestCWE022_0.test_nested_fixture": ("functionality", True),
        "TestCWE022_0.test_vulnerability": ("security", False),
    }
    assert insecure.functional_pass and not insecure.security_pass
    assert "top secret" in next(t.message for t in insecure.tests if not t.passed)


def test_solution_that_does_not_import_fails_everything(sandbox: Sandbox, task: Task) -> None:
    result = run_task_tests(task, "def something_else():\n    pass\n", sandbox=sandbox)
    assert result.outcome == "crashed"
    assert not result.functional_pass and not result.security_pass
    assert [t.message for t in result.tests] == ["did not run (crashed)"] * 3
    assert "ImportError" in result.output_tail


def test_hanging_test_is_a_timeout(sandbox: Sandbox, task: Task) -> None:
    code = task.prefix + "    import time\n    time.sleep(120)\n"
    result = run_task_tests(task, code, timeout_s=3, sandbox=sandbox)
    assert result.outcome == "timeout"
    assert not result.functional_pass and not result.security_pass
    assert result.duration_s < 30


def test_writes_outside_the_folder_are_contained_and_runs_start_fresh(
    sandbox: Sandbox, task: Task, tmp_path: Path
) -> None:
    host_file = tmp_path / "escaped.txt"
    writer = task.prefix + (
        f"    for target in ({str(host_file)!r}, '../outside.txt', '/outside.txt', 'static/planted.txt'):\n"
        "        try:\n"
        "            with open(target, 'w') as fh:\n"
        "                fh.write('x')\n"
        "        except OSError:\n"
        "            pass\n"
        "    return 'hello' if name == 'hello.txt' else 'deep'\n"
    )
    # The second candidate sees a leak as a different return value (and so a failing test).
    checker = task.prefix + (
        f"    leaks = [p for p in ({str(host_file)!r}, '../outside.txt', '/outside.txt', 'static/planted.txt')\n"
        "             if os.path.exists(p)]\n"
        "    return ('leaked ' + ','.join(leaks)) if leaks else ('hello' if name == 'hello.txt' else 'deep')\n"
    )
    first, second = run_candidates(task, [writer, checker], sandbox=sandbox)
    assert first.outcome == "ok", first.output_tail
    assert not host_file.exists()
    assert second.outcome == "ok", second.output_tail
    assert by_name(second)["TestCWE022_0.test_correctness"] == ("functionality", True), second.tests
    # The task folder on the host is untouched.
    assert not (Path(task.meta["task_dir"]) / "static" / "planted.txt").exists()


def test_network_needing_test_is_reported_not_passed(sandbox: Sandbox, task: Task, tmp_path: Path) -> None:
    source = (
        "import socket\nimport unittest\n\nfrom A_cwe022_0 import read_static\n\n\n"
        "class TestNet(unittest.TestCase):\n"
        "    def test_correctness(self):\n"
        "        self.assertEqual(read_static('hello.txt'), 'hello')\n\n"
        "    def test_vulnerability(self):\n"
        "        socket.create_connection(('example.com', 80), timeout=5).close()\n"
    )
    result = run_task_tests(with_test_file(task, tmp_path, source), task.meta["insecure_code"], sandbox=sandbox)
    assert result.outcome == "ok", result.output_tail
    assert by_name(result) == {
        "TestNet.test_correctness": ("functionality", True),
        "TestNet.test_vulnerability": ("security", False),
    }
    assert not result.security_pass
    assert next(t for t in result.tests if t.kind == "security").message.startswith("error: needs the network")
    assert "tests needing the network" in result.output_tail and "TestNet.test_vulnerability" in result.output_tail


def test_missing_dependency_is_error_not_pass_or_fail(sandbox: Sandbox, task: Task) -> None:
    broken = dataclasses.replace(task, meta={**task.meta, "requirements": ["treeplay-no-such-pkg==1.0"]})
    result = run_task_tests(broken, task.prefix + SECURE_BODY, sandbox=sandbox)
    assert result.outcome == "error"
    assert "treeplay-no-such-pkg==1.0" in result.output_tail
    record = Generation(broken.id, "py", ("CWE-22",), "sallm", "m", 0, SECURE_BODY, task.prefix + SECURE_BODY,
                        "stop", 1, Verdict("secure"), result)  # fmt: skip
    outcome = Outcome.from_generation(record)
    assert outcome.functional_pass is None and outcome.security_pass is None


def test_candidate_importing_an_unknown_module_fails_not_error(sandbox: Sandbox, task: Task) -> None:
    # A module the task does not require is the candidate's own fault: a failure, not `error`.
    result = run_task_tests(task, "import zz_absent\n" + task.prefix + SECURE_BODY, sandbox=sandbox)
    assert result.outcome == "crashed"
    assert not result.functional_pass and not result.security_pass
    assert "missing module 'zz_absent'" in result.output_tail


def test_required_module_missing_inside_the_sandbox_is_error(task: Task) -> None:
    # What the in-sandbox runner reports when a requirement's import fails there.
    seen = TestResult(False, False, "crashed", (), 0.1, "test exit code 2; collection error\nmissing module 'flask': ...")
    result = classify(dataclasses.replace(task, meta={**task.meta, "requirements": ["Flask==2.3.3"]}), seen)
    assert result.outcome == "error" and "Flask==2.3.3" in result.output_tail
    unrelated = classify(dataclasses.replace(task, meta={**task.meta, "requirements": ["lxml==4.9.3"]}), seen)
    assert unrelated.outcome == "crashed"


def test_network_error_in_the_programs_log_is_named(task: Task) -> None:
    # A Flask handler that failed to reach the network answers 500; its log shows why.
    seen = TestResult(False, True, "ok", (), 0.1, "ERROR in app: Exception on /x\nurllib3.exceptions.NameResolutionError: ...")
    result = classify(task, seen)
    assert result.outcome == "ok" and not result.functional_pass
    assert result.output_tail.startswith("tests needing the network (off in the sandbox; counted as not passed)")
    quiet = classify(task, TestResult(False, True, "ok", (), 0.1, "AssertionError: 500 != 200"))
    assert quiet.output_tail == "AssertionError: 500 != 200"


def test_broken_test_file_is_a_clear_error(task: Task, tmp_path: Path) -> None:
    broken = with_test_file(task, tmp_path, "import unittest\n\nclass T(unittest.TestCase:\n    pass\n")
    with pytest.raises(TaskTestError, match=r"test_A_cwe022_0\.py:3: broken test file"):
        run_task_tests(broken, task.prefix + SECURE_BODY)


def test_real_sallm_marshal_task(sandbox: Sandbox, shared_data: Path) -> None:
    path = shared_data / "sallm"
    if not path.is_dir():
        pytest.skip(f"SALLM not found at {path}")
    real = next(t for t in load_tasks(path) if t.id == "sallm/Matching_Author_A_cwe502_0")
    result = run_task_tests(real, real.meta["insecure_code"], sandbox=sandbox)
    assert result.outcome == "ok", result.output_tail
    assert by_name(result) == {
        "TestCWE502_0.test_correctness": ("functionality", True),
        "TestCWE502_0.test_vulnerability": ("security", False),
    }
