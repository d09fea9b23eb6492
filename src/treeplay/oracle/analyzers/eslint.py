"""eslint + eslint-plugin-security through one long-lived node worker (eslint_worker.js).

The worker loads eslint once; each batch is one JSON line in, one JSON line out. Packages come
from tools/js/node_modules (scripts/install.sh) or $TREEPLAY_JS_TOOLS.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from treeplay.oracle.analyzers.base import AnalysisResult, RawFinding, Target, ToolError, which
from treeplay.oracle.prepare import js_repair_candidates
from treeplay.oracle.records import Severity

WORKER = Path(__file__).resolve().parent / "eslint_worker.js"

# rule -> (CWE, severity)
RULE_CWE: dict[str, tuple[str, Severity]] = {
    "security/detect-child-process": ("CWE-78", "high"),
    "security/detect-eval-with-expression": ("CWE-95", "high"),
    "no-eval": ("CWE-95", "high"),
    "no-implied-eval": ("CWE-95", "high"),
    "no-new-func": ("CWE-95", "medium"),
    "no-script-url": ("CWE-79", "medium"),
    "security/detect-non-literal-fs-filename": ("CWE-22", "medium"),
    # fires on every new RegExp(variable), most of which are not attacker-controlled: low, so it
    # counts only when the task targets ReDoS (CWE-1333/400)
    "security/detect-non-literal-regexp": ("CWE-1333", "low"),
    "security/detect-unsafe-regex": ("CWE-1333", "medium"),
    "security/detect-non-literal-require": ("CWE-829", "low"),
    "security/detect-object-injection": ("CWE-915", "low"),
    "security/detect-possible-timing-attacks": ("CWE-208", "low"),
    "security/detect-pseudoRandomBytes": ("CWE-338", "medium"),
    "security/detect-buffer-noassert": ("CWE-119", "medium"),
    "security/detect-new-buffer": ("CWE-119", "low"),
    "security/detect-disable-mustache-escape": ("CWE-79", "high"),
    "security/detect-no-csrf-before-method-override": ("CWE-352", "medium"),
    "security/detect-bidi-characters": ("CWE-451", "low"),
}


def default_tools_dir() -> Path:
    env = os.environ.get("TREEPLAY_JS_TOOLS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[4] / "tools" / "js"


class EslintAnalyzer:
    name = "eslint"
    languages = frozenset({"js"})

    def __init__(self, timeout_s: float = 300.0, tools_dir: Path | None = None) -> None:
        self.timeout_s = timeout_s
        self.tools_dir = tools_dir or default_tools_dir()
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    def unavailable_reason(self) -> str | None:
        if which("node") is None:
            return "node not on PATH (apt-get install nodejs)"
        for package in ("eslint", "eslint-plugin-security"):
            if not (self.tools_dir / "node_modules" / package).is_dir():
                return f"{package} not found in {self.tools_dir}/node_modules (run scripts/install.sh)"
        return None

    def _worker(self) -> subprocess.Popen[str]:
        if self._proc is None or self._proc.poll() is not None:
            env = dict(os.environ, TREEPLAY_JS_TOOLS=str(self.tools_dir))
            self._proc = subprocess.Popen(
                ["node", str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                text=True, env=env, bufsize=1,
            )
        return self._proc

    def request(self, files: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with self._lock:
            proc = self._worker()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(json.dumps({"files": files}) + "\n")
                proc.stdin.flush()
                line = proc.stdout.readline()
            except (BrokenPipeError, OSError) as exc:
                self.close()
                raise ToolError(f"eslint worker died: {exc}") from exc
        if not line:
            self.close()
            raise ToolError("eslint worker exited without answering")
        response = json.loads(line)
        if "error" in response:
            raise ToolError(f"eslint worker error: {response['error'][:500]}")
        return list(response["results"])

    def analyze(self, targets: Sequence[Target], workdir: Path) -> list[AnalysisResult]:
        answers = self.request([
            {"path": str(t.path), "text": t.text,
             "candidates": [{"name": name, "text": text, "offset": offset}
                            for name, text, offset in js_repair_candidates(t.text)]}
            for t in targets
        ])
        results = []
        for answer in answers:
            result = AnalysisResult(parse_error=answer.get("fatal"))
            for msg in answer.get("messages", []):
                rule = str(msg.get("ruleId") or "")
                if not rule:
                    continue
                default: tuple[str | None, Severity] = (None, "low")
                cwe, severity = RULE_CWE.get(rule, default)
                result.findings.append(RawFinding(
                    line=int(msg["line"]), end_line=int(msg.get("endLine") or msg["line"]), rule=rule,
                    severity=severity, message=str(msg.get("message", "")), cwe=cwe,
                ))
            results.append(result)
        return results

    def close(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            self._proc = None
