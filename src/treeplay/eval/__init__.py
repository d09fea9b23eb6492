"""treeplay.eval stage: evaluate a model on benches; metrics and the report. The entry point is
`treeplay.eval.evaluate.evaluate` (not re-exported here: `treeplay.eval.evaluate` is its module).

The stage's public face, imported lazily (PEP 562) so that importing one submodule (e.g. the
stage's config from a run config) does not import the whole stage and its heavy dependencies:
`resolve_bench`; `bench_slug`; `EvalError`; `EvalConfig`; `write_report`; `collect_run`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from treeplay.lazy_face import lazy_face

if TYPE_CHECKING:  # the real types for type checkers; nothing is imported at run time
    from treeplay.eval.config import EvalConfig  # noqa: F401
    from treeplay.eval.evaluate import EvalError, bench_slug, resolve_bench  # noqa: F401
    from treeplay.eval.report import write_report  # noqa: F401
    from treeplay.eval.report_data import collect_run  # noqa: F401

_FACE = {
    "resolve_bench": "treeplay.eval.evaluate",
    "bench_slug": "treeplay.eval.evaluate",
    "EvalError": "treeplay.eval.evaluate",
    "EvalConfig": "treeplay.eval.config",
    "write_report": "treeplay.eval.report",
    "collect_run": "treeplay.eval.report_data",
}
__getattr__, __all__ = lazy_face(__name__, _FACE)
