"""Run an untrusted command over a scratch directory, isolated from the host.

Isolation, in order of preference:

* ``bwrap`` (bubblewrap): new pid/net/ipc/uts namespaces (the net namespace has only ``lo``), a
  read-only view of ``/usr``, ``/etc`` and the Python interpreter, a private writable work dir
  mounted at ``/sandbox`` and a private ``/tmp``.
* ``unshare`` (util-linux) fallback: new pid/net/ipc/uts/mount namespaces; the file system is the
  host's, protected by ordinary permissions only (the command runs as an unprivileged uid).

When the caller is root the command is dropped to an unprivileged uid with ``setpriv`` inside the
namespaces (RLIMIT_NPROC is not enforced for root, so a fork bomb would otherwise not be
contained). Every concurrent sandbox of this process gets its own uid, so one sandbox's fork bomb
cannot eat another's process budget. Resource limits (CPU, address space, file size, processes,
open files, no core dumps) are applied with ``prlimit``; a wall-clock deadline kills the whole
process group (and with it the pid namespace); stdout/stderr are read with a cap and the command
is killed when it prints more.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from treeplay.oracle.records import SandboxOutcome

Backend = Literal["auto", "bwrap", "unshare"]

SANDBOX_DIR = "/sandbox"  # where the work dir appears inside a bwrap sandbox
DEFAULT_UID_BASE = 200_000  # first uid handed to sandboxes when running as root
_UIDS_PER_PROCESS = 64
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


# --------------------------------------------------------------------------- uid pool


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


def _uid_pool() -> _UidPool:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = _UidPool(_uid_base(), _UIDS_PER_PROCESS)
        return _POOL


# --------------------------------------------------------------------------- command building


def _is_root() -> bool:
    return os.geteuid() == 0


def _python_dirs() -> list[str]:
    """Directories the running interpreter (and its venv) lives in, to be mounted read-only."""
    dirs: list[str] = []
    for raw in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix):
        for candidate in (raw, os.path.realpath(raw)):
            if candidate.startswith("/usr") or candidate in dirs:
                continue
            dirs.append(candidate)
    # Keep only outermost directories.
    dirs.sort(key=len)
    outer: list[str] = []
    for d in dirs:
        if not any(d == o or d.startswith(o.rstrip("/") + "/") for o in outer):
            outer.append(d)
    return outer


def _top_level_system_args() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    for name in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(name):
            args += ["--symlink", os.readlink(name), name]
        elif os.path.isdir(name):
            args += ["--ro-bind", name, name]
    return args


def _ro_bind_with_parents(path: str, created: set[str]) -> list[str]:
    """bwrap args mounting `path` read-only, creating world-readable parent dirs as needed."""
    args: list[str] = []
    parts = Path(path).parts[1:-1]
    current = ""
    for part in parts:
        current += "/" + part
        if current in created or current in ("/usr", "/etc"):
            continue
        created.add(current)
        args += ["--perms", "0755", "--dir", current]
    return [*args, "--ro-bind", path, path]


def _env_args(env: Mapping[str, str], *, flag: str) -> list[str]:
    args: list[str] = []
    for key, value in env.items():
        args += [flag, key, value]
    return args


def base_env(workdir_inside: str) -> dict[str, str]:
    """The clean environment every sandboxed command gets (callers add to it)."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": workdir_inside,
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def _prlimit_args(limits: Limits) -> list[str]:
    return [
        "prlimit",
        f"--cpu={limits.cpu_s}:{limits.cpu_s + 1}",  # SIGXCPU at the soft limit, SIGKILL 1 s later
        f"--as={limits.memory_mb * 1024 * 1024}",
        f"--fsize={limits.file_size_mb * 1024 * 1024}",
        f"--nproc={limits.processes}",
        f"--nofile={limits.open_files}",
        "--core=0",
        "--",
    ]


def _setpriv_args(uid: int) -> list[str]:
    return [
        "setpriv",
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--no-new-privs",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
    ]


def build_bwrap_command(
    cmd: Sequence[str], workdir: Path, env: Mapping[str, str], limits: Limits, uid: int | None
) -> list[str]:
    """The full argv running `cmd` under prlimit + bwrap (+ setpriv when root)."""
    args = [*_prlimit_args(limits), "bwrap"]
    args += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    if uid is None:  # not root: an unprivileged user namespace does the uid drop
        args += ["--unshare-user", "--uid", "65534", "--gid", "65534"]
    args += ["--die-with-parent", "--new-session", "--clearenv"]
    args += _top_level_system_args()
    # /tmp first: an interpreter or venv that lives under the host's /tmp (a checkout in /tmp, as
    # CI may use) is then mounted on top of the private tmpfs instead of being hidden by it.
    args += ["--perms", "01777", "--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev"]
    created: set[str] = {"/tmp", "/proc", "/dev"}
    for d in _python_dirs():
        args += _ro_bind_with_parents(d, created)
    args += ["--bind", str(workdir), SANDBOX_DIR]
    args += ["--chdir", SANDBOX_DIR]
    args += _env_args(env, flag="--setenv")
    args.append("--")
    if uid is not None:
        args += _setpriv_args(uid)
    return [*args, *cmd]


