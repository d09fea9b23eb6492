"""Records of one sandboxed command: its resource limits, its result, and the rule that turns how
the command ended (exit code, signal, deadline, output cap) into an outcome."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field

from treeplay.oracle.records import SandboxOutcome

_LIMIT_SIGNALS = {signal.SIGXCPU, signal.SIGXFSZ}
_MEMORY_MARKERS = (b"MemoryError", b"std::bad_alloc", b"out of memory", b"Cannot allocate memory")


class SandboxUnavailable(RuntimeError):
    """No way to run untrusted code isolated from the host (no bwrap/unshare, or no network isolation)."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed command."""

    wall_s: float = 30.0  # wall-clock deadline; the whole process tree is killed after it
    cpu_s: int = 30  # RLIMIT_CPU per process
    memory_mb: int = 2048  # RLIMIT_AS per process (virtual address space)
    file_size_mb: int = 64  # RLIMIT_FSIZE: largest file a process may write
    processes: int = 128  # RLIMIT_NPROC for the sandbox uid
    open_files: int = 256  # RLIMIT_NOFILE
    output_bytes: int = 1_000_000  # cap on stdout and on stderr; more output kills the command

    def __post_init__(self) -> None:
        for name in ("wall_s", "cpu_s", "memory_mb", "file_size_mb", "processes", "open_files", "output_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Limits.{name} must be > 0, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class SandboxResult:
    """What happened to one sandboxed command.

    outcome: ``ok`` (exited 0), ``crashed`` (non-zero exit or killed by a signal), ``timeout``
    (wall-clock deadline), ``limit`` (CPU/file-size/output/memory limit hit), ``error`` (the sandbox
    itself failed to start).
    """

    outcome: SandboxOutcome
    returncode: int | None
    stdout: bytes
    stderr: bytes
    duration_s: float
    backend: str
    reason: str = ""  # human-readable detail: which limit, which signal
    files: dict[str, bytes] = field(default_factory=dict)  # collected work-dir files

    @property
    def output_tail(self) -> str:
        text = (self.stdout[-2000:] + b"\n" + self.stderr[-2000:]).decode("utf-8", "replace")
        return text.strip()


def classify(returncode: int, stop: str, stderr: bytes, limits: Limits) -> tuple[SandboxOutcome, str]:
    """(outcome, reason) of a command that exited with `returncode`; `stop` is why reading its
    output stopped early ('timeout', 'output' or '')."""
    if stop == "timeout":
        return "timeout", f"wall-clock limit of {limits.wall_s:g}s exceeded"
    if stop == "output":
        return "limit", f"output limit of {limits.output_bytes} bytes exceeded"
    if returncode < 0 or returncode > 128:
        signum = -returncode if returncode < 0 else returncode - 128
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        if signum in _LIMIT_SIGNALS:
            return "limit", f"killed by {name} (CPU or file-size limit)"
        if any(m in stderr for m in _MEMORY_MARKERS):
            return "limit", f"killed by {name} after running out of memory"
        return "crashed", f"killed by {name}"
    if returncode == 0:
        return "ok", ""
    if b"sigprocmask unblock failed" in stderr:
        return "crashed", "killed by a signal"
    if any(m in stderr[-4000:] for m in _MEMORY_MARKERS):
        return "limit", f"exit code {returncode} after running out of memory"
    return "crashed", f"exit code {returncode}"
