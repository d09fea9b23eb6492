"""The programs a finished data or eval stage judged, re-judged with the installed oracle and compared
with what the stage stored (for `treeplay rekey`, `treeplay.rekey`).

- data stage: every branch of `trees.jsonl` (prefix + completion, judged with the tree's task
  snapshot). A branch stores the label the tree builder made of its verdict and test result
  (`tree.labels.label_branch`), its CWE, first flagged line and findings; the new verdict goes
  through the same `label_branch` with the stored test result (tests are the sandbox's, not the
  oracle's, and are not re-run), and all four must be equal.
- eval stage: every judged line of `generations.jsonl` (the program, judged with the bench task);
  the whole stored `Verdict` must equal the new one except its timing (`elapsed_s`): status,
  target_hit, functional check and its error, error, analyzers run and failed, every finding.

Findings are compared as multisets (every field: analyzer, rule, CWE, lines, severity, message), and
the analyzers run and failed as sets: the order they are listed in is the order they finished in.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from treeplay.oracle.records import TestResult, Verdict
from treeplay.tasks import Task

ProgramKind = Literal["branch", "generation"]
JUDGE_CHUNK = 400  # programs per judge_many call (one analyzer run per chunk; progress after each)


class ProgramsError(ValueError):
    """A stage's stored programs cannot be read or matched to their tasks: nothing to compare."""


@dataclass(frozen=True)
class StoredProgram:
    """One program a stage judged, with what the stage stored about its verdict."""

    kind: ProgramKind
    file: Path
    task: Task
    sample: int  # branch index in its tree, or the generation's sample_index
    code: str
    stored: dict[str, Any]  # the stored verdict fields, in the form `judged_view` gives
    tests: TestResult | None = None  # branches: the stored test result the label was made with

    def key(self) -> tuple[str, str, str]:
        """What the verdict depends on: the code, the language and the task (all of it)."""
        return self.code, self.task.language, json.dumps(self.task.to_dict(), sort_keys=True, default=str)


@dataclass(frozen=True)
class Difference:
    file: Path
    task_id: str
    sample: int
    changes: tuple[str, ...]  # "label: 'secure' -> 'vulnerable'", "findings: + {...}"

    def render(self) -> str:
        return f"{self.file}: task {self.task_id} sample {self.sample}: {'; '.join(self.changes)}"

    def to_json(self) -> dict[str, Any]:
        return {"file": str(self.file), "task_id": self.task_id, "sample": self.sample, "changes": list(self.changes)}


# ---- reading the stored programs ----------------------------------------------------------------


