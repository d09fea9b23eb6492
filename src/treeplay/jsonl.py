"""JSONL helpers shared by every stage: append-only writing, resumable reading.

A killed job leaves at most one truncated last line; `read_jsonl(..., tolerate_truncated_tail=True)`
drops it so a resumed job redoes only that record (never duplicates a complete one).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


class JsonlError(ValueError):
    """A JSONL line that cannot be parsed; names the file and line."""

    def __init__(self, path: Path | str, line: int, message: str) -> None:
        self.path = str(path)
        self.line = line
        super().__init__(f"{path}:{line}: {message}")


def to_jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def read_jsonl(path: Path | str, *, tolerate_truncated_tail: bool = False) -> Iterator[dict[str, Any]]:
    """Yield one dict per non-empty line; a bad line raises JsonlError with file and line."""
    for _number, record in read_jsonl_numbered(path, tolerate_truncated_tail=tolerate_truncated_tail):
        yield record


def read_jsonl_numbered(
    path: Path | str, *, tolerate_truncated_tail: bool = False
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Like `read_jsonl`, with each record's 1-based line number (for error messages)."""
    path = Path(path)
    with path.open(encoding="utf-8") as fh:
        lines = fh.readlines()
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            is_last = number == len(lines) and not raw.endswith("\n")
            if tolerate_truncated_tail and is_last:
                return
            raise JsonlError(path, number, f"invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(value, dict):
            raise JsonlError(path, number, f"expected a JSON object, got {type(value).__name__}")
        yield number, value


def append_jsonl(path: Path | str, records: Iterable[Any]) -> int:
    """Append records (dataclasses or dicts), one line each, flushed and fsynced. Returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("a", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(to_jsonable(record), ensure_ascii=False) + "\n")
            count += 1
        fh.flush()
        os.fsync(fh.fileno())
    return count


def repair_truncated_tail(path: Path | str) -> bool:
    """Cut a partial last line left by a kill, so appends start on a fresh line. True if cut."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return False
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return False
    keep = data.rfind(b"\n") + 1
    with path.open("r+b") as fh:
        fh.truncate(keep)
    return True


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temp file and a rename, so readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_jsonl(path: Path | str, records: Iterable[Any]) -> int:
    """Write records atomically (temp file + rename), so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        count = 0
        for record in records:
            fh.write(json.dumps(to_jsonable(record), ensure_ascii=False) + "\n")
            count += 1
    os.replace(tmp, path)
    return count
