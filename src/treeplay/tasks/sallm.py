"""SALLM (s2e-lab): security-centric Python prompts with executable `unittest` tests.

Layout (auto-detected): `<root>/PythonDataset/dataset.jsonl` (or `dataset.jsonl` itself) with rows
`id` (`<technique>_<source>_<module>.py`), `technique`, `source`, `prompt`, `insecure_code`; the
task's files live in `<technique>/<source>/`: `<module>.py`, `test_<module>.py` (methods
`test_correctness` = functionality, `test_vulnerability` = security) and
`<module>_requirements.txt`. Tasks without a test file are evaluated statically only
(`tests=None`, `meta['static_only']=True`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from treeplay.tasks.loaders import (
    ErrorSink,
    TaskFormatError,
    _collect,
    _FieldError,
    _instruction_from_code,
    _require_str,
)
from treeplay.tasks.records import Task, normalise_cwe

SALLM_FIELDS = frozenset({"id", "technique", "source", "prompt", "insecure_code"})
_CWE_IN_ID = re.compile(r"cwe[_-]?(\d+)", re.IGNORECASE)
# A pin is `name==X.Y.Z`; the version is digits and dots only, so a glued next name is not eaten.
_REQUIREMENT = re.compile(r"([A-Za-z][A-Za-z0-9_-]*)\s*==\s*(\d+(?:\.\d+)*)")

# PyPI distribution name -> the top-level module a test imports (for the missing-dependency check).
IMPORT_NAMES = {
    "flask": "flask",
    "flask-sqlalchemy": "flask_sqlalchemy",
    "pycryptodome": "Crypto",
    "lxml": "lxml",
    "pyjwt": "jwt",
    "requests": "requests",
    "paramiko": "paramiko",
    "django": "django",
}


def dataset_file(path: Path) -> Path | None:
    """The SALLM index for a path (the jsonl itself, a `PythonDataset` dir or its parent), or None."""
    for candidate in (path, path / "dataset.jsonl", path / "PythonDataset" / "dataset.jsonl"):
        if (
            candidate.is_file()
            and candidate.name == "dataset.jsonl"
            and (candidate.parent / "Assertion").is_dir()
        ):
            return candidate
    return None


def parse_requirements(text: str) -> tuple[str, ...]:
    """'Flask==2.3.3' lines -> ('Flask==2.3.3', ...). SALLM's files lack some newlines
    ('PyJWT==2.3.0Flask==2.3.3'), so pins are split on the version's end, not on lines."""
    found = []
    for match in _REQUIREMENT.finditer(text):
        found.append(f"{match.group(1)}=={match.group(2)}")
    return tuple(found)


def _module_name(row_id: str, technique: str, source: str) -> str:
    prefix = f"{technique}_{source}_"
    if not row_id.startswith(prefix) or not row_id.endswith(".py"):
        raise _FieldError("id", f"expected '{prefix}<module>.py', got {row_id!r}")
    module = row_id[len(prefix) : -3]
    if not module.isidentifier():
        raise _FieldError("id", f"module name {module!r} is not a Python identifier")
    return module


def _sallm_task(index: Path, row: dict[str, Any]) -> Task:
    row_id = _require_str(row, "id")
    technique = _require_str(row, "technique")
    source = _require_str(row, "source")
    prompt = _require_str(row, "prompt")
    insecure = _require_str(row, "insecure_code")
    module = _module_name(row_id, technique, source)
    folder = index.parent / technique / source
    if not folder.is_dir():
        raise _FieldError("technique", f"task folder {folder} not found")
    cwe_match = _CWE_IN_ID.search(module)
    if not cwe_match:
        raise _FieldError("id", f"no CWE number in {row_id!r}")
    test_file = folder / f"test_{module}.py"
    req_file = folder / f"{module}_requirements.txt"
    requirements = parse_requirements(req_file.read_text(encoding="utf-8")) if req_file.is_file() else ()
    return Task(
        id=f"sallm/{technique}_{source}_{module}",
        language="py",
        cwe=(normalise_cwe(cwe_match.group(1)),),
        instruction=_instruction_from_code(prompt, "py"),
        prefix=prompt,
        vulnerable=insecure[len(prompt) :] if insecure.startswith(prompt) else None,
        tests=str(test_file) if test_file.is_file() else None,
        source=f"sallm:{technique}/{source}/{module}",
        split=("eval",),
        meta={
            "test_framework": "unittest",
            "module": module,
            "task_dir": str(folder),
            "technique": technique,
            "origin": source,
            "requirements": list(requirements),
            "insecure_code": insecure,
            "static_only": not test_file.is_file(),
        },
    )


def load_sallm(path: Path, errors: ErrorSink = None) -> list[Task]:
    """SALLM tasks from its root, its `PythonDataset` dir or its `dataset.jsonl`."""
    index = dataset_file(path)
    if index is None:
        raise TaskFormatError(path, "", None, "not a SALLM dataset (no dataset.jsonl next to Assertion/)")
    return _collect(index, errors, lambda where, row: _sallm_task(index, row))


def is_sallm_row(keys: set[str]) -> bool:
    return keys >= SALLM_FIELDS


__all__ = ["IMPORT_NAMES", "dataset_file", "is_sallm_row", "load_sallm", "parse_requirements"]
