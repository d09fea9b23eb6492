"""Reading trees.jsonl into typed `Tree` records: bad input names file, line and field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from treeplay.jsonl import JsonlError
from treeplay.tree.records import Branch, Node, Tree, read_trees

RECORD: dict[str, Any] = {
    "task_id": "t1", "golden": "return x\n", "golden_source": "task", "round": 2, "model_id": "m",
    "config_hash": "h", "golden_scores": {}, "stats": {"nodes": 1}, "task": None,
    "nodes": [{"id": "n1", "parent": None, "branch_of_parent": None, "char_offset": 7, "token_offset": 2,
               "strategy": "diff", "prefix_hash": "p", "depth": 1}],
    "branches": [{"node_id": "n1", "prefix": "def f(x):\n", "completion": "eval(x)\n", "token_ids": [5, 6],
                  "logprobs": [-0.5, -1], "label": "vulnerable", "findings": [{"rule": "B307", "line": 2}],
                  "cwe": "CWE-95", "first_flagged_line": 2, "finish_reason": "stop", "tests": None}],
}  # fmt: skip


def write_lines(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_a_valid_file_reads_back_as_trees(tmp_path: Path) -> None:
    trees = read_trees(write_lines(tmp_path / "trees.jsonl", [RECORD]))
    node = Node("n1", None, None, 7, 2, "diff", "p", 1)
    branch = Branch("n1", "def f(x):\n", "eval(x)\n", (5, 6), (-0.5, -1.0), "vulnerable",
                    ({"rule": "B307", "line": 2},), "CWE-95", 2, "stop", None)  # fmt: skip
    assert trees == [Tree("t1", "return x\n", "task", (node,), (branch,), 2, "m", "h", {}, {"nodes": 1}, None)]


def broken(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """RECORD with the field at `path` set to `value` (or removed when value is ...)."""
    record = copy.deepcopy(RECORD)
    target = record
    for key in path[:-1]:
        target = target[key]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return record


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("golden_source",), ..., "field 'golden_source': missing"),
        (("golden_source",), "guess", "field 'golden_source': 'guess' is not one of task, self-play, none"),
        (("nodes", 0, "char_offset"), "7", "field 'nodes[0].char_offset': expected int, got str"),
        (("nodes", 0, "parent"), 3, "field 'nodes[0].parent': expected str or null, got int"),
        (("nodes", 0), ["n1"], "field 'nodes[0]': expected an object, got list"),
        (("branches", 0, "completion"), None, "field 'branches[0].completion': expected str, got NoneType"),
        (("branches", 0, "label"), "maybe", "field 'branches[0].label': 'maybe' is not one of secure, vulnerable, "
         "unparseable, nonfunctional, incomplete, unsupported"),
        (("branches", 0, "token_ids"), [5, "6"], "field 'branches[0].token_ids[1]': expected int, got str"),
        (("branches", 0, "first_flagged_line"), True, "field 'branches[0].first_flagged_line': expected int or null, got bool"),
        (("branches", 0, "findings"), ["B307"], "field 'branches[0].findings[0]': expected an object, got str"),
        (("round",), 1.5, "field 'round': expected int, got float"),
    ],
)  # fmt: skip
def test_a_bad_record_names_file_line_and_field(tmp_path: Path, path: tuple[Any, ...], value: Any, message: str) -> None:
    trees_file = write_lines(tmp_path / "trees.jsonl", [RECORD, broken(path, value)])
    with pytest.raises(JsonlError) as caught:
        read_trees(trees_file)
    assert str(caught.value) == f"{trees_file}:2: bad tree record: {message}"
    assert caught.value.line == 2


def test_a_truncated_last_line_is_dropped_only_when_tolerated(tmp_path: Path) -> None:
    trees_file = tmp_path / "trees.jsonl"
    trees_file.write_text(json.dumps(RECORD) + "\n" + json.dumps(RECORD)[:40], encoding="utf-8")
    assert [t.task_id for t in read_trees(trees_file, tolerate_truncated_tail=True)] == ["t1"]
    with pytest.raises(JsonlError, match=r"trees\.jsonl:2: invalid JSON"):
        read_trees(trees_file)
