"""Stored generations judged again by the installed oracle: how a finished run reads under a new
referee without sampling anything again (benchmarks/rejudge_run.py, benchmarks/oracle_vs_tests.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from treeplay.eval.evaluate import resolve_bench
from treeplay.eval.records import Generation

if TYPE_CHECKING:
    from treeplay.oracle.records import Verdict
    from treeplay.tasks.records import Task

JudgeMany = Callable[[list[tuple[str, str, "Task"]]], list["Verdict"]]


def rejudge(records: Sequence[Generation], judge_many: JudgeMany | None = None,
            bench: str | None = None) -> list[Generation]:  # fmt: skip
    """The records with fresh verdicts: each program judged with its own task as its bench gives it
    (the records' benches, or `bench`), as the evaluation judged it. `judge_many`: an oracle's
    (`Oracle(...).judge_many`; default: the shared oracle's). A task missing from its bench is a
    ValueError naming it."""
    if judge_many is None:
        from treeplay.oracle import judge_many as shared_judge_many

        judge_many = shared_judge_many
    benches = [bench] if bench else sorted({r.bench for r in records})
    tasks = {task.id: task for name in benches for task in resolve_bench(name)}
    missing = sorted({r.task_id for r in records} - tasks.keys())
    if missing:
        raise ValueError(f"tasks {missing[:3]} of the records are not in bench(es) {', '.join(benches)}")
    verdicts = judge_many([(r.program, tasks[r.task_id].language, tasks[r.task_id]) for r in records])
    return [replace(r, verdict=v) for r, v in zip(records, verdicts, strict=True)]
