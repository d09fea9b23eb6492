"""`treeplay sample`: resumable output, per-task seeds, and one real run (reusing the session model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from treeplay.jsonl import read_jsonl
from treeplay.policy.cli import build_requests, completed_task_ids, task_seed
from treeplay.policy.records import SamplingParams
from treeplay.tasks.records import Task

TASKS = [
    Task(id="t-py", language="py", cwe=(), instruction="Return the sum of xs.", prefix="def total(xs):\n"),
    Task(id="t-c", language="c", cwe=(), instruction="Return a+b.", prefix="int add(int a, int b) {\n"),
]


def test_completed_task_ids_drops_truncated_tail(tmp_path: Path) -> None:
    out = tmp_path / "samples.jsonl"
    out.write_text(json.dumps({"task_id": "a"}) + "\n" + '{"task_id": "b", "comp')
    assert completed_task_ids(out) == {"a"}
    assert out.read_text().endswith("\n")  # the partial record was cut, appends start cleanly
    assert completed_task_ids(tmp_path / "missing.jsonl") == set()


def test_task_seeds_are_stable_and_distinct() -> None:
    requests = build_requests(TASKS, n=3, params=SamplingParams(seed=1, max_new_tokens=9))
    assert [r.params.seed for r in requests] == [task_seed(1, "t-py"), task_seed(1, "t-c")]
    assert requests[0].params.seed != requests[1].params.seed
    assert all(r.n == 3 and r.params.max_new_tokens == 9 and r.prefix == r.task.prefix for r in requests)
    assert task_seed(1, "t-py") != task_seed(2, "t-py")


@pytest.mark.slow
def test_sample_command_writes_and_resumes(tmp_path: Path, embedded_policy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import treeplay.policy as policy_module
    from treeplay.cli import app

    monkeypatch.setattr(policy_module, "load_policy", lambda *a, **k: embedded_policy)
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(json.dumps(t.to_dict()) + "\n" for t in TASKS))
    out = tmp_path / "samples.jsonl"
    args = ["sample", "--tasks", str(tasks), "--out", str(out), "--n", "2", "--max-new-tokens", "4", "--quiet"]

    first = CliRunner().invoke(app, [*args, "--limit", "1"])
    assert first.exit_code == 0, first.output
    rows = list(read_jsonl(out))
    assert [r["task_id"] for r in rows] == ["t-py"]
    assert len(rows[0]["completions"]) == 2
    assert all(len(c["token_ids"]) == len(c["logprobs"]) <= 4 for c in rows[0]["completions"])

    second = CliRunner().invoke(app, args)  # resumes: only t-c is sampled
    assert second.exit_code == 0, second.output
    assert [r["task_id"] for r in read_jsonl(out)] == ["t-py", "t-c"]
    assert "1 already in" in second.output
