"""bandit, in-process: one test set built once, a fresh node visitor per snippet (~2 ms each)."""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from treeplay.oracle.analyzers.base import AnalysisResult, RawFinding, Target
from treeplay.oracle.records import Severity

_SEVERITY: dict[str, Severity] = {"LOW": "low", "MEDIUM": "medium", "HIGH": "high", "UNDEFINED": "low"}


class BanditAnalyzer:
    name = "bandit"
    languages = frozenset({"py"})

    def __init__(self) -> None:
        self._test_set: Any = None

    def unavailable_reason(self) -> str | None:
        try:
            import bandit  # noqa: F401
        except ImportError:
            return "bandit is not installed (pip install bandit)"
        return None

    def _tests(self) -> Any:
        if self._test_set is None:
            from bandit.core import config, test_set

            # bandit logs "Unable to find qualified name for module" for every in-memory file.
            logging.getLogger("bandit").setLevel(logging.ERROR)
            self._test_set = test_set.BanditTestSet(config.BanditConfig(), None)
        return self._test_set

    def analyze_text(self, text: str) -> AnalysisResult:
        from bandit.core import meta_ast, metrics, node_visitor

        data = text.encode("utf-8", errors="replace")
        visitor = node_visitor.BanditNodeVisitor(
            "snippet.py", io.BytesIO(data), meta_ast.BanditMetaAst(), self._tests(), False, {},
            metrics.Metrics(),
        )
        try:
            visitor.process(data)
        except SyntaxError as exc:
            return AnalysisResult(parse_error=f"line {exc.lineno}: {exc.msg}")
        findings = []
        for issue in visitor.tester.results:
            lines = list(issue.linerange or [issue.lineno])
            cwe_id = getattr(getattr(issue, "cwe", None), "id", 0) or 0
            findings.append(
                RawFinding(
                    line=int(issue.lineno),
                    end_line=int(max(lines)),
                    rule=str(issue.test_id),
                    severity=_SEVERITY.get(str(issue.severity), "low"),
                    message=f"{issue.test}: {issue.text}",
                    cwe=f"CWE-{cwe_id}" if cwe_id else None,
                )
            )
        return AnalysisResult(findings=findings)

    def analyze(self, targets: Sequence[Target], workdir: Path) -> list[AnalysisResult]:
        return [self.analyze_text(t.text) for t in targets]
