"""Generation records for the eval tests: the fields a test does not look at get fixed values."""

from __future__ import annotations

from typing import Any

from treeplay.eval.records import Generation


def generation_json(task_id: str, **fields: Any) -> dict[str, Any]:
    """A complete generations.jsonl object for `task_id`; `fields` override the fixed values.
    `verdict`/`tests` objects may leave out the fields that have a default in their dataclass."""
    record: dict[str, Any] = {
        "task_id": task_id, "language": "py", "cwe": [], "bench": "securityeval", "model_id": "test-model",
        "sample_index": 0, "completion": "x = 1\n", "program": "", "finish_reason": "stop", "n_tokens": 1,
        "verdict": None, "tests": None,
    }  # fmt: skip
    record.update(fields)
    record["program"] = record["program"] or record["completion"]
    return record


def generation(task_id: str, **fields: Any) -> Generation:
    """`generation_json(...)` read as a `Generation`, as a reader of generations.jsonl gets it."""
    return Generation.from_json("test.jsonl", 1, generation_json(task_id, **fields))
