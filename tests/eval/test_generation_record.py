"""`Generation` (treeplay.eval.records): the generations.jsonl line format, byte for byte, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from treeplay.eval.evaluate import EvalSettings, generation_record
from treeplay.eval.records import Generation, GenerationError, read_generations
from treeplay.oracle import records as oracle  # (its Test* names are not test classes)
from treeplay.oracle.records import Finding, Verdict
from treeplay.policy.records import Completion
from treeplay.tasks.records import Task

# A line as `treeplay eval` wrote it before the record existed (key order, nested records, a float
# field holding 0 written as an integer, non-ASCII text kept as is).
LINE = (
    '{"task_id": "sallm/x_0", "language": "py", "cwe": ["CWE-22", "CWE-20"], "bench": "sallm", '
    '"model_id": "embedded", "sample_index": 1, "completion": "    return é\\n", '
    '"program": "def f():\\n    return é\\n", "finish_reason": "length", "n_tokens": 7, '
    '"verdict": {"status": "vulnerable", "findings": [{"cwe": "CWE-22", "line": 2, "end_line": 2, '
    '"analyzer": "bandit", "rule": "B108", "severity": "medium", "message": "tmp"}], '
    '"analyzers_run": ["bandit", "semgrep"], "elapsed_s": 0, "target_hit": true, "error": null, '
    '"failed_analyzers": [], "functional": "ok", "functional_error": null}, '
    '"tests": {"functional_pass": true, "security_pass": false, "outcome": "ok", "tests": '
    '[{"name": "T.test_vulnerability", "kind": "security", "passed": false, "message": "boom"}], '
    '"duration_s": 1.25, "output_tail": ""}}'
)


def test_a_written_line_reads_and_writes_back_unchanged() -> None:
    gen = Generation.from_json("g.jsonl", 1, json.loads(LINE))
    assert (gen.task_id, gen.cwe, gen.sample_index, gen.status) == ("sallm/x_0", ("CWE-22", "CWE-20"), 1, "vulnerable")
    assert gen.verdict is not None and gen.verdict.findings[0].line == 2 and gen.verdict.target_hit is True
    assert gen.tests is not None and gen.tests.tests[0].kind == "security" and gen.tests.duration_s == 1.25
    assert json.dumps(gen.to_json(), ensure_ascii=False) == LINE


def test_evaluate_writes_the_documented_fields_in_order() -> None:
    task = Task(id="t", language="py", cwe=("CWE-89",), instruction="", prefix="def f():\n")
    completion = Completion("t", 0, "    return 1\n", (5, 6, 7), (0.0, 0.0, 0.0), "stop")
    verdict = Verdict("secure", (Finding(None, 1, 1, "semgrep", "r", "low", "m"),), ("semgrep",), 0.5)
    tests = oracle.TestResult(True, True, "ok", (oracle.TestCaseOutcome("T.test_ok", "functionality", True),))
    settings = EvalSettings("securityeval", "m", 1, 0.2, 0.95, 64, 0, ())
    written = generation_record(task, completion, settings, verdict, tests).to_json()
    assert list(written) == ["task_id", "language", "cwe", "bench", "model_id", "sample_index", "completion",
                             "program", "finish_reason", "n_tokens", "verdict", "tests"]  # fmt: skip
    assert written["program"] == "def f():\n    return 1\n" and written["n_tokens"] == 3 and written["cwe"] == ["CWE-89"]
    assert written["verdict"]["findings"][0] == {"cwe": None, "line": 1, "end_line": 1, "analyzer": "semgrep",
                                                 "rule": "r", "severity": "low", "message": "m"}  # fmt: skip
    assert written["tests"]["tests"] == [{"name": "T.test_ok", "kind": "functionality", "passed": True, "message": ""}]
    assert Generation.from_json("g.jsonl", 1, written) == generation_record(task, completion, settings, verdict, tests)


def _broken(path: list[str | int], value: object) -> dict[str, object]:
    obj = json.loads(LINE)
    target = obj
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return obj


@pytest.mark.parametrize(("path", "value", "message"), [
    (["bench"], KeyError, "field 'bench': missing"),
    (["sample_index"], "1", "field 'sample_index': expected an integer, got str"),
    (["cwe"], "CWE-22", "field 'cwe': expected a list of strings, got str"),
    (["verdict"], [], "field 'verdict': expected an object or null, got list"),
    (["verdict", "status"], "fine", "field 'verdict.status': unknown value 'fine'"),
    (["verdict", "findings", 0, "line"], None, r"field 'verdict.findings\[0\].line': expected an integer, got null"),
    (["tests", "security_pass"], KeyError, "field 'tests.security_pass': missing"),
    (["tests", "tests", 0, "kind"], "speed", r"field 'tests.tests\[0\].kind': unknown value 'speed'"),
    (["tests", "duration_s"], True, "field 'tests.duration_s': expected a number, got bool"),
])  # fmt: skip
def test_a_bad_line_names_file_line_and_field(tmp_path: Path, path: list[str | int], value: object, message: str) -> None:
    file = tmp_path / "generations.jsonl"
    file.write_text(LINE + "\n" + json.dumps(_broken(path, value)) + "\n", encoding="utf-8")
    with pytest.raises(GenerationError, match=rf"generations\.jsonl:2: {message}"):
        read_generations(file)


def test_fields_with_a_dataclass_default_may_be_missing_in_nested_records(tmp_path: Path) -> None:
    obj = json.loads(LINE)
    obj["verdict"] = {"status": "secure"}
    obj["tests"] = {"functional_pass": False, "security_pass": False, "outcome": "timeout"}
    gen = Generation.from_json("g.jsonl", 3, obj)
    assert gen.verdict == Verdict("secure") and gen.tests == oracle.TestResult(False, False, "timeout")


def test_a_truncated_last_line_is_dropped(tmp_path: Path) -> None:
    file = tmp_path / "generations.jsonl"
    file.write_text(LINE + "\n" + LINE[:40], encoding="utf-8")  # killed while writing the second record
    assert [g.task_id for g in read_generations(file)] == ["sallm/x_0"]
