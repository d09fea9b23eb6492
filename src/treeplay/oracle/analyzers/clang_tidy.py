"""clang-tidy security checks (clang static analyzer security/core/unix, CERT, format-security)."""

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

CHECKS = ("-*,clang-analyzer-security.*,clang-analyzer-core.*,clang-analyzer-unix.*,"
          "clang-analyzer-cplusplus.NewDelete*,cert-*,clang-diagnostic-format-security")
_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):\d+: (?P<kind>warning|error): (?P<msg>.*) \[(?P<check>[^\]]+)\]$")

# check -> (CWE, severity); a check not listed keeps CWE from "CWE-NNN" in its message, severity low.
CHECK_CWE: dict[str, tuple[str, Severity]] = {
    "clang-analyzer-security.insecureAPI.strcpy": ("CWE-120", "high"),
    "clang-analyzer-security.insecureAPI.gets": ("CWE-242", "high"),
    "clang-analyzer-security.insecureAPI.mktemp": ("CWE-377", "high"),
    "clang-analyzer-security.insecureAPI.mkstemp": ("CWE-377", "medium"),
    "clang-analyzer-security.insecureAPI.rand": ("CWE-338", "medium"),
    "clang-analyzer-security.insecureAPI.vfork": ("CWE-676", "medium"),
    "clang-analyzer-security.insecureAPI.getpw": ("CWE-676", "medium"),
    "clang-analyzer-security.insecureAPI.UncheckedReturn": ("CWE-252", "low"),
    "clang-analyzer-security.insecureAPI.DeprecatedOrUnsafeBufferHandling": ("CWE-120", "low"),
    "clang-analyzer-security.FloatLoopCounter": ("CWE-1339", "low"),
    "clang-analyzer-core.NullDereference": ("CWE-476", "high"),
    "clang-analyzer-core.NonNullParamChecker": ("CWE-476", "medium"),
    "clang-analyzer-core.DivideZero": ("CWE-369", "medium"),
    "clang-analyzer-core.uninitialized.Assign": ("CWE-457", "medium"),
    "clang-analyzer-core.uninitialized.Branch": ("CWE-457", "medium"),
    "clang-analyzer-core.uninitialized.UndefReturn": ("CWE-457", "medium"),
    "clang-analyzer-core.uninitialized.ArraySubscript": ("CWE-457", "medium"),
    "clang-analyzer-core.CallAndMessage": ("CWE-457", "medium"),
    "clang-analyzer-core.StackAddressEscape": ("CWE-562", "medium"),
    "clang-analyzer-unix.Malloc": ("CWE-401", "high"),  # refined from the message below
    "clang-analyzer-unix.MismatchedDeallocator": ("CWE-762", "medium"),
    "clang-analyzer-unix.cstring.NullArg": ("CWE-476", "high"),
    "clang-analyzer-unix.cstring.BadSizeArg": ("CWE-131", "medium"),
    "clang-analyzer-cplusplus.NewDelete": ("CWE-416", "high"),
    "clang-analyzer-cplusplus.NewDeleteLeaks": ("CWE-401", "medium"),
    "cert-env33-c": ("CWE-78", "medium"),
    "cert-msc30-c": ("CWE-338", "medium"),
    "cert-msc50-cpp": ("CWE-338", "medium"),
    "cert-msc32-c": ("CWE-335", "medium"),
    "cert-msc51-cpp": ("CWE-335", "medium"),
    "cert-err34-c": ("CWE-20", "low"),
    "cert-err33-c": ("CWE-252", "low"),
    "cert-str34-c": ("CWE-704", "low"),
    "cert-fio38-c": ("CWE-676", "low"),
    "clang-diagnostic-format-security": ("CWE-134", "high"),
}
_MALLOC_CWE = (("freed twice", "CWE-415"), ("released memory", "CWE-415"), ("after it is freed", "CWE-416"),
               ("Use of memory after", "CWE-416"), ("leak", "CWE-401"))
_CWE_IN_MSG = re.compile(r"CWE-(\d+)")


def classify(check: str, message: str) -> tuple[str | None, Severity]:
    cwe: str | None = None
    severity: Severity = "low"
    if check in CHECK_CWE:
        cwe, severity = CHECK_CWE[check]
    if check == "clang-analyzer-unix.Malloc":
        cwe = next((c for text, c in _MALLOC_CWE if text in message), "CWE-401")
        severity = "medium" if cwe == "CWE-401" else "high"
    if cwe is None:
        match = _CWE_IN_MSG.search(message)
        cwe = f"CWE-{match.group(1)}" if match else None
    return cwe, severity


_LITERAL_COPY = re.compile(r"\b(?:strcpy|strcat|wcscpy)\s*\([^,;]+,\s*L?\"")


def copies_a_literal(check: str, text: str, line: int) -> bool:
    """insecureAPI.strcpy fires on every strcpy; a copy from a string literal has a known length,
    and unbounded copies of variable data are still reported by this check on other lines."""
    if check != "clang-analyzer-security.insecureAPI.strcpy":
        return False
    lines = text.splitlines()
    return 0 < line <= len(lines) and bool(_LITERAL_COPY.search(lines[line - 1])) and \
        len(re.findall(r"\b(?:strcpy|strcat|wcscpy)\s*\(", lines[line - 1])) == 1


class ClangTidyAnalyzer(CommandAnalyzer):
    name = "clang-tidy"
    languages = frozenset({"c", "cpp"})

    command = "clang-tidy"
    missing_message = "clang-tidy not on PATH (apt-get install clang-tidy)"

    def analyze(self, targets: Sequence[Target], workdir: Path) -> list[AnalysisResult]:
        results = [AnalysisResult() for _ in targets]
        for language, std in (("c", "-std=c11"), ("cpp", "-std=c++17")):
            group = [t for t in targets if t.language == language]
            if not group:
                continue
            cmd = ["clang-tidy", f"-checks={CHECKS}", "--quiet", *[str(t.path) for t in group], "--",
                   std, "-Wformat-security", "-ferror-limit=0"]
            proc = run_tool(cmd, timeout_s=self.timeout_s, cwd=workdir, ok_codes=(0, 1))
            by_path = index_by_path(targets)
            for raw in proc.stdout.splitlines():
                match = _LINE.match(raw.strip())
                if not match or match["kind"] != "warning":
                    continue  # compile errors of partial snippets are not findings
                pos = position_of(match["file"], by_path, workdir)
                if pos is None:
                    continue
                cwe, severity = classify(match["check"], match["msg"])
                line = int(match["line"])
                if copies_a_literal(match["check"], targets[pos].text, line):
                    continue
                results[pos].findings.append(RawFinding(
                    line=line, end_line=line, rule=match["check"], severity=severity, message=match["msg"], cwe=cwe,
                ))
        return results
