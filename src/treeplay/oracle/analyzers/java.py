"""Java parse check: `javac` stopped after its parser (no classpath, no type checking).

One javac process per batch; `-XDshould-stop.ifError=PARSE -XDshould-stop.ifNoError=PARSE` makes
javac report only syntax errors, so a method that uses project types still parses. Never findings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from treeplay.oracle.analyzers.base import (
    AnalysisResult,
    CommandAnalyzer,
    Target,
    index_by_path,
    position_of,
    run_tool,
)

_DIAG = re.compile(r"^(?P<file>.+?\.java):(?P<line>\d+): error: (?P<msg>.*)$")


class JavacParseAnalyzer(CommandAnalyzer):
    name = "javac-parse"
    languages = frozenset({"java"})

    command = "javac"
    missing_message = "javac not on PATH (apt-get install default-jdk-headless)"

    def analyze(self, targets: Sequence[Target], workdir: Path) -> list[AnalysisResult]:
        results = [AnalysisResult() for _ in targets]
        out = workdir / "javac-out"
        out.mkdir(exist_ok=True)
        cmd = ["javac", "-XDshould-stop.ifError=PARSE", "-XDshould-stop.ifNoError=PARSE", "-proc:none",
               "-nowarn", "-Xmaxerrs", "100000", "-d", str(out), *[str(t.path) for t in targets]]
        proc = run_tool(cmd, timeout_s=self.timeout_s, cwd=workdir, ok_codes=(0, 1))
        by_path = index_by_path(targets)
        for raw in (proc.stdout + proc.stderr).splitlines():
            match = _DIAG.match(raw.strip())
            if not match:
                continue
            pos = position_of(match["file"], by_path, workdir)
            if pos is not None and results[pos].parse_error is None:
                results[pos].parse_error = f"line {match['line']}: {match['msg']}"
        return results