def build_unshare_command(
    cmd: Sequence[str], workdir: Path, env: Mapping[str, str], limits: Limits, uid: int | None
) -> list[str]:
    """Fallback argv: prlimit + unshare (new pid/net/ipc/uts/mount namespaces) + setpriv when root."""
    args = [*_prlimit_args(limits), "unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc"]
    args += ["--ipc", "--uts", "--mount"]
    if uid is None:
        args += ["--user", "--map-root-user"]
    args += ["--", "env", "-i", *[f"{k}={v}" for k, v in env.items()]]
    if uid is not None:
        args += _setpriv_args(uid)
    # A shell in between reports a signal death as exit 128+N: unshare 2.38 itself fails with
    # "sigprocmask unblock failed" when its child is killed by a signal.
    return [*args, "sh", "-c", '"$@"; exit $?', "sh", *cmd]


# --------------------------------------------------------------------------- running


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


def _kill_uid(uid: int) -> None:
    """Kill every process still running as `uid` (stragglers that escaped the process group)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid == uid:
                os.kill(int(entry), signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue


def _wait_until_gone(uid: int, timeout_s: float = 3.0) -> None:
    """Give killed processes of `uid` a moment to disappear (repeating the kill)."""
    deadline = time.monotonic() + timeout_s
    while processes_of_uid(uid, include_zombies=False) and time.monotonic() < deadline:
        _kill_uid(uid)
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


def _classify(
    returncode: int, stop: str, stderr: bytes, limits: Limits
) -> tuple[SandboxOutcome, str]:
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


def _write_files(workdir: Path, files: Mapping[str, str | bytes]) -> None:
    for rel, content in files.items():
        target = (workdir / rel).resolve()
        if workdir.resolve() not in target.parents:
            raise ValueError(f"sandbox file {rel!r} is outside the work dir")
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            target.write_text(content, encoding="utf-8")
        else:
            target.write_bytes(content)


def read_regular_file(path: Path, cap: int, *, tail: bool = False) -> bytes | None:
    """Read at most `cap` bytes (the first, or the last with `tail`) of a regular file, without
    following symlinks. None if the file is absent, a symlink or not a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        if tail and info.st_size > cap:
            os.lseek(fd, info.st_size - cap, os.SEEK_SET)
        chunks = []
        remaining = cap
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _chown_tree(root: Path, uid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        os.chown(dirpath, uid, uid)
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, uid, follow_symlinks=False)


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
        if _is_root() and shutil.which("setpriv") is None:
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
        uid = _uid_pool().acquire() if _is_root() else None
        workdir = Path(tempfile.mkdtemp(prefix="treeplay-sbx-", dir=self.scratch_root))
        try:
            _write_files(workdir, files)
            inside = SANDBOX_DIR if self.backend == "bwrap" else str(workdir)
            full_env = base_env(inside)
            full_env.update(env or {})
            if uid is not None:
                os.chmod(workdir, 0o700)
                _chown_tree(workdir, uid)
            build = build_bwrap_command if self.backend == "bwrap" else build_unshare_command
            argv = build(cmd, workdir, full_env, limits, uid)
            result = self._execute(argv, workdir, limits)
            if uid is not None:
                _kill_uid(uid)
                _wait_until_gone(uid)
            collected = {}
            for rel, tail in [(r, False) for r in collect] + [(r, True) for r in collect_tail]:
                data = read_regular_file(workdir / rel, collect_cap, tail=tail)
                if data is not None:
                    collected[rel] = data
            return replace(result, files=collected)
        finally:
            if uid is not None:
                _kill_uid(uid)
                _uid_pool().release(uid)
            shutil.rmtree(workdir, ignore_errors=True)

    def _execute(self, argv: list[str], workdir: Path, limits: Limits) -> SandboxResult:
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
            return SandboxResult("error", None, b"", b"", 0.0, self.backend, f"cannot start sandbox: {exc}")
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
        outcome, reason = _classify(proc.returncode, stop, stderr, limits)
        if outcome in ("ok", "crashed") and b"bwrap:" in stderr[:2000] and proc.returncode == 1 and not stdout:
            outcome, reason = "error", "bwrap failed: " + stderr[:500].decode("utf-8", "replace").strip()
        return SandboxResult(outcome, proc.returncode, stdout, stderr, duration, self.backend, reason)


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
