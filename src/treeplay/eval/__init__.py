"""treeplay.eval stage: evaluate a model on benches; metrics and the report. The entry point is
`treeplay.eval.evaluate.evaluate` (not re-exported here: `treeplay.eval.evaluate` is its module).

The stage's public face, imported lazily (PEP 562) so that importing one submodule (e.g. the
stage's config from a run config) does not import the whole stage and its heavy dependencies:
`resolve_bench`; `bench_slug`; `EvalError`; `EvalConfig`; `write_report`; `collect_run`.
"""

from __future__ import annotations

import importlib
from typing import Any

_FACE = {
    "resolve_bench": "treeplay.eval.evaluate",
    "bench_slug": "treeplay.eval.evaluate",
    "EvalError": "treeplay.eval.evaluate",
    "EvalConfig": "treeplay.eval.config",
    "write_report": "treeplay.eval.report",
    "collect_run": "treeplay.eval.report_data",
}
__all__ = sorted(_FACE)


def __getattr__(name: str) -> Any:
    if name not in _FACE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_FACE[name]), name)
