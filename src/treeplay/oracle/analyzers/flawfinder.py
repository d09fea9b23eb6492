"""flawfinder --csv over a batch of C/C++ files; CWE from its CWEs column."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Sequence
from pathlib import Path

from treeplay.oracle.analyzers.base import (
    AnalysisResult,
    RawFinding,
    Target,
    index_by_path,
    position_of,
    run_tool,
    which,
)
from treeplay.oracle.cwe import normalise
from treeplay.oracle.records import Severity


def is_flawfinder_noise(level: int, default_level: int) -> bool:
    """Hits flawfinder itself rates as (near) harmless: level <= 1 (strncpy, strcpy from a literal)
    or a call it downgraded to level <= 2 after looking at the arguments (sprintf with a constant
    format, strcpy from a constant). Reporting them made every fixed C function 'vulnerable'."""
    return level <= 1 or (level < default_level and level <= 2)


def level_to_severity(level: int) -> Severity:
    """flawfinder risk levels 0-5: 4-5 high (strcpy, gets, system), 3 medium, 0-2 low."""
    return "high" if level >= 4 else "medium" if level == 3 else "low"


class FlawfinderAnalyzer:
    name = "flawfinder"
    languages = frozenset({"c", "cpp"})

    def __init__(self, timeout_s: float = 300.0) -> None:
        self.timeout_s = timeout_s

    def _exe(self) -> str | None:
        local = Path(sys.executable).parent / "flawfinder"
        return str(local) if local.exists() else which("flawfinder")

    def unavailable_reason(self) -> str | None:
        return None if self._exe() else "flawfinder not installed (pip install flawfinder)"

    def analyze(self, targets: Sequence[Target], workdir: Path) -> list[AnalysisResult]:
        results = [AnalysisResult() for _ in targets]
        exe = self._exe()
        assert exe is not None
        proc = run_tool([exe, "--csv", "--quiet", "--dataonly", *[str(t.path) for t in targets]],
                        timeout_s=self.timeout_s, cwd=workdir)
        by_path = index_by_path(targets)
        for row in csv.DictReader(io.StringIO(proc.stdout)):
            pos = position_of(row.get("File", ""), by_path, workdir)
            if pos is None:
                continue
            if is_flawfinder_noise(int(row["Level"]), int(row.get("DefaultLevel") or row["Level"])):
                continue
            line = int(row["Line"])
            cwes = (row.get("CWEs") or "").replace("!", "").split("/")
            results[pos].findings.append(RawFinding(
                line=line, end_line=line, rule=row.get("Name", ""), severity=level_to_severity(int(row["Level"])),
                message=row.get("Warning", ""), cwe=normalise(cwes[0]) if cwes and cwes[0] else None,
            ))
        return results
