"""Why a model's answers are nonfunctional: the oracle's static sanity reasons, counted per answer.

The oracle marks a program `nonfunctional` when it imports an unknown module, uses an undefined name,
does not compile or does nothing (`treeplay.oracle.functional`), and says why in
`Verdict.functional_error`: reasons with their line, joined by "; ". An arm whose answers call a
helper the prompt never imports (`jsonify` in a Flask handler that imports only `Flask, request`)
fails its functional tests for that one habit; the share alone does not show which habit. This
module counts each reason once per answer, without its line number, so the report can name it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from treeplay.oracle.records import Verdict

_LINE = re.compile(r"^line \d+: ")


def reasons_of(verdict: Verdict | None) -> set[str]:
    """The distinct reasons a verdict gives for `nonfunctional`, without line numbers (empty when the
    program was not judged, or judged functional or unchecked)."""
    if verdict is None or verdict.functional != "nonfunctional":
        return set()
    parts = (_LINE.sub("", part.strip()) for part in (verdict.functional_error or "").split("; "))
    reasons = {part for part in parts if part}
    return reasons or {"(no reason given)"}


@dataclass(frozen=True)
class NonfunctionalSummary:
    """One evaluation's nonfunctional answers: how many of the judged ones, and why."""

    judged: int  # answers the oracle judged (a verdict that is not None)
    nonfunctional: int
    reasons: Counter[str]  # reason -> answers giving it (an answer may give several)

    def top(self, k: int = 3) -> list[tuple[str, int]]:
        """The k most frequent reasons, ties by name."""
        return sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


def summarise(verdicts: Iterable[Verdict | None]) -> NonfunctionalSummary:
    judged = nonfunctional = 0
    reasons: Counter[str] = Counter()
    for verdict in verdicts:
        if verdict is None:
            continue
        judged += 1
        mine = reasons_of(verdict)
        if mine:
            nonfunctional += 1
            reasons.update(mine)
    return NonfunctionalSummary(judged, nonfunctional, reasons)
