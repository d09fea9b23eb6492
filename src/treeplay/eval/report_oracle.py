"""The report's "Oracle coverage" table: which analyzers judged each benchmark, and what was not
judged (`incomplete`: an analyzer failed, timed out or is missing; `unsupported`: no judge for the
language). Those generations are excluded from every rate, so the report lists them here."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

COVERAGE_HEADERS = ["Benchmark", "analyzers run (programs)", "failed analyzers (programs)", "incomplete",
                    "unsupported", "languages without a judge"]


def _counter_text(counter: Counter[str]) -> str:
    return ", ".join(f"{name} ({count})" for name, count in sorted(counter.items())) or "–"


def coverage_rows(evals: Iterable[tuple[str, dict[str, Any]]]) -> list[list[str]]:
    """One row per bench from (bench, metrics.json) pairs of every seed and method."""
    by_bench: dict[str, list[dict[str, Any]]] = {}
    for bench, metrics in evals:
        by_bench.setdefault(bench, []).append(metrics)
    rows = []
    for bench, all_metrics in by_bench.items():
        ran: Counter[str] = Counter()
        failed: Counter[str] = Counter()
        incomplete = unsupported = 0
        languages: set[str] = set()
        for metrics in all_metrics:
            ran.update(metrics.get("analyzers_run") or {})
            failed.update(metrics.get("analyzers_failed") or {})
            counts = metrics.get("counts") or {}
            incomplete += int(counts.get("incomplete", 0))
            unsupported += int(counts.get("unsupported", 0))
            languages.update(metrics.get("unsupported_languages") or [])
        rows.append([bench, _counter_text(ran), _counter_text(failed), str(incomplete), str(unsupported),
                     ", ".join(sorted(languages)) or "–"])
    return rows
