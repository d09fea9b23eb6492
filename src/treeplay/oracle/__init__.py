"""treeplay.oracle: multi-language static security judges with CWE verdicts.

    from treeplay.oracle import judge, judge_many, OracleConfig
    verdict = judge(code, "py", task=task)   # Verdict(status, findings, analyzers_run, ...)

The stage's public face, imported lazily (PEP 562): analyzers (bandit, semgrep, node...) load on
first use. `judge`; `judge_many`; `default_oracle`; `Oracle`; `OracleUnavailableError`; `OracleConfig`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from treeplay.lazy_face import lazy_face

if TYPE_CHECKING:  # the real types for type checkers; nothing is imported at run time
    from treeplay.oracle.config import OracleConfig  # noqa: F401
    from treeplay.oracle.core import Oracle, OracleUnavailableError, default_oracle, judge, judge_many  # noqa: F401

_FACE = {
    "judge": "treeplay.oracle.core",
    "judge_many": "treeplay.oracle.core",
    "default_oracle": "treeplay.oracle.core",
    "Oracle": "treeplay.oracle.core",
    "OracleUnavailableError": "treeplay.oracle.core",
    "OracleConfig": "treeplay.oracle.config",
}
__getattr__, __all__ = lazy_face(__name__, _FACE)
