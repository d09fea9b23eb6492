"""Run an untrusted command over a scratch directory, isolated from the host.

Isolation, in order of preference: ``bwrap`` (bubblewrap), or the ``unshare`` fallback (see
`commands`). When the caller is root the command is dropped to an unprivileged uid with
``setpriv`` inside the namespaces (RLIMIT_NPROC is not enforced for root, so a fork bomb would
otherwise not be contained); every concurrent sandbox of this process gets its own uid (`uids`).
Resource limits (CPU, address space, file size, processes, open files, no core dumps) are applied
with ``prlimit``; a wall-clock deadline kills the whole process group (and with it the pid
namespace); stdout/stderr are read with a cap and the command is killed when it prints more
(`process`).

Layout: `results` (Limits, SandboxResult, SandboxUnavailable, outcome rules), `commands` (argv
building), `uids` (uid pool and cleanup), `process` (launch, capped read, deadline), `workdir`
(input and result files), this module (the `Sandbox` tying them together).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Literal

from treeplay.oracle.sandbox.commands import SANDBOX_DIR, base_env, build_bwrap_command, build_unshare_command
from treeplay.oracle.sandbox.process import execute
from treeplay.oracle.sandbox.results import Limits, SandboxResult, SandboxUnavailable
from treeplay.oracle.sandbox.uids import (
    DEFAULT_UID_BASE,
    chown_tree,
    is_root,
    kill_uid,
    processes_of_uid,
    uid_pool,
    wait_until_gone,
)
from treeplay.oracle.sandbox.workdir import collect_files, read_regular_file, write_files

__all__ = [
    "DEFAULT_UID_BASE",
    "SANDBOX_DIR",
    "Backend",
    "Limits",
    "Sandbox",
    "SandboxResult",
    "SandboxUnavailable",
    "base_env",
    "build_bwrap_command",
    "build_unshare_command",
    "default_sandbox",
    "processes_of_uid",
    "read_regular_file",
    "run_sandboxed",
]

Backend = Literal["auto", "bwrap", "unshare"]


class Sandbox:
    """A configured sandbox. `run` is thread-safe; each call gets a fresh private work dir."""

    def __init__(self, backend: Backend = "auto", *, scratch_root: str | Path | None = None) -> None:
        self.backend = self._pick_backend(backend)
        self.scratch_root = Path(scratch_root) if scratch_root else None
        self._network_checked = False
        self._check_lock = threading.Lock()

    @staticmethod
    def _pick_backend(backend: Backend) -> str:
        missing = [t for t in ("prlimit",) if shutil.which(t) is None]
        if is_root() and shutil.which("setpriv") is None:
            missing.append("setpriv")
        if missing:
            raise SandboxUnavailable(f"sandbox tools not found: {', '.join(missing)} (apt-get install util-linux)")
        if backend in ("auto", "bwrap") and shutil.which("bwrap"):
            return "bwrap"
        if backend == "bwrap":
            raise SandboxUnavailable("bubblewrap not found: apt-get install bubblewrap")
        if shutil.which("unshare"):
            return "unshare"
        raise SandboxUnavailable("neither bwrap nor unshare is available: apt-get install bubblewrap")

    def ensure_network_isolated(self) -> None:
        """Run a probe once; raise SandboxUnavailable if the sandbox sees any interface but `lo`."""
        with self._check_lock:
            if self._network_checked:
                return
            result = self._run(["cat", "/proc/net/dev"], {}, Limits(wall_s=20), None, ())
            if result.outcome != "ok":
                raise SandboxUnavailable(
                    f"the {self.backend} sandbox failed to start: {result.reason}\n{result.output_tail}"
                )
            interfaces = [
                line.split(":", 1)[0].strip() for line in result.stdout.decode().splitlines() if ":" in line
            ]
            if interfaces != ["lo"]:
                raise SandboxUnavailable(
                    f"the {self.backend} sandbox cannot isolate the network (interfaces seen: {interfaces})"
                )
            self._network_checked = True

    def run(
        self,
        cmd: Sequence[str],
        files: Mapping[str, str | bytes] | None = None,
        limits: Limits | None = None,
        *,
        env: Mapping[str, str] | None = None,
        collect: Sequence[str] = (),
        collect_tail: Sequence[str] = (),
        collect_cap: int = 4_000_000,
    ) -> SandboxResult:
        """Run `cmd` (argv) inside the sandbox, cwd = a fresh work dir holding `files`.

        `collect` names work-dir files whose contents (at most `collect_cap` bytes each, regular
        files only) are returned in `SandboxResult.files`; `collect_tail` files keep their last
        `collect_cap` bytes.
        """
        self.ensure_network_isolated()
        return self._run(cmd, files or {}, limits or Limits(), env, collect, collect_tail, collect_cap)

    def workdir_inside(self) -> str:
        """Path of the work dir as the sandboxed command sees it ('' = relative to cwd)."""
        return SANDBOX_DIR if self.backend == "bwrap" else ""

    def _run(
        self,
        cmd: Sequence[str],
        files: Mapping[str, str | bytes],
        limits: Limits,
        env: Mapping[str, str] | None,
        collect: Sequence[str],
        collect_tail: Sequence[str] = (),
        collect_cap: int = 4_000_000,
    ) -> SandboxResult:
        uid = uid_pool().acquire() if is_root() else None
        workdir = Path(tempfile.mkdtemp(prefix="treeplay-sbx-", dir=self.scratch_root))
        try:
            write_files(workdir, files)
            inside = SANDBOX_DIR if self.backend == "bwrap" else str(workdir)
            full_env = base_env(inside)
            full_env.update(env or {})
            if uid is not None:
                os.chmod(workdir, 0o700)
                chown_tree(workdir, uid)
            build = build_bwrap_command if self.backend == "bwrap" else build_unshare_command
            argv = build(cmd, workdir, full_env, limits, uid)
            result = execute(argv, workdir, limits, self.backend)
            if uid is not None:
                kill_uid(uid)
                wait_until_gone(uid)
            return replace(result, files=collect_files(workdir, collect, collect_tail, collect_cap))
        finally:
            if uid is not None:
                kill_uid(uid)
                uid_pool().release(uid)
            shutil.rmtree(workdir, ignore_errors=True)


_DEFAULT: Sandbox | None = None
_DEFAULT_LOCK = threading.Lock()


def default_sandbox() -> Sandbox:
    """The process-wide sandbox (backend picked once; env TREEPLAY_SANDBOX_BACKEND overrides)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            choice = os.environ.get("TREEPLAY_SANDBOX_BACKEND", "auto")
            if choice not in ("auto", "bwrap", "unshare"):
                raise SandboxUnavailable(f"TREEPLAY_SANDBOX_BACKEND={choice!r}: expected auto, bwrap or unshare")
            _DEFAULT = Sandbox(choice)  # type: ignore[arg-type]
        return _DEFAULT


def run_sandboxed(
    cmd: Sequence[str],
    files: Mapping[str, str | bytes] | None = None,
    limits: Limits | None = None,
    *,
    env: Mapping[str, str] | None = None,
    collect: Sequence[str] = (),
    collect_tail: Sequence[str] = (),
) -> SandboxResult:
    """Run `cmd` in the default sandbox over a fresh work dir containing `files`."""
    return default_sandbox().run(cmd, files, limits, env=env, collect=collect, collect_tail=collect_tail)
