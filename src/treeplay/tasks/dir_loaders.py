"""Loaders of benchmark directories (one task per scenario or task file): the SafeCoder/SVEN
evaluation scenarios and CWEval-style checkouts. Same error contract as `treeplay.tasks.loaders`."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from treeplay.tasks.loaders import (
    ErrorSink,
    TaskFormatError,
    _cwe_field,
    _FieldError,
    _guard,
    _instruction_from_code,
    _require_str,
)
from treeplay.tasks.records import Task, language_from_filename, normalise_cwe

# --- SafeCoder / SVEN evaluation scenarios ------------------------------------------------------

SCENARIO_GROUPS = {"trained": (), "trained-new": (), "not-trained": ("heldout-cwe",)}


def _scenario_task(directory: Path, root: Path) -> Task:
    info_path = directory / "info.json"
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TaskFormatError(info_path, f"line {exc.lineno}", None, f"invalid JSON: {exc.msg}") from None
    if not isinstance(info, dict):
        raise TaskFormatError(info_path, "", None, "expected a JSON object")
    language_raw = _require_str(info, "language")
    try:
        language = language_from_filename(f"x.{language_raw}")
    except ValueError as exc:
        raise _FieldError("language", str(exc)) from None
    file_ctx = sorted(directory.glob("file_context.*"))
    func_ctx = sorted(directory.glob("func_context.*"))
    if not func_ctx:
        raise TaskFormatError(directory, "", "func_context", "missing func_context.* file")
    file_text = file_ctx[0].read_text(encoding="utf-8") if file_ctx else ""
    if file_text and not file_text.endswith("\n"):
        file_text += "\n"
    func_text = func_ctx[0].read_text(encoding="utf-8")
    relative = directory.relative_to(root)
    group = next((part for part in relative.parts if part in SCENARIO_GROUPS), None)
    split = ("eval", *(() if group is None else (group, *SCENARIO_GROUPS[group])))
    return Task(
        id=f"sec-eval/{relative.as_posix()}",
        language=language,
        cwe=_cwe_field(info.get("cwe"), "cwe"),
        instruction=str(info.get("description", "")).strip(),
        prefix=file_text + func_text,
        source=f"sec-eval:{relative.as_posix()}",
        split=split,
        meta={
            "scenario": info.get("scenario"),
            "check_ql": info.get("check_ql"),
            "description_generated": info.get("description_generated"),
            "origin": info.get("source"),
            "group": group,
        },
    )


def load_scenarios(root: Path, errors: ErrorSink = None) -> list[Task]:
    """SafeCoder/SVEN eval scenario dirs (`info.json`, `file_context.*`, `func_context.*`)."""
    tasks = []
    for info_path in sorted(root.rglob("info.json")):
        directory = info_path.parent
        task = _guard(directory, "", functools.partial(_scenario_task, directory, root), errors)
        if task is not None:
            tasks.append(task)
    return tasks


# --- CWEval-style benchmark directories -----------------------------------------------------------

_CWEVAL_TASK = re.compile(r"^(cwe_(\d+)_\d+(?:_[a-z]+)?)_task\.(\w+)$")
BEGIN_SOLUTION = "BEGIN SOLUTION"


def split_cweval_source(text: str) -> tuple[str, str] | None:
    """(prompt including the BEGIN SOLUTION line, solution) or None when there is no marker."""
    index = text.find(BEGIN_SOLUTION)
    if index < 0:
        return None
    line_end = text.find("\n", index)
    cut = len(text) if line_end < 0 else line_end + 1
    return text[:cut], text[cut:]


def _cweval_task(task_file: Path, root: Path) -> Task:
    match = _CWEVAL_TASK.match(task_file.name)
    if not match:
        raise TaskFormatError(task_file, "", None, "name is not cwe_XXX_N[_lang]_task.<ext>")
    stem, cwe_number, ext = match.groups()
    text = task_file.read_text(encoding="utf-8")
    parts = split_cweval_source(text)
    if parts is None:
        raise TaskFormatError(task_file, "", "BEGIN SOLUTION", "no 'BEGIN SOLUTION' marker comment")
    prefix, golden = parts
    test_file = task_file.with_name(f"{stem}_test.py")
    language = language_from_filename(task_file.name)
    relative = task_file.relative_to(root).as_posix()
    return Task(
        id=f"cweval/{task_file.parent.name}/{stem}",
        language=language,
        cwe=(normalise_cwe(cwe_number),),
        instruction=_instruction_from_code(prefix, language),
        prefix=prefix,
        golden=golden,
        tests=str(test_file) if test_file.exists() else None,
        source=f"cweval:{relative}",
        split=("eval",),
        meta={"task_file": str(task_file), "ext": ext},
    )


def load_cweval(root: Path, errors: ErrorSink = None) -> list[Task]:
    """CWEval layout: `<root>/benchmark/core/<lang>/cwe_XXX_N[_lang]_task.<ext>` + `_test.py`."""
    base = root / "benchmark" / "core" if (root / "benchmark" / "core").is_dir() else root
    tasks = []
    for task_file in sorted(base.rglob("*_task.*")):
        if not _CWEVAL_TASK.match(task_file.name):
            continue
        task = _guard(task_file, "", functools.partial(_cweval_task, task_file, root), errors)
        if task is not None:
            tasks.append(task)
    return tasks

