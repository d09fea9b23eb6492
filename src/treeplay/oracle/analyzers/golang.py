"""Go: `gofmt -e` as the parse check and `go vet` (type-checks; few security checks).

gosec is not installable in this environment (it needs a module download); Go security coverage
comes from treeplay's semgrep rules (rules/go.yaml). Each snippet is its own package directory
under one temporary module, so one `go vet` call covers the batch.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from treeplay.oracle.analyzers.base import (
    AnalysisResult,
    CommandAnalyzer,
    RawFinding,
    Target,
    ToolError,
    index_by_path,
    mark_parse_errors,
    position_of,
    run_tool,
)
from treeplay.oracle.records import Severity

_DIAG = re.compile(r"^(?P<file>[^\s:][^:]*\.go):(?P<line>\d+):(?:\d+:)?\s*(?P<msg>.*)$")
# go vet message fragment -> (CWE, severity)
VET_CWE: tuple[tuple[str, str, Severity], ...] = (
    ("possible misuse of unsafe.Pointer", "CWE-242", "medium"),
    ("the cancel function", "CWE-404", "low"),
    ("format %", "CWE-134", "low"),
    ("call has arguments but no formatting directives", "CWE-134", "low"),
    ("passes lock by value", "CWE-667", "low"),
    ("self-assignment", "CWE-480", "low"),
)


def _go_env() -> dict[str, str]:
    return dict(os.environ, GOFLAGS="-mod=mod", GOPROXY="off", GO111MODULE="on", CGO_ENABLED="0")


class GofmtAnalyzer(CommandAnalyzer):
    """Only reports parse errors (status `unparseable`); never findings."""

    name = "gofmt"
    languages = frozenset({"go"})

    command = "gofmt"
    missing_message = "gofmt not on PATH (apt-get install golang-go)"

    def analyze(self, targets: Sequence[Target], workdir: Path) -> list[AnalysisResult]:
        results = [AnalysisResult() for _ in targets]
        proc = run_tool(["gofmt", "-e", "-l", *[str(t.path) for t in targets]], timeout_s=self.timeout_s,
                        cwd=workdir, ok_codes=(0, 1, 2))
        mark_parse_errors(results, proc.stderr, _DIAG, targets, workdir)
        return results


class GoVetAnalyzer(CommandAnalyzer):
    name = "go-vet"
    languages = frozenset({"go"})

    command = "go"
    missing_message = "go not on PATH (apt-get install golang-go)"

    def analyze(self, targets: Sequence[Target], workdir: Path) -> list[AnalysisResult]:
        results = [AnalysisResult() for _ in targets]
        (workdir / "go.mod").write_text("module treeplay.local/snippets\n\ngo 1.19\n", encoding="utf-8")
        packages = ["./" + t.path.parent.relative_to(workdir).as_posix() for t in targets]
        env = _go_env()
        env.setdefault("GOCACHE", str(Path.home() / ".cache" / "go-build"))
        import subprocess

        try:
            proc = subprocess.run(["go", "vet", *packages], cwd=workdir, capture_output=True, text=True,
                                  timeout=self.timeout_s, env=env, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ToolError(f"go vet timed out after {self.timeout_s:.0f}s") from exc
        by_path = index_by_path(targets)
        for raw in (proc.stderr + proc.stdout).splitlines():
            line_text = raw.strip()
            if line_text.startswith(("#", "vet:")):
                continue  # package headers and type-check errors of partial snippets
            match = _DIAG.match(line_text)
            if not match:
                continue
            pos = position_of(match["file"], by_path, workdir)
            if pos is None:
                continue
            msg = match["msg"]
            cwe: str | None = None
            severity: Severity = "low"
            for text, vet_cwe, vet_severity in VET_CWE:
                if text in msg:
                    cwe, severity = vet_cwe, vet_severity
                    break
            line = int(match["line"])
            results[pos].findings.append(RawFinding(line=line, end_line=line, rule="go-vet", severity=severity,
                                                    message=msg, cwe=cwe))
        return results


__all__ = ["GoVetAnalyzer", "GofmtAnalyzer", "run_tool"]
