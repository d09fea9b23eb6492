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
    mark_parse_errors,
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
        mark_parse_errors(results, proc.stdout + proc.stderr, _DIAG, targets, workdir)
        return results
