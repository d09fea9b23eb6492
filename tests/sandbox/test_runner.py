"""The test runner on the CWEval-layout fixture tasks: reference vs unsafe solutions, bad candidates."""

from __future__ import annotations

from pathlib import Path

import pytest
from sandbox_fixtures import CWEVAL, TASK_FILES, fixture_task, unsafe_solution

from treeplay.oracle.sandbox import (
    Sandbox,
    TaskTestError,
    run_candidates,
    run_many,
    run_task_tests,
    split_solution,
    task_from_file,
)
from treeplay.tasks.records import Task


def test_fixture_tree_covers_four_languages() -> None:
    languages = [task_from_file(p).language for p in TASK_FILES]
    assert languages.count("py") >= 3
    assert {"c", "js", "go"} <= set(languages)
    for path in TASK_FILES:
        assert (CWEVAL / "unsafe" / path.name).is_file(), f"no unsafe solution for {path.name}"


@pytest.mark.parametrize("task_file", TASK_FILES, ids=[p.stem for p in TASK_FILES])
def test_reference_passes_and_unsafe_fails_only_security(sandbox: Sandbox, task_file: Path) -> None:
    task = task_from_file(task_file)
    assert task.golden and "BEGIN SOLUTION" in task.prefix.splitlines()[-1]
    reference, unsafe = run_candidates(task, [task.golden_solution or "", unsafe_solution(task)], sandbox=sandbox)

    assert reference.outcome == "ok", reference.output_tail
    assert reference.functional_pass and reference.security_pass
    kinds = {t.kind for t in reference.tests}
    assert kinds == {"functionality", "security"}
    assert all(t.passed for t in reference.tests)

    assert unsafe.outcome == "ok", unsafe.output_tail
    assert unsafe.functional_pass, unsafe.output_tail
    assert not unsafe.security_pass
    failed = [t for t in unsafe.tests if not t.passed]
    assert failed and all(t.kind == "security" for t in failed)
    assert all(t.message for t in failed)


def test_syntax_error_is_a_crash_not_a_pass(sandbox: Sandbox) -> None:
    task = fixture_task("cwe_020_0_task")
    result = run_task_tests(task, "def get_target_for_redirect(:\n", sandbox=sandbox)
    assert result.outcome == "crashed"
    assert not result.functional_pass and not result.security_pass
    assert "SyntaxError" in result.output_tail


def test_c_compile_error_is_reported(sandbox: Sandbox) -> None:
    task = fixture_task("cwe_020_0_c_task")
    result = run_task_tests(task, "int main( { return 0; }\n", sandbox=sandbox)
    assert result.outcome == "crashed"
    assert "compilation failed" in result.output_tail
    assert not result.functional_pass


def test_hang_on_attack_input_fails_security_keeps_functional_results(sandbox: Sandbox) -> None:
    # Works on normal input, hangs on the attack input (as a ReDoS would): the functionality tests
    # that ran are kept, the security tests that did not finish count as failed.
    task = fixture_task("cwe_020_0_task")
    code = (task.golden_solution or "").replace(
        "    host = urlparse(target).hostname or ''",
        "    host = urlparse(target).hostname or ''\n    while 'attack' in host:\n        pass",
    )
    result = run_task_tests(task, code, timeout_s=4, sandbox=sandbox)
    assert result.outcome == "timeout"
    assert result.functional_pass
    assert not result.security_pass
    assert any("did not run" in t.message for t in result.tests if t.kind == "security")


def test_batch_survives_a_candidate_that_kills_the_driver(sandbox: Sandbox) -> None:
    task = fixture_task("cwe_020_0_task")
    killer = "import os, signal\nos.kill(-1, signal.SIGKILL)\n"
    good = task.golden_solution or ""
    results = run_candidates(task, [good, killer, good, unsafe_solution(task)], timeout_s=10, sandbox=sandbox)
    assert [r.functional_pass for r in results] == [True, False, True, True]
    assert [r.security_pass for r in results] == [True, False, True, False]
    assert results[1].outcome == "crashed"


def test_run_many_keeps_input_order_across_tasks(sandbox: Sandbox) -> None:
    py = fixture_task("cwe_022_0_task")
    js = fixture_task("cwe_117_0_js_task")
    items = [(py, unsafe_solution(py)), (js, js.golden_solution or ""), (py, py.golden_solution or "")]
    results = run_many(items, timeout_s=20, sandbox=sandbox)
    assert [(r.functional_pass, r.security_pass) for r in results] == [(True, False), (True, True), (True, True)]


def test_unsafe_tests_of_cweval_files_are_deselected(sandbox: Sandbox, tmp_path: Path) -> None:
    # Real CWEval test files also test their own *_unsafe reference; those tests are skipped.
    (tmp_path / "cwe_999_0_task.py").write_text("def f(x):\n    # BEGIN SOLUTION\n    return x\n")
    (tmp_path / "cwe_999_0_test.py").write_text(
        "import pytest\nfrom cwe_999_0_task import f\n"
        "@pytest.mark.parametrize('x', [pytest.param(1, marks=pytest.mark.functionality)])\n"
        "def test_f(x):\n    assert f(x) == x\n"
        "@pytest.mark.parametrize('x', [pytest.param(1, marks=pytest.mark.functionality)])\n"
        "def test_f_unsafe_functionality(x):\n    from cwe_999_0_unsafe import f\n"
    )
    task = task_from_file(tmp_path / "cwe_999_0_task.py")
    result = run_task_tests(task, task.golden_solution or "", sandbox=sandbox)
    assert [t.name for t in result.tests] == ["cwe_999_0_test.py::test_f[1]"]
    assert result.functional_pass and result.security_pass


def test_split_solution_keeps_the_marker_line_in_the_prefix() -> None:
    prefix, golden = split_solution("a\n    # BEGIN SOLUTION\n    return 1\n")
    assert prefix == "a\n    # BEGIN SOLUTION\n"
    assert golden == "    return 1\n"
    assert split_solution("no marker") == ("no marker", "")


def test_task_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(TaskTestError, match="not found"):
        task_from_file(tmp_path / "cwe_001_0_task.py")
    (tmp_path / "cwe_001_0_task.py").write_text("x = 1\n")
    with pytest.raises(TaskTestError, match=r"cwe_001_0_test\.py"):
        task_from_file(tmp_path / "cwe_001_0_task.py")
    no_tests = Task(id="t", language="py", cwe=(), instruction="", prefix="")
    with pytest.raises(TaskTestError, match="has no tests"):
        run_task_tests(no_tests, "x = 1\n")
