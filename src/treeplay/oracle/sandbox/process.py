"""Launch a built sandbox argv, read its output with a cap, enforce the wall-clock deadline
(killing the whole process group, and with it the pid namespace) and classify how it ended."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from treeplay.oracle.sandbox.results import Limits, SandboxResult, classify


@dataclass
class _Capture:
    data: bytearray = field(default_factory=bytearray)
    overflow: bool = False


def _read_capped(proc: subprocess.Popen[bytes], deadline: float, cap: int) -> tuple[bytes, bytes, str]:
    """Read both pipes until EOF, the deadline or the cap. Returns (stdout, stderr, why_stopped)."""
    assert proc.stdout is not None and proc.stderr is not None
    captures = {proc.stdout.fileno(): _Capture(), proc.stderr.fileno(): _Capture()}
    sel = selectors.DefaultSelector()
    for stream in (proc.stdout, proc.stderr):
        os.set_blocking(stream.fileno(), False)
        sel.register(stream.fileno(), selectors.EVENT_READ)
    stop = ""
    try:
        while sel.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                stop = "timeout"
                break
            for key, _ in sel.select(timeout=min(remaining, 0.5)):
                fd = int(key.fd)
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    sel.unregister(fd)
                    continue
                cap_state = captures[fd]
                room = cap - len(cap_state.data)
                cap_state.data += chunk[: max(room, 0)]
                if len(chunk) > room:
                    cap_state.overflow = True
                    stop = "output"
            if stop:
                break
    finally:
        sel.close()
    return bytes(captures[proc.stdout.fileno()].data), bytes(captures[proc.stderr.fileno()].data), stop


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


def execute(argv: list[str], workdir: Path, limits: Limits, backend: str) -> SandboxResult:
    """Run the full sandbox `argv` (from `commands.build_*_command`) with cwd `workdir`."""
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        return SandboxResult("error", None, b"", b"", 0.0, backend, f"cannot start sandbox: {exc}")
    stdout, stderr, stop = _read_capped(proc, start + limits.wall_s, limits.output_bytes)
    if not stop:
        try:
            proc.wait(timeout=max(0.1, start + limits.wall_s - time.monotonic()))
        except subprocess.TimeoutExpired:
            stop = "timeout"
    if stop:
        _kill_tree(proc)
    proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    duration = time.monotonic() - start
    outcome, reason = classify(proc.returncode, stop, stderr, limits)
    if outcome in ("ok", "crashed") and b"bwrap:" in stderr[:2000] and proc.returncode == 1 and not stdout:
        outcome, reason = "error", "bwrap failed: " + stderr[:500].decode("utf-8", "replace").strip()
    return SandboxResult(outcome, proc.returncode, stdout, stderr, duration, backend, reason)
