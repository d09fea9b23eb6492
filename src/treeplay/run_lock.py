"""One writer per run dir: `treeplay run` and `treeplay rekey` hold RUN/.treeplay.lock while they write.

Two writers on one run dir would interleave stage writes (a rekey rewriting a stage's hash while
a run redoes it, two runs training into the same directory). The lock is an exclusive `flock` on
the file, taken without waiting: a second writer fails at once with the holder's pid, command and
start time. `flock`, not a pid file: the kernel drops the lock when its holder exits or is killed,
so a killed run never leaves a stale lock behind and the next run resumes without a manual step.
The fd is not inherited by subprocesses (PEP 446), so a sandbox child cannot keep the lock alive.
Read-only commands (`--check`, `rekey --dry-run`, `report`) take no lock; `--check` names the
holder as a blocker, because a run started then would fail.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

LOCK_FILE = ".treeplay.lock"


class RunDirBusy(RuntimeError):
    """Another process holds the run dir's lock."""


def default_run_dir(name: str) -> Path:
    """Where a config's run goes when no --run-dir is given."""
    return Path("runs") / name


def holder(run_dir: Path) -> str | None:
    """Who holds `run_dir`'s lock ("pid 12, `treeplay run`, since 2026-...Z"), or None when nobody does."""
    path = run_dir / LOCK_FILE
    if not path.is_file():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _describe(path)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextmanager
def hold_run_dir(run_dir: Path, command: str) -> Iterator[None]:
    """Hold `run_dir`'s lock for the body (creating the dir); RunDirBusy at once when it is held."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirBusy(f"run dir {run_dir} is being written by another treeplay command "
                             f"({_describe(path)}); wait for it to end or stop it") from None  # fmt: skip
        since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "command": command, "since": since}).encode())
        yield
    finally:
        os.close(fd)  # closing the only descriptor releases the flock


def _describe(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {info['pid']}, `{info['command']}`, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"
