"""`load_tasks`: format detection, loading and filtering (the public face is `treeplay.tasks`)."""


from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterable
from pathlib import Path

from treeplay.tasks.dir_loaders import load_cweval, load_scenarios
from treeplay.tasks.loaders import (
    TaskFormatError,
    load_annotated,
    load_humaneval,
    load_multilang,
    load_normalised,
    load_safecoder,
    load_securityeval,
)
from treeplay.tasks.records import Task, align_prefix_to_line, normalise_cwe
from treeplay.tasks.sallm import dataset_file, is_sallm_row, load_sallm

Loader = Callable[..., list[Task]]

FORMATS: dict[str, Loader] = {
    "safecoder": load_safecoder,
    "annotated": load_annotated,
    "sec-eval": load_scenarios,
    "securityeval": load_securityeval,
    "multilang": load_multilang,
    "cweval": load_cweval,
    "humaneval": load_humaneval,
    "sallm": load_sallm,
    "tasks": load_normalised,
}


def _first_object(path: Path) -> tuple[dict[str, object], int]:
    """The first JSON object of a JSON list or a JSONL (optionally gzipped) file, with its line.

    ValueError naming the file and the first offending line when there is no such object.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        head = fh.read(1 << 20)
    stripped = head.lstrip()
    if stripped.startswith("["):
        line = head[: len(head) - len(stripped)].count("\n") + 1
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            where = getattr(exc, "lineno", line)
            raise TaskFormatError(path, f"line {where}", None, f"not valid JSON ({exc}); pass --format") from None
        if isinstance(data, list) and data and isinstance(data[0], dict):
            return data[0], line
        raise TaskFormatError(path, f"line {line}", None, "a JSON list whose first item is not an object; pass --format")
    for number, text in enumerate(head.splitlines(), start=1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TaskFormatError(path, f"line {number}", None, f"not a JSON object ({exc.msg}); pass --format") from None
        if not isinstance(value, dict):
            raise TaskFormatError(path, f"line {number}", None,
                                  f"expected a JSON object, got {type(value).__name__}; pass --format")
        return value, number
    raise TaskFormatError(path, "", None, "empty file (no JSON record); pass --format")


def detect_format(path: Path) -> str:
    """Name of the format of `path` (a key of FORMATS); ValueError naming file and line when it cannot be told."""
    if str(path) == "humaneval":
        return "humaneval"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if dataset_file(path) is not None:
        return "sallm"
    if path.is_dir():
        if (path / "benchmark" / "core").is_dir() or any(path.rglob("cwe_*_task.*")):
            return "cweval"
        if any(path.rglob("info.json")):
            return "sec-eval"
        raise ValueError(f"{path}: directory is neither CWEval-style nor SafeCoder eval scenarios")
    row, line = _first_object(path)
    keys = set(row)
    if {"func_src_before", "func_src_after"} <= keys:
        return "annotated" if ("output" in keys or "Nodes" in keys) else "safecoder"
    if is_sallm_row(keys):
        raise ValueError(f"{path}: a SALLM index outside its dataset folder (no Assertion/ next to it)")
    if {"ID", "Prompt"} <= keys:
        return "securityeval"
    if {"task_id", "prompt", "canonical_solution"} <= keys:
        return "humaneval"
    if {"prompt", "original_code"} <= keys:
        return "multilang"
    if {"id", "language", "prefix"} <= keys:
        return "tasks"
    raise TaskFormatError(path, f"line {line}", None,
                          f"unknown record layout with fields {sorted(keys)[:8]}; pass --format")


def filter_tasks(
    tasks: Iterable[Task],
    *,
    language: str | Iterable[str] | None = None,
    cwe: str | Iterable[str] | None = None,
    split: str | Iterable[str] | None = None,
    limit: int | None = None,
) -> list[Task]:
    """Keep tasks matching every given filter (each filter: one value or several), then cut to limit."""

    def as_set(value: str | Iterable[str] | None) -> set[str] | None:
        if value is None:
            return None
        items = [value] if isinstance(value, str) else list(value)
        parts = {p.strip() for item in items for p in item.split(",") if p.strip()}
        return parts or None

    languages = as_set(language)
    cwes = {normalise_cwe(c) for c in as_set(cwe) or ()} or None
    splits = as_set(split)
    kept = [
        task
        for task in tasks
        if (languages is None or task.language in languages)
        and (cwes is None or cwes & set(task.cwe))
        and (splits is None or splits & set(task.split))
    ]
    return kept if limit is None else kept[:limit]


def load_tasks(
    path: str | Path,
    *,
    format: str | None = None,
    limit: int | None = None,
    language: str | Iterable[str] | None = None,
    cwe: str | Iterable[str] | None = None,
    split: str | Iterable[str] | None = None,
    errors: list[TaskFormatError] | None = None,
) -> list[Task]:
    """Load tasks from any supported format, then filter.

    With `errors` (a list), bad rows are appended there and skipped; without it the first bad row
    raises `TaskFormatError` naming file, line/item/scenario and field.
    """
    path = Path(path)
    name = format or detect_format(path)
    if name not in FORMATS:
        raise ValueError(f"unknown format {name!r}; choose from {', '.join(FORMATS)}")
    if name == "humaneval":
        tasks = load_humaneval(None if str(path) == "humaneval" else path, errors)
    else:
        tasks = FORMATS[name](path, errors)
    tasks = [align_prefix_to_line(task) for task in tasks]
    return filter_tasks(tasks, language=language, cwe=cwe, split=split, limit=limit)


def load_many(paths: Iterable[str | Path], **kwargs: object) -> list[Task]:
    """`load_tasks` over several paths, concatenated (ids must stay unique)."""
    tasks: list[Task] = []
    seen: set[str] = set()
    for path in paths:
        for task in load_tasks(path, **kwargs):  # type: ignore[arg-type]
            if task.id in seen:
                raise ValueError(f"duplicate task id {task.id!r} (from {path})")
            seen.add(task.id)
            tasks.append(task)
    return tasks