def _findings(items: Sequence[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(f, sort_keys=True) for f in items)


def _tests(data: dict[str, Any] | None, where: str) -> TestResult | None:
    if data is None:
        return None
    try:
        return TestResult(functional_pass=bool(data["functional_pass"]), security_pass=bool(data["security_pass"]),
                          outcome=data["outcome"])  # fmt: skip
    except KeyError as exc:
        raise ProgramsError(f"{where}: field 'tests.{exc.args[0]}' missing") from None


def tree_programs(path: Path, tasks_by_id: dict[str, Task]) -> list[StoredProgram]:
    """Every branch of a trees.jsonl, with its task (the tree's snapshot, else the training task)."""
    from treeplay.jsonl import JsonlError
    from treeplay.tree.records import read_trees

    try:
        trees = read_trees(path)
    except (OSError, JsonlError) as exc:
        raise ProgramsError(f"{path}: {exc}") from None
    programs = []
    for tree in trees:
        try:
            task = Task.from_dict(tree.task) if tree.task else tasks_by_id.get(tree.task_id)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProgramsError(f"{path}: tree of task {tree.task_id!r}: bad task snapshot: {exc}") from None
        if task is None:
            raise ProgramsError(f"{path}: tree of task {tree.task_id!r}: no task snapshot and no such training task")
        for index, branch in enumerate(tree.branches):
            stored = {"label": branch.label, "cwe": branch.cwe, "first_flagged_line": branch.first_flagged_line,
                      "findings": _findings(branch.findings)}  # fmt: skip
            tests = _tests(branch.tests, f"{path}: task {tree.task_id} branch {index}")
            programs.append(StoredProgram("branch", path, task, index, branch.prefix + branch.completion, stored, tests))
    return programs


def generation_programs(path: Path, tasks: Sequence[Task]) -> list[StoredProgram]:
    """Every judged generation of a generations.jsonl, with its bench task (unjudged ones: none)."""
    from treeplay.eval.records import GenerationError, iter_generations

    by_id = {t.id: t for t in tasks}
    programs = []
    try:
        for generation in iter_generations(path):
            if generation.verdict is None:  # not judged (HumanEval): nothing the oracle said
                continue
            task = by_id.get(generation.task_id)
            if task is None:
                raise ProgramsError(f"{path}: task {generation.task_id!r} is not in bench {generation.bench!r}")
            programs.append(StoredProgram("generation", path, task, generation.sample_index, generation.program,
                                          verdict_view(generation.verdict)))  # fmt: skip
    except (OSError, GenerationError) as exc:
        raise ProgramsError(str(exc)) from None
    return programs


# ---- comparing ----------------------------------------------------------------------------------


def verdict_view(verdict: Verdict) -> dict[str, Any]:
    """What an eval stage stores of a verdict, without its timing; findings as a sorted multiset."""
    view = dataclasses.asdict(verdict)
    view.pop("elapsed_s")
    view["findings"] = _findings(view["findings"])
    view["analyzers_run"] = sorted(view["analyzers_run"])  # the order analyzers finish in is not a verdict
    view["failed_analyzers"] = sorted(view["failed_analyzers"])
    return view


def judged_view(program: StoredProgram, verdict: Verdict) -> dict[str, Any]:
    """The new verdict in the form the stage stored it (a branch: through `label_branch`)."""
    if program.kind == "generation":
        return verdict_view(verdict)
    from treeplay.tree.labels import label_branch

    label = label_branch(verdict, program.tests, task_cwe=program.task.primary_cwe)
    return {"label": label.label, "cwe": label.cwe, "first_flagged_line": label.first_flagged_line,
            "findings": _findings(label.findings)}  # fmt: skip


def compare(program: StoredProgram, verdict: Verdict) -> Difference | None:
    """How the new verdict differs from the stored one (None: not at all)."""
    new = judged_view(program, verdict)
    changes = []
    for name in sorted(set(program.stored) | set(new)):
        old_value, new_value = program.stored.get(name), new.get(name)
        if old_value == new_value:
            continue
        if name == "findings":
            gone = sorted(set(old_value or []) - set(new_value or []))
            added = sorted(set(new_value or []) - set(old_value or []))
            changes.append("findings: " + ", ".join([*(f"- {f}" for f in gone), *(f"+ {f}" for f in added)]))
        else:
            changes.append(f"{name}: {old_value!r} -> {new_value!r}")
    if not changes:
        return None
    return Difference(program.file, program.task.id, program.sample, tuple(changes))


# ---- judging ------------------------------------------------------------------------------------


@dataclass
class Judgements:
    """Verdicts of the installed oracle, by program key (each distinct program is judged once)."""

    verdicts: dict[tuple[str, str, str], Verdict] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0

    def judge(self, oracle: Any, programs: Sequence[StoredProgram],
              progress: Callable[[int, int, float], None]) -> None:  # fmt: skip
        """Judge every program not judged yet with `oracle.judge_many`, `JUDGE_CHUNK` at a time."""
        todo: dict[tuple[str, str, str], StoredProgram] = {}
        for program in programs:
            if program.key() not in self.verdicts:
                todo.setdefault(program.key(), program)
        items = list(todo.items())
        started = time.monotonic()
        for start, chunk in _chunks(items, JUDGE_CHUNK):
            verdicts = oracle.judge_many([(p.code, p.task.language, p.task) for _, p in chunk])
            if len(verdicts) != len(chunk):
                raise RuntimeError(f"oracle returned {len(verdicts)} verdicts for {len(chunk)} programs")
            self.verdicts.update((key, v) for (key, _), v in zip(chunk, verdicts, strict=True))
            progress(start + len(chunk), len(items), time.monotonic() - started)
        self.seconds += time.monotonic() - started

    def differences(self, programs: Sequence[StoredProgram]) -> list[Difference]:
        found = (compare(p, self.verdicts[p.key()]) for p in programs)
        return [d for d in found if d is not None]


def _chunks(items: list[Any], size: int) -> Iterator[tuple[int, list[Any]]]:
    for start in range(0, len(items), size):
        yield start, items[start : start + size]
