"""treeplay.oracle: multi-language static security judges with CWE verdicts.

    from treeplay.oracle import judge, judge_many, OracleConfig
    verdict = judge(code, "py", task=task)   # Verdict(status, findings, analyzers_run, ...)

Import-light on purpose: analyzers (bandit, semgrep, node...) load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from treeplay.oracle.config import OracleConfig
    from treeplay.oracle.core import Oracle, OracleUnavailableError, default_oracle, judge, judge_many

__all__ = ["Oracle", "OracleConfig", "OracleUnavailableError", "default_oracle", "judge", "judge_many"]

_LAZY = {
    "judge": "treeplay.oracle.core",
    "judge_many": "treeplay.oracle.core",
    "default_oracle": "treeplay.oracle.core",
    "Oracle": "treeplay.oracle.core",
    "OracleUnavailableError": "treeplay.oracle.core",
    "OracleConfig": "treeplay.oracle.config",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'treeplay.oracle' has no attribute {name!r}")
