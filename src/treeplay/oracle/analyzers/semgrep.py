"""semgrep with treeplay's own rule files (src/treeplay/oracle/rules/, RULE_FILES per language).

The `semgrep` CLI is a Python wrapper that costs ~3-5 s per call before any scanning. We call the
engine it wraps, `semgrep-core`, directly: one process per batch with a targets file (the same
format `semgrep scan --dump-command-for-core` writes), ~0.2 s startup. The CLI (always with
`--metrics=off --disable-version-check`) is the fallback when the engine binary is not found.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from treeplay.oracle.analyzers.base import (
    AnalysisResult,
    RawFinding,
    Target,
    ToolError,
    index_by_path,
    position_of,
    run_tool,
    which,
)
from treeplay.oracle.config import RULES_DIR
from treeplay.oracle.cwe import normalise
from treeplay.oracle.prepare import js_repair_candidates
from treeplay.oracle.records import Severity

RULE_FILES: dict[str, tuple[str, ...]] = {
    "py": ("python.yaml", "python_taint.yaml"), "c": ("c.yaml",), "cpp": ("c.yaml",), "js": ("javascript.yaml",),
    "go": ("go.yaml",), "java": ("java.yaml",), "rb": ("ruby.yaml",),
}
CORE_LANG: dict[str, str] = {"py": "python", "c": "c", "cpp": "cpp", "js": "javascript", "go": "go", "java": "java",
                             "rb": "ruby"}
PARSE_CHECKED = frozenset({"rb"})  # languages without another parser: semgrep's syntax errors count
_SEVERITY: dict[str, Severity] = {"ERROR": "high", "WARNING": "medium", "INFO": "low", "CRITICAL": "high",
                                  "HIGH": "high", "MEDIUM": "medium", "LOW": "low"}


# OCaml runtime setting for semgrep-core: a 2M-word (16 MB) minor heap instead of the default 256k
# words. semgrep-core allocates many short-lived values per file and rule; with the larger minor heap
# fewer of them are promoted and the major GC does less work: 25% less CPU on the speed benchmark's
# 200 Python snippets, same findings, ~30 MB more resident memory (docs/oracle.md "Speed"). Only the
# garbage collector's pacing changes; a user's own OCAMLRUNPARAM wins.
OCAML_RUNTIME = "s=2M"


def _semgrep_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"SEMGREP_SEND_METRICS": "off", "SEMGREP_ENABLE_VERSION_CHECK": "0"})
    env.setdefault("OCAMLRUNPARAM", OCAML_RUNTIME)
    return env


def _first_cwe(metadata: dict[str, Any]) -> str | None:
    cwe = metadata.get("cwe") or metadata.get("cwe_id")
    if isinstance(cwe, list):
        cwe = cwe[0] if cwe else None
    return normalise(str(cwe)) if cwe else None


def _parse_json(stdout: str) -> dict[str, Any]:
    """semgrep-core prints progress dots before its JSON object."""
    start = stdout.find("{")
    if start < 0:
        raise ToolError(f"semgrep produced no JSON output: {stdout[-300:]!r}")
    try:
        return dict(json.loads(stdout[start:]))
    except json.JSONDecodeError as exc:
        raise ToolError(f"semgrep output is not JSON: {exc}") from exc


class SemgrepAnalyzer:
    name = "semgrep"
    languages = frozenset(RULE_FILES)

    def __init__(self, timeout_s: float = 300.0, rules_dir: Path = RULES_DIR) -> None:
        self.timeout_s = timeout_s
        self.rules_dir = rules_dir
        self._expanded: dict[str, Path] = {}
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def _cli(self) -> str | None:
        local = Path(sys.executable).parent / "semgrep"
        return str(local) if local.exists() else which("semgrep")

    def _core(self) -> str | None:
        try:
            import semgrep
        except ImportError:
            return None
        path = Path(semgrep.__file__).parent / "bin" / "semgrep-core"
        return str(path) if path.exists() else which("semgrep-core")

    def unavailable_reason(self) -> str | None:
        if self._cli() is None and self._core() is None:
            return "semgrep is not installed (pip install semgrep)"
        return None

    def rules_json(self, languages: Sequence[str]) -> Path:
        """The rules of these languages as one plain JSON file (semgrep-core's YAML reader does not
        expand the anchors the rule files use)."""
        files = sorted({name for lang in languages for name in RULE_FILES[lang] if (self.rules_dir / name).exists()})
        key = ",".join(files)
        if key not in self._expanded:
            import yaml

            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="treeplay-semgrep-rules-")
            rules: list[Any] = []
            for name in files:
                rules += yaml.safe_load((self.rules_dir / name).read_text(encoding="utf-8"))["rules"]
            expanded = Path(self._tmp.name) / f"rules-{len(self._expanded)}.json"
            expanded.write_text(json.dumps({"rules": rules}), encoding="utf-8")
            self._expanded[key] = expanded
        return self._expanded[key]

    def analyze(self, targets: Sequence[Target], workdir: Path) -> list[AnalysisResult]:
        results = [AnalysisResult() for _ in targets]
        positions = [i for i, t in enumerate(targets)
                     if any((self.rules_dir / name).exists() for name in RULE_FILES[t.language])]
        if not positions:
            return results
        runnable = [targets[i] for i in positions]
        self._collect(self._run(runnable, workdir), runnable, workdir, results, positions)
        fragments = [i for i in positions if targets[i].language == "js" and results[i].error is not None]
        if fragments:
            self._retry_js_repairs(fragments, targets, workdir, results)
        return results

    def _run(self, targets: Sequence[Target], workdir: Path) -> dict[str, Any]:
        core = self._core()
        return self._run_core(core, targets, workdir) if core else self._run_cli(targets, workdir)

    def _retry_js_repairs(self, failed: list[int], targets: Sequence[Target], workdir: Path,
                          results: list[AnalysisResult]) -> None:
        """JS fragments semgrep cannot parse get the rewrites eslint lints (`js_repair_candidates`),
        one semgrep run per candidate rank; findings move back by the candidate's line offset. A
        fragment no rewrite makes parseable keeps its error (the verdict is then `incomplete`)."""
        pending = {i: js_repair_candidates(targets[i].text) for i in failed}
        rank = 0
        while pending:
            batch = [(i, cands[rank]) for i, cands in pending.items() if rank < len(cands)]
            if not batch:
                return
            rewritten = []
            for i, (_, text, _) in batch:
                path = targets[i].path.parent / f"repair-{rank}.js"
                path.write_text(text, encoding="utf-8")
                rewritten.append(Target(index=targets[i].index, language="js", text=text, path=path))
            sub = [AnalysisResult() for _ in batch]
            self._collect(self._run(rewritten, workdir), rewritten, workdir, sub, list(range(len(batch))))
            for (i, (_, _, offset)), result in zip(batch, sub, strict=True):
                if result.error is None:
                    results[i] = AnalysisResult(findings=[
                        replace(f, line=max(1, f.line - offset), end_line=max(1, f.end_line - offset))
                        for f in result.findings])
                    del pending[i]
            rank += 1

    def _run_core(self, core: str, targets: Sequence[Target], workdir: Path) -> dict[str, Any]:
        """One semgrep-core process for the whole batch (what `semgrep scan` runs underneath)."""
        listing = ["Targets", [
            ["CodeTarget", {"path": {"fpath": str(t.path), "ppath": "/" + t.path.relative_to(workdir).as_posix()},
                            "analyzer": CORE_LANG[t.language], "products": ["sast"]}]
            for t in targets
        ]]
        targets_file = workdir / "semgrep-targets.json"
        targets_file.write_text(json.dumps(listing), encoding="utf-8")
        rules = self.rules_json([t.language for t in targets])
        cmd = [core, "-json", "-rules", str(rules), "-targets", str(targets_file), "-timeout", "20",
               "-timeout_threshold", "3", "-max_memory", "0", "-fast", "-j", "1"]
        proc = run_tool(cmd, timeout_s=self.timeout_s, cwd=workdir, env=_semgrep_env())
        return _parse_json(proc.stdout)

    def _run_cli(self, targets: Sequence[Target], workdir: Path) -> dict[str, Any]:
        cli = self._cli()
        if cli is None:
            raise ToolError("semgrep CLI not found")
        configs = ["--config", str(self.rules_json([t.language for t in targets]))]
        cmd = [cli, "scan", "--metrics=off", "--disable-version-check", "--json", "--quiet", "--no-git-ignore",
               "--timeout", "20", "--jobs", str(min(2, os.cpu_count() or 1)), *configs,
               *[str(t.path) for t in targets]]
        proc = run_tool(cmd, timeout_s=self.timeout_s, ok_codes=(0, 1), cwd=workdir, env=_semgrep_env())
        return _parse_json(proc.stdout)

    def _collect(self, output: dict[str, Any], targets: Sequence[Target], workdir: Path,
                 results: list[AnalysisResult], positions: list[int]) -> None:
        by_path = index_by_path(targets)
        for error in output.get("errors", []):
            self._collect_error(error, targets, by_path, workdir, results, positions)
        for hit in output.get("results", []):
            pos = position_of(str(hit.get("path", "")), by_path, workdir)
            if pos is None:
                continue
            extra = hit.get("extra", {})
            results[positions[pos]].findings.append(
                RawFinding(
                    line=int(hit["start"]["line"]),
                    end_line=int(hit["end"]["line"]),
                    rule=str(hit.get("check_id", "")).rsplit(".", 1)[-1],
                    severity=_SEVERITY.get(str(extra.get("severity", "")).upper(), "medium"),
                    message=str(extra.get("message", "")).strip(),
                    cwe=_first_cwe(extra.get("metadata") or {}),
                )
            )

    @staticmethod
    def _collect_error(error: dict[str, Any], targets: Sequence[Target], by_path: dict[str, int], workdir: Path,
                       results: list[AnalysisResult], positions: list[int]) -> None:
        """Rule errors fail the batch; per-file errors (timeouts, parse errors, memory limits) fail
        that file's analysis: the oracle then says `incomplete`, never `secure`. For the languages
        whose parse check is semgrep's own parser (PARSE_CHECKED: Ruby) a syntax error makes the
        file `unparseable` instead."""
        kind = error.get("error_type") or error.get("type") or ""
        name = str(kind[0] if isinstance(kind, list) and kind else kind)
        message = str(error.get("message") or error.get("long_msg") or "").strip()
        if "Rule" in name or "Invalid" in name:
            raise ToolError(f"semgrep rule error: {message}")
        location = error.get("location") or {}
        reported = str(location.get("path") or error.get("path") or "")
        pos = position_of(reported, by_path, workdir) if reported else None
        if pos is None:
            if str(error.get("level") or error.get("severity") or "error").lower() == "error":
                raise ToolError(f"semgrep error ({name}): {message}")
            return
        result = results[positions[pos]]
        if targets[pos].language in PARSE_CHECKED and any(k in name for k in ("Syntax", "Lexical", "Parse")):
            if result.parse_error is None:
                line = (location.get("start") or {}).get("line", "?")
                result.parse_error = f"line {line}: {name}: {message[:200]}"
            return
        detail = f"{name}: {message}"[:300]
        result.error = detail if result.error is None else f"{result.error}; {detail}"
