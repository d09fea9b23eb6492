"""`treeplay test-task`: run a task's functional + security tests against a candidate, sandboxed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import typer

from treeplay.oracle.records import TestResult
from treeplay.tasks.records import Task


def _load_task(task: str, tasks_path: Path | None) -> Task:
    from treeplay.oracle.sandbox.runner import TaskTestError, task_from_file

    if tasks_path is None:
        if not Path(task).is_file():
            raise TaskTestError(f"{task}: not a file (give a *_task.<ext> path, or a task id with --tasks PATH)")
        return task_from_file(task)
    from treeplay.tasks import load_tasks

    matches = [t for t in load_tasks(tasks_path) if t.id == task]
    if not matches:
        raise TaskTestError(f"task id {task!r} not found in {tasks_path}")
    return matches[0]


def result_to_dict(result: TestResult) -> dict[str, Any]:
    data = dataclasses.asdict(result)
    data["tests"] = [dataclasses.asdict(t) for t in result.tests]
    return data


def test_task(
    task: str = typer.Argument(..., help="A CWEval *_task.<ext> file, or a task id (with --tasks)."),
    solution: Path = typer.Option(..., "--solution", "-s", help="Candidate file; replaces the task module."),
    tasks: Path | None = typer.Option(None, "--tasks", help="Dataset to look the task id up in."),
    timeout: float = typer.Option(30.0, "--timeout", help="Wall-clock seconds for the whole test run."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Run a task's functionality + security tests against a candidate solution in the sandbox."""
    from treeplay.oracle.sandbox.core import SandboxUnavailable
    from treeplay.oracle.sandbox.runner import TaskTestError, run_task_tests

    try:
        loaded = _load_task(task, tasks)
        if not solution.is_file():
            raise TaskTestError(f"solution file not found: {solution}")
        code = solution.read_text(encoding="utf-8", errors="replace")
        result = run_task_tests(loaded, code, timeout_s=timeout)
    except (TaskTestError, SandboxUnavailable, ValueError, KeyError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps({"task": loaded.id, **result_to_dict(result)}))
        return
    typer.echo(
        f"{loaded.id}: outcome={result.outcome} functional={'pass' if result.functional_pass else 'FAIL'} "
        f"security={'pass' if result.security_pass else 'FAIL'} ({result.duration_s:.2f}s)"
    )
    for t in result.tests:
        typer.echo(f"  {'PASS' if t.passed else 'FAIL'} [{t.kind}] {t.name}")
    if result.outcome != "ok" and result.output_tail:
        typer.echo(result.output_tail[-1500:])


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""
    app.command("test-task")(test_task)
