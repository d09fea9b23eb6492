"""Unprivileged uids for sandboxed commands when the caller is root, and cleanup by uid.

RLIMIT_NPROC is not enforced for root, so as root every command is dropped (``setpriv``) to a uid
of its own from a per-process pool: one sandbox's fork bomb cannot eat another's process budget,
and after a run everything still owned by that uid is killed.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

DEFAULT_UID_BASE = 200_000  # first uid handed to sandboxes when running as root
_UIDS_PER_PROCESS = 64


class _UidPool:
    """Hands out distinct unprivileged uids to concurrent sandboxes of this process."""

    def __init__(self, base: int, size: int) -> None:
        self._free = list(range(base, base + size))
        self._cond = threading.Condition()

    def acquire(self) -> int:
        with self._cond:
            while not self._free:
                self._cond.wait()
            return self._free.pop(0)

    def release(self, uid: int) -> None:
        with self._cond:
            self._free.append(uid)
            self._cond.notify()


def _uid_base() -> int:
    base = int(os.environ.get("TREEPLAY_SANDBOX_UID_BASE", DEFAULT_UID_BASE))
    # Different treeplay processes on one machine get different uid ranges.
    return base + (os.getpid() % 1000) * _UIDS_PER_PROCESS


_POOL: _UidPool | None = None
_POOL_LOCK = threading.Lock()


def uid_pool() -> _UidPool:
    """The process-wide pool of sandbox uids."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = _UidPool(_uid_base(), _UIDS_PER_PROCESS)
        return _POOL


def is_root() -> bool:
    return os.geteuid() == 0


def chown_tree(root: Path, uid: int) -> None:
    """Give `root` and everything under it (symlinks themselves, not their targets) to `uid`."""
    for dirpath, dirnames, filenames in os.walk(root):
        os.chown(dirpath, uid, uid)
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, uid, follow_symlinks=False)


def kill_uid(uid: int) -> None:
    """Kill every process still running as `uid` (stragglers that escaped the process group)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid == uid:
                os.kill(int(entry), signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue


def wait_until_gone(uid: int, timeout_s: float = 3.0) -> None:
    """Give killed processes of `uid` a moment to disappear (repeating the kill)."""
    deadline = time.monotonic() + timeout_s
    while processes_of_uid(uid, include_zombies=False) and time.monotonic() < deadline:
        kill_uid(uid)
        time.sleep(0.02)


def processes_of_uid(uid: int, *, include_zombies: bool = False) -> list[int]:
    """Pids currently owned by `uid` (used by tests to check that nothing is left running)."""
    pids: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            if not include_zombies:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                    if fh.read().rsplit(")", 1)[-1].split()[0] == "Z":
                        continue
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        pids.append(int(entry))
    return pids
