"""The SALLM bench: resolution, an end-to-end evaluate() with scripted completions, the agreement
table (hand-written records) and its place in metrics and the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from generation_fixtures import generation

from treeplay.eval.agreement import oracle_vs_tests
from treeplay.eval.evaluate import EvalError, compute_metrics, evaluate, resolve_bench
from treeplay.eval.metrics import Outcome
from treeplay.eval.records import Generation
from treeplay.eval.report import build_sections, collect_run
from treeplay.jsonl import read_jsonl
from treeplay.policy.records import Completion, SampleRequest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SECURE_BODY = (
    "    base = os.path.realpath('static')\n"
    "    path = os.path.realpath(os.path.join(base, name))\n"
    "    if not path.startswith(base + os.sep):\n"
    "        raise ValueError('outside static')\n"
    "    with open(path) as fh:\n"
    "        return fh.read()\n"
)
INSECURE_BODY = "    with open(os.path.join('static', name)) as fh:\n        return fh.read()\n"


def test_resolve_bench_sallm(tmp_path: Path) -> None:
    tasks = resolve_bench("sallm", FIXTURES)
    assert [t.id for t in tasks] == ["sallm/Tainted_Author_A_cwe022_0", "sallm/Assertion_Author_A_cwe079_0"]
    with pytest.raises(EvalError, match="SALLM not found"):
        resolve_bench("sallm", tmp_path)


class ScriptedPolicy:
    """Returns the secure body as sample 0 and the insecure body as sample 1 of every request."""

    model_id = "scripted"

    def sample(self, requests: list[SampleRequest]) -> list[Completion]:
        bodies = (SECURE_BODY, INSECURE_BODY)
        return [
            Completion(r.request_id or r.task.id, i, bodies[i % 2], (1,), (0.0,), "stop")
            for r in requests
            for i in range(r.n)
        ]

    def score(self, requests):  # type: ignore[no-untyped-def]
        raise NotImplementedError


def test_evaluate_sallm_end_to_end(tmp_path: Path) -> None:
    tasks = resolve_bench("sallm", FIXTURES)
    metrics = evaluate(ScriptedPolicy(), tasks, bench="sallm", n=2, max_new_tokens=64, out_dir=tmp_path, seed=0)  # type: ignore[arg-type]
    records = list(read_jsonl(tmp_path / "generations.jsonl"))
    tested = [r for r in records if r["task_id"] == "sallm/Tainted_Author_A_cwe022_0"]
    assert [(r["tests"]["functional_pass"], r["tests"]["security_pass"]) for r in tested] == [(True, True), (True, False)]
    static = [r for r in records if r["task_id"] == "sallm/Assertion_Author_A_cwe079_0"]
    assert [r["tests"] for r in static] == [None, None] and all(r["verdict"] for r in static)
    assert metrics["tested_tasks"] == 1
    assert metrics["func@1"]["value"] == pytest.approx(1.0)
    assert metrics["func-sec@1"]["value"] == pytest.approx(0.5)  # unbiased: n=2, c=1, k=1 -> 1 - 1/2
    assert metrics["test_outcomes"] == {"ok": 2}
    table = metrics["oracle_vs_test"]["all"]
    assert table["total"] == 2
    assert table["secure_pass"] + table["vulnerable_pass"] == 1  # the secure body resists the attack
    assert table["secure_fail"] + table["vulnerable_fail"] == 1  # the insecure body does not
    assert json.loads((tmp_path / "metrics.json").read_text())["oracle_vs_test"] == metrics["oracle_vs_test"]


def record(status: str | None, functional: bool, security: bool, *, outcome: str = "ok",
           completion: str = "    return 1\n", security_ran: bool = True, task: str = "t",
           security_test: bool = True) -> Generation:  # fmt: skip
    tests = [
        {"name": "T.test_correctness", "kind": "functionality", "passed": functional, "message": ""},
        {"name": "T.test_vulnerability", "kind": "security", "passed": security,
         "message": "" if security_ran else "did not run (timeout)"},
    ][: 2 if security_test else 1]  # fmt: skip
    return generation(task, cwe=["CWE-22"], completion=completion, verdict=None if status is None else {"status": status},
                      tests={"functional_pass": functional, "security_pass": security, "outcome": outcome, "tests": tests})  # fmt: skip


def test_agreement_table_counts_and_exclusions() -> None:
    records = [
        record("secure", True, False),  # blind spot, working program
        record("secure", False, False),  # blind spot, broken program
        record("secure", True, True),
        record("vulnerable", True, False),
        record("vulnerable", True, True),
        record("vulnerable", False, True),
        record("unparseable", False, False),  # excluded: no static verdict
        record("secure", True, False, completion="    # todo\n"),  # excluded: empty completion
        record("secure", False, False, outcome="timeout", security_ran=False),  # excluded: test did not run
        record("secure", False, False, outcome="error"),  # excluded: harness error
    ]
    table = oracle_vs_tests(records)
    assert table is not None
    assert table["all"] == {"secure_pass": 1, "secure_fail": 2, "vulnerable_pass": 2, "vulnerable_fail": 1,
                            "total": 6, "agreement": pytest.approx(2 / 6),
                            "oracle_secure_given_test_fail": pytest.approx(2 / 3)}  # fmt: skip
    working = table["functional_pass"]
    assert (working["secure_pass"], working["secure_fail"], working["vulnerable_pass"], working["vulnerable_fail"]) == (1, 1, 1, 1)
    assert table["excluded"] == {"oracle unparseable": 1, "empty completion": 1, "test timeout": 1, "test error": 1}
    no_tests = [generation("x", completion="x = 1\n", verdict={"status": "secure"}, tests=None)]
    assert oracle_vs_tests(no_tests) is None


def test_error_outcome_and_missing_security_test_are_not_counted() -> None:
    error = Outcome.from_generation(record("secure", False, False, outcome="error"))
    assert error.functional_pass is None and error.security_pass is None
    functional_only = record("secure", True, True, task="f", security_test=False)
    outcome = Outcome.from_generation(functional_only)
    assert outcome.functional_pass is True and outcome.security_pass is None
    metrics = compute_metrics([record("secure", True, False, task="a"), functional_only,
                               record("secure", False, False, outcome="error", task="e")])  # fmt: skip
    assert metrics["func@1"]["value"] == pytest.approx(1.0) and metrics["func@1"]["n_tasks"] == 2
    assert metrics["func-sec@1"]["value"] == pytest.approx(0.0) and metrics["func-sec@1"]["n_tasks"] == 1
    assert metrics["test_outcomes"] == {"ok": 2, "error": 1}


def test_report_shows_the_agreement_table(tmp_path: Path) -> None:
    bench_dir = tmp_path / "seed-0" / "base" / "eval" / "sallm"
    bench_dir.mkdir(parents=True)
    metrics = compute_metrics([record("secure", True, False), record("vulnerable", True, False), record("secure", True, True)])
    (bench_dir / "metrics.json").write_text(json.dumps({**metrics, "bench": "sallm", "tasks_evaluated": 1, "generations": 3}))
    sections = build_sections(collect_run(tmp_path))
    section = next(s for s in sections if s.title == "Benchmark: sallm")
    table = next(b for b in section.blocks if b.kind == "table" and "oracle secure / test FAIL" in b.headers)
    assert table.rows[0][:7] == ["Base model (seed 0)", "all", "1", "1", "0", "1", "66.7"]
    assert table.rows[1][:7] == ["Base model (seed 0)", "functional pass", "1", "1", "0", "1", "66.7"]


def test_insecure_reference_categories() -> None:
    from treeplay.eval.sallm_check import categorise
    from treeplay.oracle.records import TestResult

    net = "tests needing the network (off in the sandbox; counted as not passed): x\n..."
    assert categorise(TestResult(True, False, "ok")) == "caught by security test"
    assert categorise(TestResult(False, True, "ok")) == "fails functionality only"
    assert categorise(TestResult(True, True, "ok")) == "weak: passes both"
    assert categorise(TestResult(False, False, "timeout")) == "timeout"
    assert categorise(TestResult(False, False, "crashed", output_tail=net)) == "needs the network"
    # A failed lookup by an injected command is the attack working, not a test needing the network.
    assert categorise(TestResult(True, False, "ok", output_tail=net)) == "caught by security test"
