"""flawfinder --csv over a batch of C/C++ files; CWE from its CWEs column."""

from __future__ import annotations

import csv
import io
import re
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


# strcpy/strcat whose source is a macro constant (strcpy(prefix, THREE_DOTS)): its length is known at
# compile time, as for the string literal flawfinder already downgrades.
# (flawfinder's Context column writes a tab as the four characters \x09: no word boundary before a name)
_COPY_FROM_MACRO = re.compile(r"(?<![A-Za-z_])(?:strcpy|strcat|wcscpy|wcscat)\s*\([^,]+,\s*[A-Z][A-Z0-9_]*\s*\)")
# printf-family format made of macros and string literals only (snprintf(b, n, TMPDIR "~x%d", i)):
# a constant the compiler concatenates, not an attacker-controlled format.
_FORMAT_ARG_INDEX = {"printf": 0, "fprintf": 1, "sprintf": 1, "snprintf": 2, "syslog": 1, "vsnprintf": 2}
_CONSTANT_FORMAT = re.compile(r'\s*(?:(?:[A-Z][A-Z0-9_]*|"(?:[^"\\]|\\.)*")\s*)+$')


def _call_args(context: str, name: str) -> list[str] | None:
    """Top-level arguments of the first `name(...)` call in a source line (None when cut off)."""
    match = re.search(rf"(?<![A-Za-z_]){name}\s*\(", context)
    if match is None:
        return None
    args: list[str] = []
    depth, current, quoted = 0, "", False
    for i, ch in enumerate(context[match.end():]):
        if quoted:
            quoted = not (ch == '"' and context[match.end() + i - 1] != "\\")
        elif ch == '"':
            quoted = True
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                return [*args, current]
            depth -= 1
        elif ch == "," and depth == 0:
            args, current = [*args, current], ""
            continue
        current += ch
    return None


def is_constant_argument_hit(name: str, context: str, cwes: str) -> bool:
    """A copy from a macro constant, or a format-string hit (CWE-134) whose format is built from
    macros and literals only. sprintf's buffer-overflow hits (CWE-120) are kept."""
    if name in ("strcpy", "strcat", "wcscpy", "wcscat"):
        return _COPY_FROM_MACRO.search(context) is not None
    if name in _FORMAT_ARG_INDEX and "134" in cwes:
        args = _call_args(context, name)
        index = _FORMAT_ARG_INDEX[name]
        return args is not None and len(args) > index and _CONSTANT_FORMAT.match(args[index]) is not None
    return False


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
            if is_constant_argument_hit(row.get("Name", ""), row.get("Context", ""), row.get("CWEs") or ""):
                continue
            line = int(row["Line"])
            cwes = (row.get("CWEs") or "").replace("!", "").split("/")
            results[pos].findings.append(RawFinding(
                line=line, end_line=line, rule=row.get("Name", ""), severity=level_to_severity(int(row["Level"])),
                message=row.get("Warning", ""), cwe=normalise(cwes[0]) if cwes and cwes[0] else None,
            ))
        return results
