"""Versions of the analyzers, for the verdict cache key and the pipeline's stage digests.

Installing, upgrading or removing a tool changes what the oracle can see, so it must change the
key under which verdicts are cached (see `Oracle.policy_for`).
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

from treeplay.oracle.analyzers.base import which

# analyzer -> Python distribution whose version is the analyzer's
PYTHON_DISTRIBUTIONS: dict[str, str] = {"bandit": "bandit", "semgrep": "semgrep", "flawfinder": "flawfinder"}
# analyzer -> command printing its version
VERSION_COMMANDS: dict[str, tuple[str, ...]] = {
    "cppcheck": ("cppcheck", "--version"),
    "clang-tidy": ("clang-tidy", "--version"),
    "gofmt": ("go", "version"),
    "go-vet": ("go", "version"),
    "codeql": ("codeql", "--version"),
    "eslint": ("node", "--version"),
    "javac-parse": ("javac", "-version"),
}

_CACHE: dict[str, str] = {}


def _command_version(cmd: tuple[str, ...]) -> str:
    exe = which(cmd[0])
    if exe is None:
        return f"{cmd[0]} not on PATH"
    try:
        proc = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{cmd[0]}: {exc}"
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    return " ".join(line.strip() for line in lines[:2])


def _eslint_packages() -> str:
    from treeplay.oracle.analyzers.eslint import default_tools_dir

    parts = []
    for package in ("eslint", "eslint-plugin-security"):
        manifest = default_tools_dir() / "node_modules" / package / "package.json"
        version = json.loads(manifest.read_text(encoding="utf-8")).get("version") if manifest.exists() else None
        parts.append(f"{package}@{version or 'missing'}")
    return ";".join(parts)


def analyzer_version(name: str) -> str:
    """A string that changes when the analyzer's installed version changes (cached per process)."""
    if name in _CACHE:
        return _CACHE[name]
    if name in PYTHON_DISTRIBUTIONS:
        try:
            version = importlib.metadata.version(PYTHON_DISTRIBUTIONS[name])
        except importlib.metadata.PackageNotFoundError:
            version = "not installed"
    elif name in VERSION_COMMANDS:
        version = _command_version(VERSION_COMMANDS[name])
        if name == "eslint":
            version += ";" + _eslint_packages()
    else:
        version = f"unknown analyzer (python {sys.version_info[:2]})"
    _CACHE[name] = version
    return version

