"""The argv that runs a command isolated from the host: resource limits (``prlimit``), namespaces
and file-system view (``bwrap``, or the ``unshare`` fallback), the uid drop (``setpriv``, when the
caller is root) and a clean environment.

* ``bwrap`` (bubblewrap): new pid/net/ipc/uts namespaces (the net namespace has only ``lo``), a
  read-only view of ``/usr``, ``/etc`` and the Python interpreter, a private writable work dir
  mounted at ``/sandbox`` and a private ``/tmp``.
* ``unshare`` (util-linux) fallback: new pid/net/ipc/uts/mount namespaces; the file system is the
  host's, protected by ordinary permissions only (the command runs as an unprivileged uid).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from treeplay.oracle.sandbox.results import Limits

SANDBOX_DIR = "/sandbox"  # where the work dir appears inside a bwrap sandbox


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
