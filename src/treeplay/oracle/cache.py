"""SQLite verdict cache keyed by (code hash, language, oracle policy hash)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from treeplay.oracle.records import Finding, Verdict

_SCHEMA = """
CREATE TABLE IF NOT EXISTS verdicts (
    code_sha256 TEXT NOT NULL,
    language TEXT NOT NULL,
    policy TEXT NOT NULL,
    verdict TEXT NOT NULL,
    PRIMARY KEY (code_sha256, language, policy)
)
"""


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8", errors="surrogatepass")).hexdigest()


def verdict_to_dict(verdict: Verdict) -> dict[str, Any]:
    return {
        "status": verdict.status,
        "findings": [finding_to_dict(f) for f in verdict.findings],
        "analyzers_run": list(verdict.analyzers_run),
        "elapsed_s": verdict.elapsed_s,
        "target_hit": verdict.target_hit,
        "error": verdict.error,
        "failed_analyzers": list(verdict.failed_analyzers),
        "functional": verdict.functional,
        "functional_error": verdict.functional_error,
    }


def finding_to_dict(finding: Finding) -> dict[str, Any]:
    return {
        "cwe": finding.cwe,
        "line": finding.line,
        "end_line": finding.end_line,
        "analyzer": finding.analyzer,
        "rule": finding.rule,
        "severity": finding.severity,
        "message": finding.message,
    }


def verdict_from_dict(data: dict[str, Any]) -> Verdict:
    return Verdict(
        status=data["status"],
        findings=tuple(Finding(**f) for f in data.get("findings", [])),
        analyzers_run=tuple(data.get("analyzers_run", [])),
        elapsed_s=float(data.get("elapsed_s", 0.0)),
        target_hit=data.get("target_hit"),
        error=data.get("error"),
        failed_analyzers=tuple(data.get("failed_analyzers", [])),
        functional=data.get("functional", "unchecked"),
        functional_error=data.get("functional_error"),
    )


class VerdictCache:
    """Task-independent verdicts (target_hit is recomputed by the caller per task)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), timeout=60, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(_SCHEMA)

    def get_many(self, keys: Iterable[tuple[str, str]], policy: str) -> dict[tuple[str, str], Verdict]:
        found: dict[tuple[str, str], Verdict] = {}
        for digest, language in set(keys):
            row = self._conn.execute(
                "SELECT verdict FROM verdicts WHERE code_sha256=? AND language=? AND policy=?",
                (digest, language, policy),
            ).fetchone()
            if row is not None:
                found[(digest, language)] = verdict_from_dict(json.loads(row[0]))
        return found

    def put_many(self, entries: Iterable[tuple[str, str, Verdict]], policy: str) -> None:
        rows = [(d, lang, policy, json.dumps(verdict_to_dict(v))) for d, lang, v in entries]
        if not rows:
            return
        self._conn.execute("BEGIN")
        self._conn.executemany("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?)", rows)
        self._conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()
