"""treeplay.eval.nonfunctional: the oracle's sanity reasons, counted once per answer (hand-counted)."""

from __future__ import annotations

from treeplay.eval.nonfunctional import reasons_of, summarise
from treeplay.oracle.records import Verdict


def _verdict(functional: str, error: str | None) -> Verdict:
    return Verdict(status="secure", findings=(), functional=functional, functional_error=error)  # type: ignore[arg-type]


def test_reasons_drop_line_numbers_and_repeats() -> None:
    verdict = _verdict("nonfunctional", "line 4: undefined name 'jsonify'; line 9: undefined name 'jsonify'; "
                                        "no implementation (only pass)")  # fmt: skip
    assert reasons_of(verdict) == {"undefined name 'jsonify'", "no implementation (only pass)"}


def test_only_nonfunctional_verdicts_give_reasons() -> None:
    assert reasons_of(None) == set()
    assert reasons_of(_verdict("ok", None)) == set()
    assert reasons_of(_verdict("unchecked", "line 1: undefined name 'x'")) == set()  # not a nonfunctional verdict
    assert reasons_of(_verdict("nonfunctional", None)) == {"(no reason given)"}


def test_summary_counts_judged_answers_and_reasons_per_answer() -> None:
    summary = summarise([
        None,  # not judged: not counted at all
        _verdict("ok", None),
        _verdict("nonfunctional", "line 2: undefined name 'jsonify'"),
        _verdict("nonfunctional", "line 3: undefined name 'os'; line 8: undefined name 'jsonify'"),
        _verdict("nonfunctional", "line 5: undefined name 'os'"),
    ])  # fmt: skip
    assert (summary.judged, summary.nonfunctional) == (4, 3)
    # jsonify 2, os 2: ties by name
    assert summary.top(2) == [("undefined name 'jsonify'", 2), ("undefined name 'os'", 2)]
    assert summary.top(1) == [("undefined name 'jsonify'", 2)]
