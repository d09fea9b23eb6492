"""cppcheck over a batch of C/C++ files, CWE from its `{cwe}` template field."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from treeplay.oracle.analyzers.base import (
    AnalysisResult,
    CommandAnalyzer,
    RawFinding,
    Target,
    index_by_path,
    position_of,
    run_tool,
)
from treeplay.oracle.records import Severity

TEMPLATE = "{file}\t{line}\t{severity}\t{id}\t{cwe}\t{message}"
_SEVERITY: dict[str, Severity] = {"error": "high", "warning": "medium", "style": "low", "performance": "low",
                                  "portability": "low", "information": "low"}
_LINE = re.compile(r"^(?P<file>[^\t]+)\t(?P<line>\d+)\t(?P<sev>\w+)\t(?P<id>\w+)\t(?P<cwe>\d+)\t(?P<msg>.*)$")


class CppcheckAnalyzer(CommandAnalyzer):
    name = "cppcheck"
    languages = frozenset({"c", "cpp"})

    command = "cppcheck"
    missing_message = "cppcheck not on PATH (apt-get install cppcheck)"

    def analyze(self, targets: Sequence[Target], workdir: Path) -> list[AnalysisResult]:
        results = [AnalysisResult() for _ in targets]
        cmd = ["cppcheck", "--enable=warning,style,portability", "--inconclusive", "--quiet", "-j", "1",
               f"--template={TEMPLATE}", *[str(t.path) for t in targets]]
        proc = run_tool(cmd, timeout_s=self.timeout_s, cwd=workdir, ok_codes=(0, 1))
        by_path = index_by_path(targets)
        for raw in (proc.stderr + "\n" + proc.stdout).splitlines():
            match = _LINE.match(raw.strip())
            if not match:
                continue
            pos = position_of(match["file"], by_path, workdir)
            if pos is None:
                continue
            if match["id"] == "syntaxError":
                results[pos].parse_error = f"line {match['line']}: {match['msg']}"
                continue
            cwe = int(match["cwe"])
            line = int(match["line"])
            results[pos].findings.append(RawFinding(
                line=line, end_line=line, rule=match["id"], severity=_SEVERITY.get(match["sev"], "low"),
                message=match["msg"], cwe=f"CWE-{cwe}" if cwe else None,
            ))
        return results
