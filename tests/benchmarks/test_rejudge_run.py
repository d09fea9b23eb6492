"""benchmarks/rejudge_run.py: a run's stored programs read again by the installed oracle, into a new dir."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from treeplay.oracle import Oracle, OracleConfig
from treeplay.tasks.records import Task

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "rejudge_run.py"
_SPEC = importlib.util.spec_from_file_location("rejudge_run", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
script = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(script)

BOTO = "import boto3\n\ndef list_bucket(name):\n    return boto3.client('s3').list_objects(Bucket=name)\n"
SQLI = "def find(cur, name):\n    cur.execute(\"SELECT * FROM u WHERE n = '%s'\" % name)\n    return cur.fetchall()\n"
TASKS = [Task(id="t-boto", language="py", cwe=("CWE-22",), instruction="", prefix=""),
         Task(id="t-sql", language="py", cwe=("CWE-89",), instruction="", prefix="")]


def _record(task: str, program: str, verdict: dict) -> dict:
    return {"task_id": task, "language": "py", "cwe": ["CWE-22" if task == "t-boto" else "CWE-89"], "bench": "b",
            "model_id": "m", "sample_index": 0, "completion": program, "program": program, "finish_reason": "stop",
            "n_tokens": 9, "verdict": verdict, "tests": None}  # fmt: skip


def test_stored_verdicts_are_replaced_and_the_run_is_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("treeplay.eval.rejudge.resolve_bench", lambda bench: TASKS)
    run = tmp_path / "run"
    bench_dir = run / "seed-0" / "tsp" / "eval" / "b"
    bench_dir.mkdir(parents=True)
    # stored: an older oracle called the boto3 program nonfunctional and missed the injection
    stored = [_record("t-boto", BOTO, {"status": "secure", "findings": [], "functional": "nonfunctional",
                                       "functional_error": "line 1: import of unknown module 'boto3'"}),
              _record("t-sql", SQLI, {"status": "secure", "findings": []})]
    (bench_dir / "generations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in stored))
    (bench_dir / "metrics.json").write_text("{}")
    (run / "config.yaml").write_text("name: x\n")
    before = (bench_dir / "generations.jsonl").read_text()
    out = tmp_path / "out"
    oracle = Oracle(OracleConfig(use_cache=False))
    try:
        assert script.copy_rejudged(run, out, oracle) == 2
        with pytest.raises(FileExistsError):  # an existing OUT is never written into
            script.copy_rejudged(run, out, oracle)
    finally:
        oracle.close()
    rows = [json.loads(line) for line in (out / "seed-0" / "tsp" / "eval" / "b" / "generations.jsonl").open()]
    assert rows[0]["verdict"]["status"] == "secure" and rows[0]["verdict"]["functional"] == "ok"
    assert rows[1]["verdict"]["status"] == "vulnerable"
    assert not (out / "seed-0" / "tsp" / "eval" / "b" / "metrics.json").exists()  # recomputed by the report
    assert (out / "config.yaml").read_text() == "name: x\n"
    assert (bench_dir / "generations.jsonl").read_text() == before
