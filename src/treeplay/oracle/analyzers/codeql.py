"""Optional CodeQL backend (the analyzer used by the paper, SVEN and SafeCoder).

Used only when `OracleConfig(include_codeql=True)` and the `codeql` CLI with its standard query
packs is on PATH. Per batch and language: `codeql database create --build-mode=none` over the
snippet directory, then `codeql database analyze <lang>-security-extended.qls --format=sarif-latest`;
CWE from the rule's `external/cwe/cwe-NNN` tag. Not installable here (no network), so untested.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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

CODEQL_LANG = {"py": "python", "js": "javascript", "go": "go", "c": "cpp", "cpp": "cpp"}
_LEVEL: dict[str, Severity] = {"error": "high", "warning": "medium", "note": "low"}


def sarif_findings(sarif: dict[str, Any]) -> list[tuple[str, RawFinding]]:
    """(file uri, finding) pairs from a CodeQL SARIF log."""
    out: list[tuple[str, RawFinding]] = []
    for run in sarif.get("runs", []):
        rules = {r.get("id"): r for r in run.get("tool", {}).get("driver", {}).get("rules", [])}
        for res in run.get("results", []):
            rule = rules.get(res.get("ruleId"), {})
            tags = rule.get("properties", {}).get("tags", [])
            cwe = next((t.rsplit("-", 1)[-1] for t in tags if t.startswith("external/cwe/cwe-")), None)
            for loc in res.get("locations", [])[:1]:
                phys = loc.get("physicalLocation", {})
                region = phys.get("region", {})
                line = int(region.get("startLine", 1))
                out.append((phys.get("artifactLocation", {}).get("uri", ""), RawFinding(
                    line=line, end_line=int(region.get("endLine", line)), rule=str(res.get("ruleId", "")),
                    severity=_LEVEL.get(str(res.get("level", "warning")), "medium"),
                    message=str(res.get("message", {}).get("text", "")), cwe=f"CWE-{int(cwe)}" if cwe else None,
                )))
    return out


class CodeQLAnalyzer(CommandAnalyzer):
    name = "codeql"
    languages = frozenset(CODEQL_LANG)

    command = "codeql"
    missing_message = "codeql CLI not on PATH (optional; see docs/oracle.md)"
    default_timeout_s = 1800.0

    def analyze(self, targets: Sequence[Target], workdir: Path) -> list[AnalysisResult]:
        results = [AnalysisResult() for _ in targets]
        by_path = index_by_path(targets)
        for lang in sorted({CODEQL_LANG[t.language] for t in targets}):
            src = workdir
            db = workdir / f"codeql-db-{lang}"
            sarif_path = workdir / f"codeql-{lang}.sarif"
            run_tool(["codeql", "database", "create", str(db), f"--language={lang}", "--build-mode=none",
                      f"--source-root={src}", "--overwrite"], timeout_s=self.timeout_s)
            run_tool(["codeql", "database", "analyze", str(db), f"codeql/{lang}-queries:codeql-suites/"
                      f"{lang}-security-extended.qls", "--format=sarif-latest", f"--output={sarif_path}"],
                     timeout_s=self.timeout_s)
            for uri, finding in sarif_findings(json.loads(sarif_path.read_text(encoding="utf-8"))):
                pos = position_of(uri, by_path, src)
                if pos is not None:
                    results[pos].findings.append(finding)
        return results
