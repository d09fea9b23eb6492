"""treeplay.eval.rejudge: every stored program is judged again with its own task."""

from __future__ import annotations

import pytest
from generation_fixtures import generation

from treeplay.eval import rejudge as module
from treeplay.oracle.records import Verdict
from treeplay.tasks.records import Task

BENCHES = {
    "a": [Task(id="a1", language="py", cwe=("CWE-22",), instruction="", prefix="")],
    "b": [Task(id="b1", language="js", cwe=("CWE-79",), instruction="", prefix="")],
}


def test_each_program_is_judged_with_its_own_benchs_task(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "resolve_bench", lambda bench: BENCHES[bench])
    seen: list[tuple[str, str, str]] = []

    def judge_many(items: list) -> list[Verdict]:
        seen.extend((program, language, task.id) for program, language, task in items)
        return [Verdict(status="vulnerable") if "eval" in program else Verdict(status="secure") for program, _, _ in items]

    records = [generation("b1", bench="b", language="js", completion="el.innerHTML = eval(x)", program="el.innerHTML = eval(x)",
                          verdict={"status": "secure", "findings": []}),
               generation("a1", bench="a", completion="x = 1\n", program="x = 1\n", verdict={"status": "vulnerable", "findings": []})]  # fmt: skip
    judged = module.rejudge(records, judge_many)
    assert seen == [("el.innerHTML = eval(x)", "js", "b1"), ("x = 1\n", "py", "a1")]
    assert [r.verdict.status for r in judged if r.verdict] == ["vulnerable", "secure"]  # the stored ones flipped
    assert [r.task_id for r in judged] == ["b1", "a1"]  # order kept


def test_a_task_missing_from_its_bench_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "resolve_bench", lambda bench: BENCHES[bench])
    records = [generation("gone", bench="a", verdict={"status": "secure", "findings": []})]
    with pytest.raises(ValueError, match="gone"):
        module.rejudge(records, lambda items: [])
    # an explicit bench overrides the records' (old records may lack the field)
    with pytest.raises(ValueError, match="bench\\(es\\) b"):
        module.rejudge(records, lambda items: [], bench="b")
