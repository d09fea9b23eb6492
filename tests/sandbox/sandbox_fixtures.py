"""Helpers shared by the sandbox tests (the CWEval-layout fixture tasks)."""

from __future__ import annotations

from pathlib import Path

from treeplay.oracle.sandbox import task_from_file
from treeplay.tasks.records import Task

CWEVAL = Path(__file__).resolve().parents[1] / "fixtures" / "cweval"
TASK_FILES = sorted((CWEVAL / "benchmark" / "core").glob("*/*_task.*"))


def fixture_task(name: str) -> Task:
    matches = [p for p in TASK_FILES if p.name.startswith(name)]
    assert len(matches) == 1, f"fixture task {name!r}: {matches}"
    return task_from_file(matches[0])


def unsafe_solution(task: Task) -> str:
    return (CWEVAL / "unsafe" / Path(task.meta["task_file"]).name).read_text(encoding="utf-8")
