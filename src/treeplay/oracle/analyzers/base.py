"""The interface every analyzer plugin implements, and helpers they share."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from treeplay.oracle.records import Severity

LOG = logging.getLogger("treeplay.oracle")


@dataclass(frozen=True)
class RawFinding:
    """A finding in the analysed text's coordinates (before line mapping and policy)."""

    line: int
    end_line: int
    rule: str
    severity: Severity
    message: str
    cwe: str | None


@dataclass
class AnalysisResult:
    findings: list[RawFinding] = field(default_factory=list)
    parse_error: str | None = None  # the analyzer could not parse the snippet
    error: str | None = None  # the analyzer failed on this snippet (timeout, internal error): no judgement


@dataclass(frozen=True)
class Target:
    """One snippet of a batch, written to `path` (its own directory) for file-based tools."""

    index: int
    language: str
    text: str
    path: Path


class Analyzer(Protocol):
    name: str
    languages: frozenset[str]

    def unavailable_reason(self) -> str | None:
        """None when the analyzer can run here, else why not (missing tool...)."""
        ...

    def analyze(self, targets: Sequence[Target], workdir: Path) -> list[AnalysisResult]:
        """One result per target, in order. Runs the tool once per batch where it can."""
        ...


class ToolError(RuntimeError):
    """An external analyzer failed on a batch (not the same as finding something)."""


def which(*names: str) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def run_tool(cmd: Sequence[str], *, timeout_s: float, cwd: Path | None = None, ok_codes: Sequence[int] = (0,),
             input_text: str | None = None, env: Mapping[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    """Run an analyzer (environment: this process's, or `env`); ToolError with its stderr tail when it
    fails or times out."""
    try:
        proc = subprocess.run(
            list(cmd), cwd=cwd, capture_output=True, text=True, timeout=timeout_s, input=input_text,
            check=False, env=None if env is None else dict(env),
        )
    except subprocess.TimeoutExpired as exc:
        raise ToolError(f"{cmd[0]} timed out after {timeout_s:.0f}s") from exc
    except OSError as exc:
        raise ToolError(f"cannot run {cmd[0]}: {exc}") from exc
    if proc.returncode not in ok_codes:
        tail = (proc.stderr or proc.stdout)[-800:]
        raise ToolError(f"{Path(cmd[0]).name} exited with {proc.returncode}: {tail}")
    return proc


def index_by_path(targets: Sequence[Target]) -> dict[str, int]:
    """Resolved path string -> position in `targets`, for tools that report file names."""
    return {str(t.path.resolve()): i for i, t in enumerate(targets)}


def position_of(reported: str, by_path: dict[str, int], workdir: Path) -> int | None:
    path = Path(reported)
    if not path.is_absolute():
        path = workdir / path
    return by_path.get(str(path.resolve()))


def mark_parse_errors(results: Sequence[AnalysisResult], output: str, diagnostic: re.Pattern[str],
                      targets: Sequence[Target], workdir: Path) -> None:  # fmt: skip
    """Each target's first compiler diagnostic in `output` (lines matching `diagnostic`, with the
    groups `file`, `line` and `msg`) becomes its parse error, as "line N: message"."""
    by_path = index_by_path(targets)
    for raw in output.splitlines():
        match = diagnostic.match(raw.strip())
        if not match:
            continue
        pos = position_of(match["file"], by_path, workdir)
        if pos is not None and results[pos].parse_error is None:
            results[pos].parse_error = f"line {match['line']}: {match['msg']}"


class CommandAnalyzer:
    """Shared plumbing of analyzers that run one external command found on PATH."""

    command: str = ""  # the executable that must be on PATH
    missing_message: str = ""  # what `unavailable_reason` says when it is not
    default_timeout_s: float = 300.0

    def __init__(self, timeout_s: float | None = None) -> None:
        self.timeout_s = self.default_timeout_s if timeout_s is None else timeout_s

    def unavailable_reason(self) -> str | None:
        return None if which(self.command) else self.missing_message
